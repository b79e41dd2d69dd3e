//! The Python methods dbt projects call on Jinja values (`d.items()`, `s.upper()`,
//! `s.split(',')`, ...), which Jinja inherits from Python and minijinja does not have.

use minijinja::value::{Enumerator, Object, ObjectRepr, Value, ValueKind};
use minijinja::{Error, ErrorKind, State};
use std::sync::{Arc, Mutex, MutexGuard};

pub fn unknown_method(
    state: &mut State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    // minijinja-contrib first (Python's str/dict/list reading methods); ours for the rest.
    match minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args) {
        Err(e) if e.kind() == ErrorKind::UnknownMethod => {}
        other => return other,
    }
    match value.kind() {
        ValueKind::Map => map_method(value, method, args),
        ValueKind::String => string_method(value.as_str().unwrap_or_default(), method, args),
        ValueKind::Seq => seq_method(value, method, args),
        _ => Err(unknown(value, method)),
    }
}

fn unknown(value: &Value, method: &str) -> Error {
    Error::new(
        ErrorKind::UnknownMethod,
        format!("{} has no method named {method}", value.kind()),
    )
}

fn immutable(value: &Value, method: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "cannot call {method}() on this {}: only lists and dicts made with `{{% set x = [...] %}}` / `{{% set x = {{...}} %}}` can be changed in place",
            value.kind()
        ),
    )
}

fn map_method(value: &Value, method: &str, _args: &[Value]) -> Result<Value, Error> {
    match method {
        "update" | "pop" | "setdefault" | "clear" | "popitem" => Err(immutable(value, method)),
        "copy" => Ok(mutable(value.clone())),
        _ => Err(unknown(value, method)),
    }
}

fn string_method(s: &str, method: &str, args: &[Value]) -> Result<Value, Error> {
    Ok(match method {
        "rsplit" => {
            let max = args.get(1).and_then(|v| v.as_i64()).unwrap_or(-1);
            let mut parts: Vec<Value> = match args.first().and_then(|v| v.as_str()) {
                Some(sep) if !sep.is_empty() => {
                    if max < 0 {
                        s.rsplit(sep).map(Value::from).collect()
                    } else {
                        s.rsplitn(max as usize + 1, sep).map(Value::from).collect()
                    }
                }
                _ => s.split_whitespace().rev().map(Value::from).collect(),
            };
            parts.reverse();
            Value::from(parts)
        }
        "zfill" => {
            let width = args.first().and_then(|v| v.as_usize()).unwrap_or(0);
            let n = s.chars().count();
            let (sign, rest) = match s.strip_prefix('-') {
                Some(r) => ("-", r),
                None => ("", s),
            };
            Value::from(format!(
                "{sign}{}{rest}",
                "0".repeat(width.saturating_sub(n))
            ))
        }
        _ => return Err(unknown(&Value::from(s), method)),
    })
}

fn seq_method(value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
    match method {
        "index" => {
            let needle = args.first().cloned().unwrap_or_default();
            value
                .try_iter()?
                .position(|v| v == needle)
                .map(Value::from)
                .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "value is not in the list"))
        }
        "copy" => Ok(mutable(value.clone())),
        // On a list nothing keeps (`(xs | list).pop()`), the element is all that is seen.
        "pop" => {
            let items: Vec<Value> = value.try_iter()?.collect();
            let len = items.len() as i64;
            let at = args.first().and_then(Value::as_i64).unwrap_or(-1);
            let at = if at < 0 { len + at } else { at };
            usize::try_from(at)
                .ok()
                .and_then(|i| items.get(i).cloned())
                .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "pop index out of range"))
        }
        "append" | "extend" | "insert" | "remove" | "clear" | "reverse" | "sort" | "add" => {
            Err(immutable(value, method))
        }
        _ => Err(unknown(value, method)),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A Python list: `append`, `extend`, `insert`, `pop`, `remove`, ... change it in place.
#[derive(Debug, Default)]
pub struct MutList(Mutex<Vec<Value>>, Kind);

