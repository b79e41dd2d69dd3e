//! The Python methods dbt projects call on Jinja values (`d.items()`, `s.upper()`,
//! `s.split(',')`, ...), which Jinja inherits from Python and minijinja does not have.

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind, State};

pub fn unknown_method(
    _state: &mut State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
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

fn arg_str<'a>(args: &'a [Value], i: usize, method: &str) -> Result<&'a str, Error> {
    args.get(i).and_then(|v| v.as_str()).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("{method}() needs a string argument"),
        )
    })
}

fn map_method(value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
    let keys = || -> Result<Vec<Value>, Error> { Ok(value.try_iter()?.collect()) };
    match method {
        "items" => keys()?
            .into_iter()
            .map(|k| {
                let v = value.get_item(&k)?;
                Ok(Value::from(vec![k, v]))
            })
            .collect::<Result<Vec<_>, Error>>()
            .map(Value::from),
        "keys" => keys().map(Value::from),
        "values" => keys()?
            .iter()
            .map(|k| value.get_item(k))
            .collect::<Result<Vec<_>, Error>>()
            .map(Value::from),
        "get" => {
            let key = args.first().cloned().unwrap_or_default();
            let found = value.get_item(&key)?;
            Ok(if found.is_undefined() {
                args.get(1).cloned().unwrap_or_default()
            } else {
                found
            })
        }
        _ => Err(unknown(value, method)),
    }
}

fn string_method(s: &str, method: &str, args: &[Value]) -> Result<Value, Error> {
    let chars = |i: usize| args.get(i).and_then(|v| v.as_str().map(str::to_string));
    Ok(match method {
        "upper" => Value::from(s.to_uppercase()),
        "lower" => Value::from(s.to_lowercase()),
        "strip" => Value::from(match chars(0) {
            Some(c) => s.trim_matches(|x| c.contains(x)).to_string(),
            None => s.trim().to_string(),
        }),
        "lstrip" => Value::from(match chars(0) {
            Some(c) => s.trim_start_matches(|x| c.contains(x)).to_string(),
            None => s.trim_start().to_string(),
        }),
        "rstrip" => Value::from(match chars(0) {
            Some(c) => s.trim_end_matches(|x| c.contains(x)).to_string(),
            None => s.trim_end().to_string(),
        }),
        "replace" => Value::from(s.replace(arg_str(args, 0, method)?, arg_str(args, 1, method)?)),
        "startswith" => Value::from(s.starts_with(arg_str(args, 0, method)?)),
        "endswith" => Value::from(s.ends_with(arg_str(args, 0, method)?)),
        "split" => {
            let parts: Vec<Value> = match chars(0) {
                Some(sep) if !sep.is_empty() => s.split(sep.as_str()).map(Value::from).collect(),
                _ => s.split_whitespace().map(Value::from).collect(),
            };
            Value::from(parts)
        }
        "join" => {
            let items: Vec<String> = args
                .first()
                .map(|v| v.try_iter().map(|it| it.map(|x| x.to_string()).collect()))
                .transpose()?
                .unwrap_or_default();
            Value::from(items.join(s))
        }
        "title" => Value::from(
            s.split(' ')
                .map(|w| {
                    let mut c = w.chars();
                    match c.next() {
                        Some(f) => f
                            .to_uppercase()
                            .chain(c.flat_map(char::to_lowercase))
                            .collect(),
                        None => String::new(),
                    }
                })
                .collect::<Vec<String>>()
                .join(" "),
        ),
        "capitalize" => {
            let mut c = s.chars();
            Value::from(match c.next() {
                Some(f) => f
                    .to_uppercase()
                    .chain(c.flat_map(char::to_lowercase))
                    .collect::<String>(),
                None => String::new(),
            })
        }
        "isdigit" => Value::from(!s.is_empty() && s.chars().all(|c| c.is_ascii_digit())),
        "count" => Value::from(s.matches(arg_str(args, 0, method)?).count()),
        "find" => Value::from(
            s.find(arg_str(args, 0, method)?)
                .map(|i| i as i64)
                .unwrap_or(-1),
        ),
        _ => return Err(unknown(&Value::from(s), method)),
    })
}

fn seq_method(value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
    let items: Vec<Value> = value.try_iter()?.collect();
    match method {
        "count" => {
            let needle = args.first().cloned().unwrap_or_default();
            Ok(Value::from(items.iter().filter(|v| **v == needle).count()))
        }
        "index" => {
            let needle = args.first().cloned().unwrap_or_default();
            items
                .iter()
                .position(|v| *v == needle)
                .map(Value::from)
                .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "value is not in the list"))
        }
        _ => Err(unknown(value, method)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn python_methods_work() {
        let mut env = minijinja::Environment::new();
        env.set_unknown_method_callback(super::unknown_method);
        let out = env
            .render_str(
                "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{{ d.get('x', 'no') }}|{{ ' A b '.strip().lower() }}|{{ 'a,b'.split(',') | length }}|{{ ', '.join(['x', 'y']) }}|{{ 'abc'.startswith('ab') }}|{{ d.keys() | list | length }}",
                minijinja::context! { d => minijinja::context! { a => 1, b => 2 } },
            )
            .unwrap();
        assert_eq!(out, "a=1;b=2;no|a b|2|x, y|True|2");
    }
}
