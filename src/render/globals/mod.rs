//! dbt context globals beyond `ref`/`source`/`config`: `modules.datetime`, `modules.pytz`,
//! `modules.re`, `run_started_at`, `invocation_id`, `flags`, `tojson`/`fromjson`/`toyaml`/
//! `fromyaml`, `zip`, `set`, `local_md5`, and the `dbt` namespace of cross-database macros
//! (`dbt.dateadd(...)`, from `templates/dbt/cross_db.sql`).

use super::pycompat::MutList;
use minijinja::value::{Kwargs, Object, Rest, Value, from_args};
use minijinja::{Error, ErrorKind, State};
use std::sync::Arc;

mod datetime;
mod datetime_class;
mod pytz;
mod re;

pub use datetime::*;
use datetime_class::{Class, DateClass};
use pytz::{Pytz, TimezoneClass};
use re::*;

/// Template name of dbt's cross-database macros.
pub const DBT_TEMPLATE: &str = "__lakeflow_dbt__";
pub const DBT_SOURCE: &str = include_str!("../../../templates/dbt/cross_db.sql");

fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

// ---------------------------------------------------------------------------------------
// dbt namespace

/// `dbt`: `dbt.dateadd('day', 1, 'd')` calls the macro of dbt-duckdb's SQL.
#[derive(Debug)]
pub struct DbtNamespace;

impl Object for DbtNamespace {
    fn call_method(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let template = state.env().get_template(DBT_TEMPLATE)?;
        let ctx: std::collections::BTreeMap<&str, Value> = super::functions::CALLER_CONTEXT
            .into_iter()
            .filter_map(|k| state.lookup(k).map(|v| (k, v)))
            .collect();
        let mut captured = template.render_captured(Value::from(ctx))?;
        captured.with_state_mut(|st| match st.lookup(method) {
            Some(m) if !m.is_undefined() => {
                if st.lookup(super::functions::SCOPE_VAR).is_some() {
                    super::functions::with_return(st, |st| m.call(st, args))
                } else {
                    m.call(st, args)
                }
            }
            _ => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("lakeflow has no dbt.{method}() macro"),
            )),
        })
    }
}

/// The names of dbt's own macros lakeflow has (`dateadd`, `type_string`, ...): dbt lets a
/// project call them without `dbt.`, as long as the project defines none of the same name.
pub fn dbt_macro_names() -> Vec<&'static str> {
    DBT_SOURCE
        .split("{%")
        .filter_map(|tag| {
            let tag = tag.trim_start_matches('-').trim_start();
            let rest = tag.strip_prefix("macro")?.trim_start();
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
            Some(&rest[..end])
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// Calls dbt's macro `name` (the unqualified spelling of `dbt.name(...)`).
pub fn dbt_macro(
    name: &'static str,
) -> impl Fn(&mut State, minijinja::value::Rest<minijinja::value::ValueOrKwargs>) -> Result<Value, Error>
+ Send
+ Sync
+ 'static {
    move |state, args| {
        let ns = Arc::new(DbtNamespace);
        ns.call_method(state, name, &args.into_values())
    }
}

// ---------------------------------------------------------------------------------------
// small functions

pub fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let sort: Option<bool> = kwargs.get("sort_keys")?;
    let _: Option<Value> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    // Keys keep their order, as Python's json.dumps does, unless sort_keys=True.
    let written = if sort == Some(true) {
        let json = serde_json::to_value(&value).map_err(|e| err(e.to_string()))?;
        serde::Serialize::serialize(&sort_keys(json), &mut ser)
    } else {
        serde::Serialize::serialize(&value, &mut ser)
    };
    written.map_err(|e| err(e.to_string()))?;
    Ok(Value::from(String::from_utf8_lossy(&out).into_owned()))
}

fn sort_keys(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut pairs: Vec<_> = m.into_iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(pairs.into_iter().map(|(k, v)| (k, sort_keys(v))).collect())
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(sort_keys).collect())
        }
        other => other,
    }
}

/// Python's `json.dumps` separators: `", "` and `": "`.
struct PyFormatter;

impl serde_json::ser::Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

pub fn fromjson(text: String, default: Option<Value>) -> Result<Value, Error> {
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => Ok(super::pycompat::mutable(super::functions::to_value(v))),
        Err(e) => default.ok_or_else(|| err(format!("fromjson: {e}"))),
    }
}