/// A list, or a Python set: unique items kept in sorted order, so that two sets with the
/// same items are equal whatever order they were built in.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum Kind {
    #[default]
    List,
    Set,
}

impl MutList {
    pub fn new_value(items: Vec<Value>) -> Value {
        Value::from_object(MutList(Mutex::new(items), Kind::List))
    }

    /// Python's `set(items)`.
    pub fn new_set(items: Vec<Value>) -> Value {
        let mut items = items;
        items.sort();
        items.dedup();
        Value::from_object(MutList(Mutex::new(items), Kind::Set))
    }
}

/// Python's indexing of a sequence of `len` items: negative counts from the end.
pub(super) fn index(i: Option<i64>, len: usize) -> Option<usize> {
    let i = i?;
    let i = if i < 0 { len as i64 + i } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

impl Object for MutList {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let items = lock(&self.0);
        index(key.as_i64(), items.len()).map(|i| items[i].clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(lock(&self.0).clone())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(lock(&self.0).len())
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
        // Read before locking: `l.extend(l)` iterates this very list.
        let more: Option<Vec<Value>> = match method {
            "extend" => Some(arg(0).try_iter()?.collect()),
            _ => None,
        };
        let mut items = lock(&self.0);
        match method {
            "add" | "update" if self.1 == Kind::Set => {
                match method {
                    "update" => items.extend(arg(0).try_iter()?),
                    _ => items.push(arg(0)),
                }
                items.sort();
                items.dedup();
            }
            "append" => items.push(mutable(arg(0))),
            "add" => {
                if !items.contains(&arg(0)) {
                    items.push(arg(0));
                }
            }
            "extend" => items.extend(more.unwrap_or_default()),
            "insert" => {
                let len = items.len() as i64;
                let i = arg(0).as_i64().unwrap_or(len);
                let i = if i < 0 { (len + i).max(0) } else { i.min(len) };
                items.insert(i as usize, mutable(arg(1)));
            }
            "pop" => {
                let i = args.first().map_or(Some(-1), |v| v.as_i64());
                return match index(i, items.len()) {
                    Some(i) => Ok(items.remove(i)),
                    None => Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "pop index out of range",
                    )),
                };
            }
            "remove" => {
                let needle = arg(0);
                match items.iter().position(|v| *v == needle) {
                    Some(i) => {
                        items.remove(i);
                    }
                    None => {
                        return Err(Error::new(
                            ErrorKind::InvalidOperation,
                            "list.remove(x): x not in list",
                        ));
                    }
                }
            }
            "clear" => items.clear(),
            "reverse" => items.reverse(),
            "sort" => items.sort(),
            "copy" => {
                return Ok(match self.1 {
                    Kind::List => MutList::new_value(items.clone()),
                    Kind::Set => MutList::new_set(items.clone()),
                });
            }
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        }
        Ok(Value::from(()))
    }
}

/// A Python dict: `update`, `pop`, `setdefault`, `clear` change it in place.
#[derive(Debug, Default)]
pub struct MutDict(Mutex<Vec<(Value, Value)>>);

impl MutDict {
    pub fn new_value(pairs: Vec<(Value, Value)>) -> Value {
        Value::from_object(MutDict(Mutex::new(pairs)))
    }
}

fn set_pair(pairs: &mut Vec<(Value, Value)>, key: Value, value: Value) {
    match pairs.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => pairs.push((key, value)),
    }
}

fn map_pairs(value: &Value) -> Result<Vec<(Value, Value)>, Error> {
    if value.kind() != ValueKind::Map {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("update() needs a dict, not {}", value.kind()),
        ));
    }
    value
        .try_iter()?
        .map(|k| {
            let v = value.get_item(&k)?;
            Ok((k, v))
        })
        .collect()
}

