//! dbt context globals beyond `ref`/`source`/`config`: `modules.datetime`, `modules.re`,
//! `run_started_at`, `invocation_id`, `flags`, `tojson`/`fromjson`/`toyaml`/`fromyaml`, `zip`,
//! `set`, `local_md5`, and the `dbt` namespace of cross-database macros
//! (`dbt.dateadd(...)`, from `templates/dbt/cross_db.sql`).

use super::pycompat::MutList;
use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use minijinja::value::{Kwargs, Object, Rest, Value, from_args};
use minijinja::{Error, ErrorKind, State};
use std::fmt;
use std::sync::Arc;

/// Template name of dbt's cross-database macros.
pub const DBT_TEMPLATE: &str = "__lakeflow_dbt__";
pub const DBT_SOURCE: &str = include_str!("../../templates/dbt/cross_db.sql");

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
        let mut captured = template.render_captured(())?;
        captured.with_state_mut(|st| match st.lookup(method) {
            Some(m) if !m.is_undefined() => m.call(st, args),
            _ => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("lakeflow has no dbt.{method}() macro"),
            )),
        })
    }
}

// ---------------------------------------------------------------------------------------
// small functions

pub fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let sort: Option<bool> = kwargs.get("sort_keys")?;
    let _: Option<Value> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let mut json = serde_json::to_value(&value).map_err(|e| err(e.to_string()))?;
    if sort == Some(true) {
        json = sort_keys(json);
    }
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    serde::Serialize::serialize(&json, &mut ser).map_err(|e| err(e.to_string()))?;
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
    match serde_yaml::from_str::<serde_json::Value>(&text) {
        Ok(v) => Ok(super::pycompat::mutable(super::functions::to_value(v))),
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
    let mut out: Vec<Value> = Vec::new();
    if let Some(items) = items {
        for v in items.try_iter()? {
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    Ok(MutList::new_value(out))
}

pub fn local_md5(text: String) -> String {
    use md5::Digest;
    let digest = md5::Md5::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------
// datetime

/// Python's strftime format in chrono's dialect (`%f` is microseconds in Python).
fn strftime(fmt: &str, f: impl FnOnce(&[chrono::format::Item]) -> String) -> Result<Value, Error> {
    let fmt = fmt.replace("%f", "%6f");
    let items: Vec<chrono::format::Item> = chrono::format::StrftimeItems::new(&fmt).collect();
    if items
        .iter()
        .any(|i| matches!(i, chrono::format::Item::Error))
    {
        return Err(err(format!("strftime: unsupported format '{fmt}'")));
    }
    Ok(Value::from(f(&items)))
}

/// A Python `datetime.datetime` (naive, or UTC when `utc`).
#[derive(Debug, Clone, Copy)]
pub struct PyDateTime {
    pub dt: NaiveDateTime,
    pub utc: bool,
}

impl PyDateTime {
    pub fn now_utc() -> PyDateTime {
        PyDateTime {
            dt: chrono::Utc::now().naive_utc(),
            utc: true,
        }
    }

    fn iso(&self, sep: &str) -> String {
        let mut s = self
            .dt
            .format(&format!("%Y-%m-%d{sep}%H:%M:%S"))
            .to_string();
        let us = self.dt.and_utc().timestamp_subsec_micros();
        if us != 0 {
            s.push_str(&format!(".{us:06}"));
        }
        if self.utc {
            s.push_str("+00:00");
        }
        s
    }
}

impl fmt::Display for PyDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.iso(" "))
    }
}