pub fn fromyaml(text: String, default: Option<Value>) -> Result<Value, Error> {
    match crate::project::yaml::from_str_merged(&text) {
        Ok(v) => Ok(super::pycompat::mutable(super::functions::to_value(
            crate::project::yaml::to_json(&v),
        ))),
        Err(e) => default.ok_or_else(|| err(format!("fromyaml: {e}"))),
    }
}

pub fn toyaml(value: Value, default: Option<Value>) -> Result<Value, Error> {
    match serde_yaml::to_string(&value) {
        Ok(s) => Ok(Value::from(s)),
        Err(e) => default.ok_or_else(|| err(format!("toyaml: {e}"))),
    }
}

/// Python's `zip(a, b, ...)`, as a list of lists.
pub fn zip(args: Rest<Value>) -> Result<Value, Error> {
    let lists: Vec<Vec<Value>> = args
        .iter()
        .map(|a| a.try_iter().map(|it| it.collect()))
        .collect::<Result<_, _>>()?;
    let n = lists.iter().map(Vec::len).min().unwrap_or(0);
    Ok(Value::from(
        (0..n)
            .map(|i| Value::from(lists.iter().map(|l| l[i].clone()).collect::<Vec<_>>()))
            .collect::<Vec<_>>(),
    ))
}

/// Python's `set(iterable)`: a list without duplicates (first occurrence order).
pub fn set(items: Option<Value>) -> Result<Value, Error> {
    let out: Vec<Value> = match items {
        Some(items) => items.try_iter()?.collect(),
        None => Vec::new(),
    };
    Ok(MutList::new_set(out))
}

/// dbt's `as_text` filter: the value as a string.
pub fn as_text(value: Value) -> Value {
    match value.as_str() {
        Some(_) => value,
        None => Value::from(value.to_string()),
    }
}

/// dbt's `as_bool` filter: `'true'`/`'false'` (any case) as booleans, others unchanged.
pub fn as_bool(value: Value) -> Value {
    match value.as_str().map(|s| s.trim().to_ascii_lowercase()) {
        Some(s) if s == "true" => Value::from(true),
        Some(s) if s == "false" => Value::from(false),
        _ => value,
    }
}

/// dbt's `as_number` filter: a numeric string as a number, others unchanged.
pub fn as_number(value: Value) -> Value {
    let Some(s) = value.as_str().map(str::trim) else {
        return value;
    };
    if let Ok(i) = s.parse::<i64>() {
        Value::from(i)
    } else if let Ok(f) = s.parse::<f64>() {
        Value::from(f)
    } else {
        value
    }
}

/// dbt's `as_native` filter: a string holding a literal (number, boolean, list, mapping) as
/// that value, others unchanged.
pub fn as_native(value: Value) -> Value {
    let Some(s) = value.as_str() else {
        return value;
    };
    let python = s
        .replace("True", "true")
        .replace("False", "false")
        .replace("None", "null");
    match serde_yaml::from_str::<serde_json::Value>(&python) {
        Ok(v) if !v.is_string() => super::functions::to_value(v),
        _ => value,
    }
}

