//! `modules.re`: Python's regular expressions over `fancy-regex` (look-around and
//! back-references, as Python's `re` has them).

use super::err;
use minijinja::value::{Object, Value, from_args};
use minijinja::{Error, ErrorKind, State};
use std::sync::Arc;

/// The compiled expression for a Python `pattern` and `flags`, compiled once per process
/// (templates call `modules.re.sub(...)` in loops, as Python's own cache expects).
fn py_regex(pattern: &str, flags: i64) -> Result<Arc<fancy_regex::Regex>, Error> {
    type Compiled = std::collections::HashMap<(String, i64), Arc<fancy_regex::Regex>>;
    static CACHE: std::sync::LazyLock<std::sync::Mutex<Compiled>> =
        std::sync::LazyLock::new(Default::default);
    let key = (pattern.to_string(), flags);
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(re) = cache.get(&key) {
        return Ok(re.clone());
    }
    let re = Arc::new(compile(pattern, flags)?);
    // Bounded: a template that builds patterns from data does not grow it without end.
    if cache.len() >= 512 {
        cache.clear();
    }
    cache.insert(key, re.clone());
    Ok(re)
}

fn compile(pattern: &str, flags: i64) -> Result<fancy_regex::Regex, Error> {
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
    fancy_regex::Regex::new(&full).map_err(|e| err(format!("invalid regular expression: {e}")))
}

/// A failed match (the backtracking limit, say) as a template error.
fn run_err(e: fancy_regex::Error) -> Error {
    err(format!("regular expression failed: {e}"))
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
    fn new(re: &fancy_regex::Regex, caps: &fancy_regex::Captures) -> PyMatch {
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
    /// A match is a plain object, and true (as Python's `re.Match`); `m[0]` is a group.
    fn repr(self: &Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Plain
    }

    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.group(key).ok()
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (start, end, text) = self.groups.first().cloned().flatten().unwrap_or_default();
        write!(
            f,
            "<re.Match object; span=({start}, {end}), match='{text}'>"
        )
    }

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
pub(super) struct Re(pub(super) Option<fancy_regex::Regex>);

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
        let compiled;
        let (re, args): (&fancy_regex::Regex, &[Value]) = match &self.0 {
            Some(re) => (re, args),
            None => {
                if method == "escape" {
                    let (s,): (String,) = from_args(args)?;
                    return Ok(Value::from(fancy_regex::escape(&s).into_owned()));
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
                compiled = py_regex(pattern, flags)?;
                (&*compiled, &args[1..])
            }
        };
        let text = |i: usize| -> Result<String, Error> {
            args.get(i)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| err(format!("re.{method}() needs a string")))
        };
        let found = |caps: Option<fancy_regex::Captures>| {
            caps.map_or(Value::from(()), |c| {
                Value::from_object(PyMatch::new(re, &c))
            })
        };
        match method {
            "compile" => Ok(Value::from_object(Re(Some(re.clone())))),
            "match" => {
                let s = text(0)?;
                Ok(found(
                    re.captures(&s)
                        .map_err(run_err)?
                        .filter(|c| c.get(0).is_some_and(|m| m.start() == 0)),
                ))
            }
            "fullmatch" => {
                let s = text(0)?;
                Ok(found(re.captures(&s).map_err(run_err)?.filter(|c| {
                    c.get(0)
                        .is_some_and(|m| m.start() == 0 && m.end() == s.len())
                })))
            }
            "search" => {
                let s = text(0)?;
                Ok(found(re.captures(&s).map_err(run_err)?))
            }
            "findall" => {
                let s = text(0)?;
                let groups = re.captures_len();
                let mut out = Vec::new();
                for c in re.captures_iter(&s) {
                    let c = c.map_err(run_err)?;
                    let g = |i: usize| Value::from(c.get(i).map_or("", |m| m.as_str()));
                    out.push(match groups {
                        1 => g(0),
                        2 => g(1),
                        n => Value::from((1..n).map(g).collect::<Vec<_>>()),
                    });
                }
                Ok(Value::from(out))
            }
            "sub" => {
                let (repl, s) = (text(0)?, text(1)?);
                let count = args.get(2).and_then(Value::as_usize).unwrap_or(0);
                Ok(Value::from(
                    re.try_replacen(&s, count, py_replacement(&repl).as_str())
                        .map_err(run_err)?
                        .into_owned(),
                ))
            }
            "split" => {
                let s = text(0)?;
                Ok(Value::from(
                    re.split(&s)
                        .map(|p| p.map(Value::from))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(run_err)?,
                ))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}