impl Object for MutDict {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        lock(&self.0)
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(lock(&self.0).iter().map(|(k, _)| k.clone()).collect())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(lock(&self.0).len())
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
        match method {
            "update" => {
                // Collected before locking: the argument may be this dict itself.
                let mut new = Vec::new();
                for a in args {
                    new.extend(map_pairs(a)?);
                }
                let mut pairs = lock(&self.0);
                for (k, v) in new {
                    set_pair(&mut pairs, k, mutable(v));
                }
                Ok(Value::from(()))
            }
            "pop" => {
                let mut pairs = lock(&self.0);
                let key = arg(0);
                match pairs.iter().position(|(k, _)| *k == key) {
                    Some(i) => Ok(pairs.remove(i).1),
                    None if args.len() > 1 => Ok(arg(1)),
                    None => Err(Error::new(
                        ErrorKind::InvalidOperation,
                        format!("key {key} is not in the dict"),
                    )),
                }
            }
            "setdefault" => {
                let mut pairs = lock(&self.0);
                let key = arg(0);
                match pairs.iter().find(|(k, _)| *k == key) {
                    Some((_, v)) => Ok(v.clone()),
                    None => {
                        let v = mutable(arg(1));
                        pairs.push((key, v.clone()));
                        Ok(v)
                    }
                }
            }
            "clear" => {
                lock(&self.0).clear();
                Ok(Value::from(()))
            }
            "copy" => Ok(MutDict::new_value(lock(&self.0).clone())),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// A list or dict literal as a Python-like mutable value (deeply, for nested literals);
/// anything else unchanged. Registered as `__lf_mut`, see [`mutable_literals`].
pub fn mutable(value: Value) -> Value {
    let Some(obj) = value.as_object() else {
        return value;
    };
    if let Some(items) = obj.downcast_ref::<Vec<Value>>() {
        return MutList::new_value(items.iter().cloned().map(mutable).collect());
    }
    // A plain `Map` is a dict literal; lakeflow's own objects (relations, columns, result
    // tables, dicts already mutable) are kept as they are.
    // (nor a `namespace()`, which Jinja assigns attributes of).
    if value.kind() == ValueKind::Map
        && obj.type_name().split("::").next() != Some(env!("CARGO_CRATE_NAME"))
        && !obj.type_name().ends_with("Namespace")
        && let Ok(pairs) = map_pairs(&value)
    {
        return MutDict::new_value(pairs.into_iter().map(|(k, v)| (k, mutable(v))).collect());
    }
    value
}

/// Jinja's `namespace(...)` whose lists and dicts change in place (`ns.cols.append(x)`), as
/// in Python.
pub fn namespace(defaults: Option<minijinja::value::ValueOrKwargs>) -> Result<Value, Error> {
    let Some(defaults) = defaults else {
        return minijinja::functions::namespace(None);
    };
    let given = defaults.into_value();
    let values: std::collections::BTreeMap<String, Value> = map_pairs(&given)?
        .into_iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), mutable(v))))
        .collect();
    let (arg,): (Option<minijinja::value::ValueOrKwargs>,) =
        minijinja::value::from_args(&[Value::from(values)])?;
    minijinja::functions::namespace(arg)
}