pub fn local_md5(text: String) -> String {
    use md5::Digest;
    let digest = md5::Md5::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------
// datetime

/// `modules.itertools`: `chain`, `product`, `combinations` (as lists of lists).
#[derive(Debug)]
struct Itertools;

impl Object for Itertools {
    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let lists = |args: &[Value]| -> Result<Vec<Vec<Value>>, Error> {
            args.iter().map(|a| Ok(a.try_iter()?.collect())).collect()
        };
        match method {
            "chain" => Ok(Value::from(lists(args)?.concat())),
            "product" => {
                let mut out: Vec<Vec<Value>> = vec![Vec::new()];
                for list in lists(args)? {
                    out = out
                        .iter()
                        .flat_map(|prefix| {
                            list.iter().map(move |v| {
                                let mut p = prefix.clone();
                                p.push(v.clone());
                                p
                            })
                        })
                        .collect();
                }
                Ok(Value::from(
                    out.into_iter().map(Value::from).collect::<Vec<_>>(),
                ))
            }
            "combinations" => {
                let (items, r): (Value, usize) = from_args(args)?;
                let items: Vec<Value> = items.try_iter()?.collect();
                let mut out = Vec::new();
                let mut idx: Vec<usize> = (0..r).collect();
                if r <= items.len() {
                    loop {
                        out.push(Value::from(
                            idx.iter().map(|&i| items[i].clone()).collect::<Vec<_>>(),
                        ));
                        let Some(i) = (0..r).rev().find(|&i| idx[i] != i + items.len() - r) else {
                            break;
                        };
                        idx[i] += 1;
                        for j in i + 1..r {
                            idx[j] = idx[j - 1] + 1;
                        }
                    }
                }
                Ok(Value::from(out))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// dbt's `modules`: `datetime`, `pytz`, `re` and `itertools`.
pub fn modules() -> Value {
    minijinja::context! {
        datetime => minijinja::context! {
            datetime => Value::from_object(DateClass(Class::DateTime)),
            date => Value::from_object(DateClass(Class::Date)),
            timedelta => Value::from_object(DateClass(Class::Timedelta)),
            timezone => Value::from_object(TimezoneClass),
        },
        pytz => Value::from_object(Pytz),
        re => Value::from_object(Re(None)),
        itertools => Value::from_object(Itertools),
    }
}

/// dbt's `flags`, as lakeflow knows them while rendering.
pub fn flags(invocation: &crate::project::Invocation) -> Value {
    minijinja::context! {
        FULL_REFRESH => invocation.full_refresh,
        STORE_FAILURES => false,
        WARN_ERROR => false,
        EMPTY => invocation.empty,
        FAIL_FAST => false,
        DEBUG => false,
        USE_COLORS => false,
        WHICH => invocation.which.clone(),
        INTROSPECT => true,
    }
}

/// dbt's `invocation_args_dict`: the command line of this run (a mutable mapping, as in dbt).
pub fn invocation_args(invocation: &crate::project::Invocation, target: &str) -> Value {
    // Vars named like secrets (`password`, `token`, ...) stay out of it.
    let vars: serde_json::Map<String, serde_json::Value> = invocation
        .vars
        .iter()
        .filter(|(k, _)| !crate::redact::is_secret_key(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let args = serde_json::json!({
        "which": invocation.which,
        "full_refresh": invocation.full_refresh,
        "select": invocation.select,
        "exclude": invocation.exclude,
        "target": target,
        "vars": vars,
        "invocation_command": format!("lakeflow {}", invocation.which),
    });
    super::pycompat::mutable(super::functions::to_value(args))
}

/// dbt's `dbt_metadata_envs`: the `DBT_ENV_CUSTOM_ENV_*` variables, without that prefix.
pub fn metadata_envs() -> Value {
    const PREFIX: &str = "DBT_ENV_CUSTOM_ENV_";
    let envs: std::collections::BTreeMap<String, String> = std::env::vars()
        .filter_map(|(k, v)| Some((k.strip_prefix(PREFIX)?.to_string(), v)))
        .collect();
    Value::from(envs)
}

#[cfg(test)]
mod tests {
    fn render(src: &str) -> String {
        let mut env = minijinja::Environment::new();
        env.set_unknown_method_callback(super::super::pycompat::unknown_method);
        env.add_global("modules", super::modules());
        env.add_global(
            "run_started_at",
            minijinja::Value::from_object(super::PyDateTime::now_utc()),
        );
        env.add_function("tojson", super::tojson);
        env.add_function("fromjson", super::fromjson);
        env.add_function("fromyaml", super::fromyaml);
        env.add_function("toyaml", super::toyaml);
        env.add_function("zip", super::zip);
        env.add_function("set", super::set);
        env.add_function("local_md5", super::local_md5);
        env.add_filter("as_bool", super::as_bool);
        env.add_filter("as_number", super::as_number);
        env.add_filter("as_native", super::as_native);
        env.add_filter("as_text", super::as_text);
        env.add_function(
            "binop",
            |op: String, a: minijinja::Value, b: minijinja::Value| {
                super::datetime_binop(&op, &a, &b).unwrap_or_else(|| Ok("none".into()))
            },
        );
        env.add_global("dbt", minijinja::Value::from_object(super::DbtNamespace));
        env.add_template(super::DBT_TEMPLATE, super::DBT_SOURCE)
            .unwrap_or_else(|e| panic!("{e}"));
        env.render_str(src, ())
            .unwrap_or_else(|e| format!("ERROR {e:#}"))
    }

    #[test]
    fn dbt_casting_filters() {
        assert_eq!(
            render(
                "{{ ('True' | as_bool) is sameas true }} {{ (false | as_bool) is sameas false }} {{ 'x' | as_bool }}"
            ),
            "True True x"
        );
        assert_eq!(
            render(
                "{{ ('41' | as_number) + 1 }} {{ ('1.5' | as_number) * 2 }} {{ 'a' | as_number }}"
            ),
            "42 3.0 a"
        );
        assert_eq!(
            render(
                "{{ ('[1, 2]' | as_native) | length }} {{ ('{\"a\": True}' | as_native)['a'] }} {{ 7 | as_text ~ 'x' }}"
            ),
            "2 True 7x"
        );
    }

    #[test]
    fn datetime_module() {
        assert_eq!(
            render(
                "{% set d = modules.datetime.datetime(2024, 3, 5, 7, 8, 9) %}{{ d }}|{{ d.strftime('%Y/%m/%d %H') }}|{{ d.isoformat() }}|{{ d.date() }}|{{ modules.datetime.timedelta(days=1, hours=2) }}|{{ modules.datetime.date(2024, 1, 31).strftime('%d.%m') }}|{{ modules.datetime.datetime.strptime('2024-01-02', '%Y-%m-%d').day }}|{{ modules.datetime.datetime.fromisoformat('2024-01-02T03:04:05').hour }}"
            ),
            "2024-03-05 07:08:09|2024/03/05 07|2024-03-05T07:08:09|2024-03-05|1 day, 2:00:00|31.01|2|3"
        );
        assert_eq!(
            render(
                "{{ run_started_at.strftime('%Y') | length }}|{{ (run_started_at | string)[-6:] }}|{{ modules.datetime.date.today().year > 2000 }}"
            ),
            "4|+00:00|True"
        );
        assert!(
            render("{{ modules.datetime.datetime.now().strftime('%Q') }}").starts_with("ERROR")
        );
        // Codes a value has no data for follow Python instead of panicking: a naive value's
        // %z is empty, UTC's is +0000, a date's hour is 00.
        assert_eq!(
            render(
                "{{ modules.datetime.datetime(2024, 3, 5, 7).strftime('%H%z|') }}{{ run_started_at.strftime('%z %Z') }}|{{ modules.datetime.date(2024, 1, 31).strftime('%d %H:%M') }}"
            ),
            "07|+0000 UTC|31 00:00"
        );
    }

    /// Expected strings are what Python 3.11 with pytz prints for the same expressions.
    #[test]
    fn pytz_module() {
        let pre = "{% set m = modules.datetime %}{% set pytz = modules.pytz %}{% set tz = pytz.timezone('America/Los_Angeles') %}{% set d = m.datetime(1997, 9, 29, 6, 14, 0, tzinfo=tz) %}{% set l = tz.localize(m.datetime(1997, 9, 29, 6, 14)) %}";
        let r = |body: &str| render(&format!("{pre}{body}"));
        assert_eq!(
            r(
                "{{ d }}|{{ d.isoformat() }}|{{ d.timestamp() }}|{{ d.tzinfo }}|{{ d.tzinfo.zone }}|{{ d.strftime('%z %Z') }}|{{ l }}|{{ l.timestamp() }}|{{ l.strftime('%Y-%m-%d %H:%M %z %Z') }}|{{ tz.localize(m.datetime(2024, 1, 15, 12)).strftime('%z %Z') }}"
            ),
            "1997-09-29 06:14:00-07:53|1997-09-29T06:14:00-07:53|875542020.0|America/Los_Angeles|America/Los_Angeles|-0753 LMT|1997-09-29 06:14:00-07:00|875538840.0|1997-09-29 06:14 -0700 PDT|-0800 PST"
        );
        assert_eq!(
            r(
                "{{ pytz.utc }}|{{ pytz.UTC.zone }}|{{ pytz.utc.localize(m.datetime(2024, 1, 2, 3, 4, 5)).timestamp() }}|{{ l.astimezone(pytz.utc) }}|{{ l.astimezone(pytz.timezone('Europe/Paris')) }}|{{ l.replace(tzinfo=none) }}|{{ l.replace(tzinfo=pytz.utc) }}|{{ m.datetime(year=2024, month=1, day=2, hour=3, tzinfo=pytz.utc) }}|{{ l < pytz.utc.localize(m.datetime(2024, 1, 1)) }}|{{ l == l.astimezone(pytz.utc) }}|{{ m.datetime(2000, 1, 1, tzinfo=pytz.timezone('Asia/Kolkata')) }}|{{ pytz.timezone('Asia/Kolkata').localize(m.datetime(2000, 1, 1)).strftime('%Z') }}"
            ),
            "UTC|UTC|1704164645.0|1997-09-29 13:14:00+00:00|1997-09-29 15:14:00+02:00|1997-09-29 06:14:00|1997-09-29 06:14:00+00:00|2024-01-02 03:00:00+00:00|True|True|2000-01-01 00:00:00+05:53|IST"
        );
        assert_eq!(
            r(
                "{% set f = m.datetime.fromisoformat('2024-01-02T03:04:05+05:30') %}{{ f }}|{{ f.tzinfo }}|{{ f.strftime('%z %Z') }}|{{ f.timestamp() }}|{{ m.datetime.fromisoformat('2024-01-02 03:04:05').tzinfo is none }}|{{ tz.localize(m.datetime(2008, 3, 9, 2, 30)) }}|{{ tz.localize(m.datetime(2008, 11, 2, 1, 30)) }}|{{ tz.localize(m.datetime(2008, 11, 2, 1, 30), is_dst=true) }}|{{ m.datetime(2024, 1, 2, tzinfo=m.timezone.utc) }}|{{ m.datetime(2024, 1, 2, tzinfo=m.timezone(m.timedelta(hours=-3))).strftime('%z %Z') }}|{{ m.date(2024, 1, 2) < m.date(2024, 1, 3) }}|{{ l.replace(tzinfo=tz) }}"
            ),
            "2024-01-02 03:04:05+05:30|UTC+05:30|+0530 UTC+05:30|1704144845.0|True|2008-03-09 02:30:00-08:00|2008-11-02 01:30:00-08:00|2008-11-02 01:30:00-07:00|2024-01-02 00:00:00+00:00|-0300 UTC-03:00|True|1997-09-29 06:14:00-07:53"
        );
        // today()/now()/utcnow() are naive; unknown zones and localizing aware values fail.
        assert_eq!(
            render(
                "{{ modules.datetime.datetime.today().tzinfo is none }}|{{ modules.datetime.datetime.now().tzinfo is none }}|{{ modules.datetime.datetime.utcnow().year > 2000 }}|{{ modules.datetime.datetime.today().replace(hour=0, minute=0, second=0, microsecond=0).strftime('%H:%M:%S.%f') }}|{{ modules.datetime.datetime.now(modules.pytz.utc).tzinfo }}|{{ modules.datetime.datetime(2024, 1, 1) and modules.datetime.date(2024, 1, 1) and modules.pytz.utc and 'yes' }}|{{ modules.datetime.timedelta(0) or 'zero' }}"
            ),
            "True|True|True|00:00:00.000000|UTC|yes|zero"
        );
        assert!(
            render("{{ modules.pytz.timezone('Nowhere/Land') }}").contains("UnknownTimeZoneError")
        );
        assert!(render("{{ modules.pytz.utc.localize(run_started_at) }}").contains("Not naive"));
    }

    /// Python's datetime arithmetic (expected strings from Python 3.11).
    #[test]
    fn datetime_arithmetic() {
        assert_eq!(
            render(
                "{% set m = modules.datetime %}{% set tz = modules.pytz.timezone('America/Los_Angeles') %}{{ binop('-', m.date(2024, 3, 1), m.timedelta(365)) }}|{{ binop('-', m.datetime(2024, 3, 1, 5), m.timedelta(days=10)) }}|{{ binop('+', m.timedelta(hours=1), m.datetime(2024, 3, 1, 23, 30)) }}|{{ binop('-', m.date(2024, 3, 1), m.timedelta(hours=1)) }}|{{ binop('-', m.datetime(2024, 3, 2), m.datetime(2024, 3, 1, 12)) }}|{{ binop('-', m.date(2024, 3, 1), m.date(2024, 1, 1)) }}|{{ binop('-', m.timedelta(1), m.timedelta(2)) }}|{{ binop('*', m.timedelta(hours=1), 2.5) }}|{{ binop('/', m.timedelta(1), m.timedelta(hours=1)) }}|{{ binop('//', m.timedelta(1), m.timedelta(hours=7)) }}|{{ binop('+', tz.localize(m.datetime(2024, 3, 9, 12)), m.timedelta(1)) }}|{{ binop('-', tz.localize(m.datetime(2024, 3, 9, 12)), modules.pytz.utc.localize(m.datetime(2024, 3, 9, 12))) }}|{{ binop('+', 1, 2) }}|{{ m.timedelta(seconds=1.5) }}|{{ m.timedelta(2) > m.timedelta(1) }}"
            ),
            "2023-03-02|2024-02-20 05:00:00|2024-03-02 00:30:00|2024-03-01|12:00:00|60 days, 0:00:00|-1 day, 0:00:00|2:30:00|24.0|3|2024-03-10 12:00:00-08:00|8:00:00|none|0:00:01.500000|True"
        );
        assert!(
            render("{{ binop('-', modules.datetime.datetime(2024, 1, 1), run_started_at) }}")
                .contains("offset-naive")
        );
    }

    #[test]
    fn re_module() {
        assert_eq!(
            render(
                r"{{ modules.re.sub('[^a-z0-9]+', '_', 'Hello World!'.lower()) }}|{{ modules.re.match('a(b)', 'abc').group(1) }}|{{ modules.re.match('b', 'abc') is none }}|{{ modules.re.search('b', 'abc') is not none }}|{{ modules.re.findall('[0-9]+', 'a1b22') }}|{{ modules.re.compile('X', modules.re.IGNORECASE).sub('y', 'xX') }}|{{ modules.re.sub('(a)(b)', '\\2\\1', 'ab') }}"
            ),
            "hello_world_|b|True|True|['1', '22']|yy|ba"
        );
        // Look-around and back-references as in Python; a match is true, `m[1]` a group.
        assert_eq!(
            render(
                r"{{ modules.re.findall('(?<!distinct\s)select', 'select distinct select x') | length }}|{{ modules.re.sub('(\\w)\\1', '#', 'aabcc') }}|{{ 'yes' if modules.re.match('a', 'abc') else 'no' }}|{{ modules.re.search('(b)(c)', 'abc')[2] }}|{{ modules.re.search('b', 'abc') }}"
            ),
            "1|#b#|yes|c|<re.Match object; span=(1, 2), match='b'>"
        );
    }

    #[test]
    fn itertools_module() {
        assert_eq!(
            render(
                "{{ modules.itertools.chain([1], [2, 3]) }}|{{ modules.itertools.product([1, 2], ['a']) }}|{{ modules.itertools.combinations([1, 2, 3], 2) }}|{{ modules.itertools.combinations([1], 2) }}"
            ),
            "[1, 2, 3]|[[1, 'a'], [2, 'a']]|[[1, 2], [1, 3], [2, 3]]|[]"
        );
    }

    #[test]
    fn small_functions() {
        assert_eq!(
            render(
                "{{ tojson({'a': [1, 'x'], 'b': none}) }}|{{ fromjson('{\"k\": [1, 2]}').k[1] }}|{{ fromyaml('a: 1').a }}|{{ toyaml({'a': 1}) | trim }}|{{ zip([1, 2], ['a', 'b']) }}|{{ set([1, 2, 1]) }}|{{ local_md5('abc') }}"
            ),
            "{\"a\": [1, \"x\"], \"b\": null}|2|1|a: 1|[[1, 'a'], [2, 'b']]|[1, 2]|900150983cd24fb0d6963f7d28e17f72"
        );
        // Keys keep their order, as in Python, unless sort_keys=True.
        assert_eq!(
            render(
                "{{ tojson({'b': 1, 'a': {'d': 2, 'c': 3}}) }}|{{ tojson({'b': 1, 'a': 2}, sort_keys=True) }}"
            ),
            "{\"b\": 1, \"a\": {\"d\": 2, \"c\": 3}}|{\"a\": 2, \"b\": 1}"
        );
    }

    #[test]
    fn dbt_namespace() {
        assert_eq!(
            render(
                "{{ dbt.dateadd('day', 1, 'd') }}|{{ dbt.type_string() }}|{{ dbt.concat(['a', 'b']) }}|{{ dbt.last_day('d', 'month') }}"
            ),
            "(d + cast(1 as bigint) * interval 1 day)|TEXT|a || b|cast(((date_trunc('month', d) + cast(1 as bigint) * interval 1 month) + cast(-1 as bigint) * interval 1 day) as date)"
        );
    }
}