impl Object for PyDateTime {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let d = &self.dt;
        Some(Value::from(match key.as_str()? {
            "year" => d.year() as i64,
            "month" => d.month() as i64,
            "day" => d.day() as i64,
            "hour" => d.hour() as i64,
            "minute" => d.minute() as i64,
            "second" => d.second() as i64,
            "microsecond" => (d.and_utc().timestamp_subsec_micros()) as i64,
            "tzinfo" if self.utc => return Some(Value::from("UTC")),
            "tzinfo" => return Some(Value::from(())),
            _ => return None,
        }))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "strftime" => {
                let (fmt,): (String,) = from_args(args)?;
                strftime(&fmt, |items| {
                    self.dt.format_with_items(items.iter()).to_string()
                })
            }
            "isoformat" => {
                let (sep,): (Option<String>,) = from_args(args)?;
                Ok(Value::from(self.iso(sep.as_deref().unwrap_or("T"))))
            }
            "date" => Ok(Value::from_object(PyDate(self.dt.date()))),
            "timestamp" => Ok(Value::from(
                self.dt.and_utc().timestamp_micros() as f64 / 1_000_000.0,
            )),
            "weekday" => Ok(Value::from(self.dt.weekday().num_days_from_monday())),
            "isoweekday" => Ok(Value::from(self.dt.weekday().number_from_monday())),
            "replace" => {
                let (kw,): (Kwargs,) = from_args(args)?;
                let d = self.dt;
                let get = |k: &str, v: u32| -> Result<u32, Error> {
                    Ok(kw.get::<Option<u32>>(k)?.unwrap_or(v))
                };
                let year: Option<i32> = kw.get("year")?;
                let date = NaiveDate::from_ymd_opt(
                    year.unwrap_or(d.year()),
                    get("month", d.month())?,
                    get("day", d.day())?,
                );
                let micro = get("microsecond", d.and_utc().timestamp_subsec_micros())?;
                let dt = date.and_then(|date| {
                    date.and_hms_micro_opt(
                        get("hour", d.hour()).ok()?,
                        get("minute", d.minute()).ok()?,
                        get("second", d.second()).ok()?,
                        micro,
                    )
                });
                let _: Option<Value> = kw.get("tzinfo")?;
                kw.assert_all_used()?;
                dt.map(|dt| Value::from_object(PyDateTime { dt, utc: self.utc }))
                    .ok_or_else(|| err("datetime.replace(): invalid date"))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// A Python `datetime.date`.
#[derive(Debug, Clone, Copy)]
pub struct PyDate(pub NaiveDate);

impl Object for PyDate {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(Value::from(match key.as_str()? {
            "year" => self.0.year() as i64,
            "month" => self.0.month() as i64,
            "day" => self.0.day() as i64,
            _ => return None,
        }))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "strftime" => {
                let (fmt,): (String,) = from_args(args)?;
                strftime(&fmt, |items| {
                    self.0.format_with_items(items.iter()).to_string()
                })
            }
            "isoformat" => Ok(Value::from(self.0.format("%Y-%m-%d").to_string())),
            "weekday" => Ok(Value::from(self.0.weekday().num_days_from_monday())),
            "isoweekday" => Ok(Value::from(self.0.weekday().number_from_monday())),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

/// A Python `datetime.timedelta`.
#[derive(Debug, Clone, Copy)]
pub struct PyTimedelta(pub chrono::TimeDelta);

impl Object for PyTimedelta {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let secs = self.0.num_seconds();
        Some(Value::from(match key.as_str()? {
            "days" => secs.div_euclid(86_400),
            "seconds" => secs.rem_euclid(86_400),
            "microseconds" => i64::from(self.0.subsec_nanos() / 1000),
            _ => return None,
        }))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        _args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "total_seconds" => Ok(Value::from(
                self.0.num_microseconds().unwrap_or(i64::MAX) as f64 / 1_000_000.0,
            )),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.num_seconds();
        let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        if days != 0 {
            write!(f, "{days} day{}, ", if days.abs() == 1 { "" } else { "s" })?;
        }
        write!(
            f,
            "{}:{:02}:{:02}",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    DateTime,
    Date,
    Timedelta,
}

/// `modules.datetime.datetime` / `.date` / `.timedelta`: callable, with class methods.
#[derive(Debug)]
struct DateClass(Class);

fn parse_iso(s: &str) -> Option<PyDateTime> {
    let s = s.trim();
    let (s, utc) = match s.strip_suffix("+00:00").or_else(|| s.strip_suffix('Z')) {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(PyDateTime { dt, utc });
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| PyDateTime { dt, utc })
}

impl Object for DateClass {
    fn call(self: &Arc<Self>, _state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        match self.0 {
            Class::Timedelta => {
                let (pos, kw): (Rest<f64>, Kwargs) = from_args(args)?;
                let mut secs = 0.0;
                let units = [
                    ("days", 86_400.0),
                    ("seconds", 1.0),
                    ("microseconds", 1e-6),
                    ("milliseconds", 1e-3),
                    ("minutes", 60.0),
                    ("hours", 3600.0),
                    ("weeks", 604_800.0),
                ];
                for (i, (name, factor)) in units.iter().enumerate() {
                    let v = match pos.get(i) {
                        Some(v) => Some(*v),
                        None => kw.get::<Option<f64>>(name)?,
                    };
                    secs += v.unwrap_or(0.0) * factor;
                }
                kw.assert_all_used()?;
                let micros = (secs * 1e6).round() as i64;
                Ok(Value::from_object(PyTimedelta(
                    chrono::TimeDelta::microseconds(micros),
                )))
            }
            Class::Date => {
                let (y, m, d): (i32, u32, u32) = from_args(args)?;
                NaiveDate::from_ymd_opt(y, m, d)
                    .map(|d| Value::from_object(PyDate(d)))
                    .ok_or_else(|| err("date(): day is out of range for month"))
            }
            Class::DateTime => {
                let (y, m, d, rest, kw): (i32, u32, u32, Rest<u32>, Kwargs) = from_args(args)?;
                let mut parts = [0u32; 4];
                for (i, name) in ["hour", "minute", "second", "microsecond"]
                    .iter()
                    .enumerate()
                {
                    parts[i] = match rest.get(i) {
                        Some(v) => *v,
                        None => kw.get::<Option<u32>>(name)?.unwrap_or(0),
                    };
                }
                let tz: Option<Value> = kw.get("tzinfo")?;
                kw.assert_all_used()?;
                NaiveDate::from_ymd_opt(y, m, d)
                    .and_then(|d| d.and_hms_micro_opt(parts[0], parts[1], parts[2], parts[3]))
                    .map(|dt| {
                        Value::from_object(PyDateTime {
                            dt,
                            utc: tz.is_some_and(|t| !t.is_none()),
                        })
                    })
                    .ok_or_else(|| err("datetime(): value out of range"))
            }
        }
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match (self.0, method) {
            (Class::DateTime, "now") => Ok(Value::from_object(PyDateTime {
                dt: chrono::Local::now().naive_local(),
                utc: false,
            })),
            (Class::DateTime, "utcnow") => Ok(Value::from_object(PyDateTime {
                dt: chrono::Utc::now().naive_utc(),
                utc: false,
            })),
            (Class::Date, "today") => Ok(Value::from_object(PyDate(
                chrono::Local::now().date_naive(),
            ))),
            (Class::DateTime, "strptime") => {
                let (s, fmt): (String, String) = from_args(args)?;
                let cfmt = fmt.replace("%f", "%.f");
                NaiveDateTime::parse_from_str(&s, &cfmt)
                    .or_else(|_| {
                        NaiveDate::parse_from_str(&s, &cfmt)
                            .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
                    })
                    .map(|dt| Value::from_object(PyDateTime { dt, utc: false }))
                    .map_err(|e| err(format!("strptime('{s}', '{fmt}'): {e}")))
            }
            (Class::DateTime, "fromisoformat") => {
                let (s,): (String,) = from_args(args)?;
                parse_iso(&s)
                    .map(Value::from_object)
                    .ok_or_else(|| err(format!("Invalid isoformat string: '{s}'")))
            }
            (Class::Date, "fromisoformat") => {
                let (s,): (String,) = from_args(args)?;
                NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                    .map(|d| Value::from_object(PyDate(d)))
                    .map_err(|_| err(format!("Invalid isoformat string: '{s}'")))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// re

fn py_regex(pattern: &str, flags: i64) -> Result<regex::Regex, Error> {
    let mut inline = String::new();
    for (bit, c) in [(2, 'i'), (8, 'm'), (16, 's'), (64, 'x')] {
        if flags & bit != 0 {
            inline.push(c);
        }
    }
    let full = if inline.is_empty() {
        pattern.to_string()
    } else {
        format!("(?{inline}){pattern}")
    };
    regex::Regex::new(&full).map_err(|e| err(format!("invalid regular expression: {e}")))
}

/// Python's replacement syntax (`\1`, `\g<name>`) in the regex crate's (`${1}`).
fn py_replacement(repl: &str) -> String {
    let mut out = String::with_capacity(repl.len());
    let mut chars = repl.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    let mut n = String::new();
                    while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                        n.push(d);
                        chars.next();
                    }
                    out.push_str(&format!("${{{n}}}"));
                }
                Some('g') => {
                    chars.next();
                    let mut name = String::new();
                    if chars.peek() == Some(&'<') {
                        chars.next();
                        for d in chars.by_ref() {
                            if d == '>' {
                                break;
                            }
                            name.push(d);
                        }
                    }
                    out.push_str(&format!("${{{name}}}"));
                }
                Some('n') => {
                    chars.next();
                    out.push('\n');
                }
                Some('t') => {
                    chars.next();
                    out.push('\t');
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            _ => out.push(c),
        }
    }
    out
}

/// A Python `re.Match`.
#[derive(Debug)]
struct PyMatch {
    groups: Vec<Option<(usize, usize, String)>>,
    names: Vec<Option<String>>,
}

impl PyMatch {
    fn new(re: &regex::Regex, caps: &regex::Captures) -> PyMatch {
        PyMatch {
            groups: caps
                .iter()
                .map(|m| m.map(|m| (m.start(), m.end(), m.as_str().to_string())))
                .collect(),
            names: re.capture_names().map(|n| n.map(str::to_string)).collect(),
        }
    }

    fn group(&self, key: &Value) -> Result<Value, Error> {
        let i = match key.as_str() {
            Some(name) => self.names.iter().position(|n| n.as_deref() == Some(name)),
            None => key.as_usize(),
        };
        match i.and_then(|i| self.groups.get(i)) {
            Some(Some((_, _, s))) => Ok(Value::from(s.clone())),
            Some(None) => Ok(Value::from(())),
            None => Err(err("no such group")),
        }
    }
}

impl Object for PyMatch {
    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let span = |i: usize| {
            self.groups
                .get(i)
                .and_then(|g| g.as_ref())
                .map(|g| (g.0, g.1))
        };
        let first = args.first().and_then(Value::as_usize).unwrap_or(0);
        match method {
            "group" if args.len() > 1 => args
                .iter()
                .map(|a| self.group(a))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::from),
            "group" => self.group(&args.first().cloned().unwrap_or(Value::from(0))),
            "groups" => Ok(Value::from(
                self.groups[1..]
                    .iter()
                    .map(|g| {
                        g.as_ref()
                            .map_or(Value::from(()), |g| Value::from(g.2.clone()))
                    })
                    .collect::<Vec<_>>(),
            )),
            "start" => Ok(Value::from(span(first).map_or(-1, |s| s.0 as i64))),
            "end" => Ok(Value::from(span(first).map_or(-1, |s| s.1 as i64))),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// `modules.re` (no pattern) or a compiled pattern (`re.compile(p)`).
#[derive(Debug)]
struct Re(Option<regex::Regex>);

impl Object for Re {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        if self.0.is_some() {
            return match key.as_str()? {
                "pattern" => self.0.as_ref().map(|r| Value::from(r.as_str())),
                _ => None,
            };
        }
        Some(Value::from(match key.as_str()? {
            "I" | "IGNORECASE" => 2,
            "M" | "MULTILINE" => 8,
            "S" | "DOTALL" => 16,
            "X" | "VERBOSE" => 64,
            _ => return None,
        }))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let (re, args): (regex::Regex, &[Value]) = match &self.0 {
            Some(re) => (re.clone(), args),
            None => {
                if method == "escape" {
                    let (s,): (String,) = from_args(args)?;
                    return Ok(Value::from(regex::escape(&s)));
                }
                let pattern = args
                    .first()
                    .and_then(Value::as_str)
                    .ok_or_else(|| err(format!("re.{method}() needs a pattern string")))?;
                let flags = match method {
                    "compile" => args.get(1),
                    "sub" => args.get(4),
                    "split" => args.get(3),
                    _ => args.get(2),
                }
                .and_then(Value::as_i64)
                .unwrap_or(0);
                (py_regex(pattern, flags)?, &args[1..])
            }
        };
        let text = |i: usize| -> Result<String, Error> {
            args.get(i)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| err(format!("re.{method}() needs a string")))
        };
        let found = |caps: Option<regex::Captures>| {
            caps.map_or(Value::from(()), |c| {
                Value::from_object(PyMatch::new(&re, &c))
            })
        };
        match method {
            "compile" => Ok(Value::from_object(Re(Some(re.clone())))),
            "match" => {
                let s = text(0)?;
                Ok(found(
                    re.captures(&s)
                        .filter(|c| c.get(0).is_some_and(|m| m.start() == 0)),
                ))
            }
            "fullmatch" => {
                let s = text(0)?;
                Ok(found(re.captures(&s).filter(|c| {
                    c.get(0)
                        .is_some_and(|m| m.start() == 0 && m.end() == s.len())
                })))
            }
            "search" => {
                let s = text(0)?;
                Ok(found(re.captures(&s)))
            }
            "findall" => {
                let s = text(0)?;
                let groups = re.captures_len();
                Ok(Value::from(
                    re.captures_iter(&s)
                        .map(|c| {
                            let g = |i: usize| Value::from(c.get(i).map_or("", |m| m.as_str()));
                            match groups {
                                1 => g(0),
                                2 => g(1),
                                n => Value::from((1..n).map(g).collect::<Vec<_>>()),
                            }
                        })
                        .collect::<Vec<_>>(),
                ))
            }
            "sub" => {
                let (repl, s) = (text(0)?, text(1)?);
                let count = args.get(2).and_then(Value::as_usize).unwrap_or(0);
                Ok(Value::from(
                    re.replacen(&s, count, py_replacement(&repl).as_str())
                        .into_owned(),
                ))
            }
            "split" => {
                let s = text(0)?;
                Ok(Value::from(
                    re.split(&s).map(Value::from).collect::<Vec<_>>(),
                ))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

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

/// dbt's `modules`: `datetime`, `re` and `itertools`.
pub fn modules() -> Value {
    minijinja::context! {
        datetime => minijinja::context! {
            datetime => Value::from_object(DateClass(Class::DateTime)),
            date => Value::from_object(DateClass(Class::Date)),
            timedelta => Value::from_object(DateClass(Class::Timedelta)),
        },
        re => Value::from_object(Re(None)),
        itertools => Value::from_object(Itertools),
    }
}

/// dbt's `flags`, as lakeflow knows them while rendering.
pub fn flags() -> Value {
    minijinja::context! {
        FULL_REFRESH => false,
        STORE_FAILURES => false,
        WARN_ERROR => false,
        EMPTY => false,
        FAIL_FAST => false,
        DEBUG => false,
        USE_COLORS => false,
        WHICH => "build",
        INTROSPECT => true,
    }
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
        env.add_global("dbt", minijinja::Value::from_object(super::DbtNamespace));
        env.add_template(super::DBT_TEMPLATE, super::DBT_SOURCE)
            .unwrap_or_else(|e| panic!("{e}"));
        env.render_str(src, ())
            .unwrap_or_else(|e| format!("ERROR {e:#}"))
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
    }

    #[test]
    fn re_module() {
        assert_eq!(
            render(
                r"{{ modules.re.sub('[^a-z0-9]+', '_', 'Hello World!'.lower()) }}|{{ modules.re.match('a(b)', 'abc').group(1) }}|{{ modules.re.match('b', 'abc') is none }}|{{ modules.re.search('b', 'abc') is not none }}|{{ modules.re.findall('[0-9]+', 'a1b22') }}|{{ modules.re.compile('X', modules.re.IGNORECASE).sub('y', 'xX') }}|{{ modules.re.sub('(a)(b)', '\\2\\1', 'ab') }}"
            ),
            "hello_world_|b|True|True|['1', '22']|yy|ba"
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