#[cfg(test)]
mod tests {
    fn env() -> minijinja::Environment<'static> {
        let mut env = minijinja::Environment::new();
        env.set_unknown_method_callback(super::unknown_method);
        env.add_function(super::super::pysource::MUTABLE_FN, super::mutable);
        env.add_function("namespace", super::namespace);
        env
    }

    fn render(src: &str) -> String {
        let src = super::super::pysource::mutable_literals(src);
        env()
            .render_str(
                &src,
                minijinja::context! { d => minijinja::context! { a => 1, b => 2 } },
            )
            .unwrap_or_else(|e| format!("ERROR {e}"))
    }

    #[test]
    fn python_methods_work() {
        assert_eq!(
            render(
                "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{{ d.get('x', 'no') }}|{{ ' A b '.strip().lower() }}|{{ 'a,b'.split(',') | length }}|{{ ', '.join(['x', 'y']) }}|{{ 'abc'.startswith('ab') }}|{{ d.keys() | list | length }}"
            ),
            "a=1;b=2;no|a b|2|x, y|True|2"
        );
        assert_eq!(
            render(
                "{{ d.get('missing') is none }}|{{ d.get('a', 5) }}|{{ 'a.b.c'.rsplit('.', 1) }}|{{ '{}-{}'.format(1, 'x') }}|{{ [1, 2, 1].index(2) }}|{{ 'abcb'.count('b') }}|{{ 'abc'.find('c') }}|{{ 'x y'.title() }}"
            ),
            "True|1|['a.b', 'c']|1-x|1|2|2|X Y"
        );
    }

    #[test]
    fn literals_are_mutable() {
        assert_eq!(
            render(
                "{% set l = [] %}{% do l.append(1) %}{% do l.extend([2, 3]) %}{% do l.insert(0, 0) %}{{ l.pop() }}|{{ l }}|{{ l | length }}|{{ l.index(1) }}|{{ l.count(2) }}"
            ),
            "3|[0, 1, 2]|3|1|1"
        );
        assert_eq!(
            render(
                "{%- set m = {'a': 1} -%}{% do m.update({'b': 2}) %}{% do m.update(c=3) %}{{ m.pop('a') }}|{{ m.setdefault('z', []) }}|{% for k, v in m.items() %}{{ k }}{{ v }}{% endfor %}|{{ m.get('nope') is none }}|{{ m | tojson }}"
            ),
            "1|[]|b2c3z[]|True|{\"b\": 2, \"c\": 3, \"z\": []}"
        );
        assert_eq!(
            render("{% set n = {'x': []} %}{% do n['x'].append('%}') %}{{ n.x }}"),
            "['%}']"
        );
        // Extending a list by itself reads it before changing it (no self-deadlock).
        assert_eq!(
            render("{% set l = [1, 2] %}{% do l.extend(l) %}{{ l }}"),
            "[1, 2, 1, 2]"
        );
    }

    #[test]
    fn mutable_values_behave_like_literals() {
        assert_eq!(
            render(
                "{% set l = [] %}{{ l == [] }} {{ 'y' if l else 'n' }}{% do l.append('a') %} {{ l == ['a'] }} {{ 'a' in l }} {{ l is sequence }} {{ (l + ['b'])[1:] }} {{ l | join(',') }} {{ l[-1] }}{% set m = {} %} {{ m is mapping }} {{ 'k' in m }}{% do m.update({'k': 1}) %} {{ 'k' in m }} {{ m.k }} {{ m['k'] }} {{ m | length }}"
            ),
            "True n True True True ['b'] a a True False True 1 1 1"
        );
        assert!(render("{{ d.update({'x': 1}) }}").contains("changed in place"));
        assert_eq!(
            render(
                "{% set l = ['b', 'a', 'b'] %}{{ l | first }} {{ l | last }} {{ l | reverse | list }} {{ l | sort | list }} {{ l | unique | list }} {{ l | map('upper') | join }} {{ l | select('ne', 'b') | list }} {{ l[0:2] }} {% for x in l %}{{ loop.index }}{{ x }}{% if loop.last %}.{% endif %}{% endfor %}{% set m = {'z': 1, 'a': 2} %} {{ m | dictsort }} {{ m | items | list }} {{ m | tojson }}"
            ),
            "b b ['b', 'a', 'b'] ['a', 'b', 'b'] ['b', 'a'] BAB ['a'] ['b', 'a'] 1b2a3b. [('a', 2), ('z', 1)] [('z', 1), ('a', 2)] {\"z\": 1, \"a\": 2}"
        );
    }

    #[test]
    fn lists_from_filters_and_namespaces_change_in_place() {
        assert_eq!(
            render(
                "{% set ns = namespace(cols=[], n=0) %}{% set ns.n = ns.n + 1 %}{% do ns.cols.append('a') %}{% do ns.cols.append('b') %}{{ ns.cols }}|{% set l = ['x', 'y'] | select('ne', 'q') | list %}{% do l.append('z') %}{{ l }}|{{ (['p', 'q'] | list).pop() }}|{{ (['p', 'q'] | list).pop(0) }}"
            ),
            "['a', 'b']|['x', 'y', 'z']|q|p"
        );
    }
}
