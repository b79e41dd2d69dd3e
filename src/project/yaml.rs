//! Reading the project's YAML files: located syntax errors and `{{ env_var() }}` / `{{ var() }}`
//! in string values, rendered the way dbt renders `dbt_project.yml` and `profiles.yml`.

use crate::error::{Error, Result, line_of};
use minijinja::{Environment, UndefinedBehavior, Value as JValue};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Keys whose values are rendered later, per model or test, not when the file is loaded (test
/// arguments such as `values: "{{ my_macro() }}"` need the macros).
const DEFERRED_KEYS: &[&str] = &[
    "pre-hook",
    "post-hook",
    "+pre-hook",
    "+post-hook",
    "data_tests",
    "tests",
    "on-run-start",
    "on-run-end",
];

pub fn read(path: &Path) -> Result<(Value, String)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("LF100", "read", path, e))?;
    let value = parse(path, &text)?;
    Ok((value, text))
}

pub fn parse(path: &Path, text: &str) -> Result<Value> {
    if text.trim().is_empty() {
        return Ok(Value::Mapping(Default::default()));
    }
    serde_yaml::from_str(text).map_err(|e| {
        let message = format!("invalid YAML: {}", strip_location(&e.to_string()));
        let err = Error::new("LF101", message).hint("fix the YAML syntax at the line shown");
        match e.location() {
            Some(loc) => err
                .at(path, loc.line(), Some(loc.column()))
                .with_snippet_from(text),
            None => err.in_file(path),
        }
    })
}

fn strip_location(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

/// Renders every string value holding Jinja with `env_var` and `var` available.
pub struct YamlRenderer {
    env: Environment<'static>,
}

impl YamlRenderer {
    pub fn new(vars: BTreeMap<String, serde_json::Value>) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_function("env_var", crate::render::functions::env_var);
        env.add_function(
            "var",
            move |name: String, default: Option<JValue>| -> std::result::Result<JValue, minijinja::Error> {
                match vars.get(&name) {
                    Some(v) => Ok(JValue::from(minijinja::value::Serde(v))),
                    None => default.ok_or_else(|| {
                        minijinja::Error::new(
                            minijinja::ErrorKind::UndefinedError,
                            format!("required var '{name}' is not set; pass it with --vars '{{{name}: ...}}'"),
                        )
                    }),
                }
            },
        );
        YamlRenderer { env }
    }

    /// Adds `doc('name')` (and dbt's `doc('package', 'name')`), returning the text of a
    /// `{% docs name %}` block.
    pub fn with_docs(mut self, docs: BTreeMap<String, String>) -> Self {
        self.env.add_function(
            "doc",
            move |args: minijinja::value::Rest<String>| -> std::result::Result<String, minijinja::Error> {
                let name = args.last().cloned().unwrap_or_default();
                docs.get(&name).cloned().ok_or_else(|| {
                    minijinja::Error::new(
                        minijinja::ErrorKind::UndefinedError,
                        format!("there is no docs block named '{name}'; define it as {{% docs {name} %}}...{{% enddocs %}} in a .md file of the model path"),
                    )
                })
            },
        );
        self
    }

    pub fn render_tree(&self, value: Value, path: &Path, text: &str) -> Result<Value> {
        Ok(match value {
            Value::String(s) if s.contains("{{") || s.contains("{%") => {
                let rendered = self.env.render_str(&s, ()).map_err(|e| {
                    let err = Error::new("LF102", format!("cannot render `{s}`: {}", jinja_reason(&e)))
                        .hint("check the env_var()/var() call; env_var('NAME', 'default') gives a fallback");
                    match line_of(text, &s) {
                        Some(line) => err.at(path, line, None).with_snippet_from(text),
                        None => err.in_file(path),
                    }
                })?;
                Value::String(rendered)
            }
            Value::Mapping(map) => {
                let mut out = serde_yaml::Mapping::with_capacity(map.len());
                for (k, v) in map {
                    let deferred = k.as_str().is_some_and(|k| DEFERRED_KEYS.contains(&k));
                    let v = if deferred {
                        v
                    } else {
                        self.render_tree(v, path, text)?
                    };
                    out.insert(k, v);
                }
                Value::Mapping(out)
            }
            Value::Sequence(items) => Value::Sequence(
                items
                    .into_iter()
                    .map(|v| self.render_tree(v, path, text))
                    .collect::<Result<_>>()?,
            ),
            other => other,
        })
    }
}

/// The reason part of a minijinja error, without its own location suffix.
pub fn jinja_reason(err: &minijinja::Error) -> String {
    match err.detail() {
        Some(detail) => detail.to_string(),
        None => err.kind().to_string(),
    }
}

/// A YAML scalar as text: strings as they are, numbers and booleans printed.
pub fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.as_mapping().and_then(|m| m.get(key))
}

pub fn get_str(value: &Value, key: &str) -> Option<String> {
    get(value, key).and_then(scalar_string)
}

/// A string or list of strings (`model-paths: models` and `model-paths: [models]` both work).
pub fn get_str_list(value: &Value, key: &str) -> Option<Vec<String>> {
    match get(value, key)? {
        Value::Sequence(items) => Some(items.iter().filter_map(scalar_string).collect()),
        other => scalar_string(other).map(|s| vec![s]),
    }
}

pub fn to_json(value: &Value) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_error_names_line_and_column() {
        let err = parse(
            Path::new("lakeflow.yml"),
            "name: x\nmodels:\n  - a\n b: c\n",
        )
        .unwrap_err();
        assert_eq!(err.code, "LF101");
        let loc = err.location.clone().unwrap();
        assert_eq!(loc.file, Path::new("lakeflow.yml"));
        assert_eq!(loc.line, Some(4));
    }

    #[test]
    fn env_var_is_rendered_but_hooks_are_not() {
        // SAFETY: tests in this module are the only readers of this variable.
        unsafe { std::env::set_var("LF_YAML_TEST_ROOT", "/data/lake") };
        let text = "root: \"{{ env_var('LF_YAML_TEST_ROOT') }}\"\nother: \"{{ env_var('LF_NOPE_X', 'dflt') }}\"\n+post-hook: \"{{ this }}\"\n";
        let value = parse(Path::new("p.yml"), text).unwrap();
        let out = YamlRenderer::new(Default::default())
            .render_tree(value, Path::new("p.yml"), text)
            .unwrap();
        assert_eq!(get_str(&out, "root").as_deref(), Some("/data/lake"));
        assert_eq!(get_str(&out, "other").as_deref(), Some("dflt"));
        assert_eq!(get_str(&out, "+post-hook").as_deref(), Some("{{ this }}"));
    }

    #[test]
    fn missing_env_var_is_a_located_error() {
        let text = "a: 1\nb: \"{{ env_var('LF_SURELY_UNSET_VAR') }}\"\n";
        let value = parse(Path::new("p.yml"), text).unwrap();
        let err = YamlRenderer::new(Default::default())
            .render_tree(value, Path::new("p.yml"), text)
            .unwrap_err();
        assert_eq!(err.code, "LF102");
        assert_eq!(err.location.clone().unwrap().line, Some(2));
        assert!(
            err.message.contains("LF_SURELY_UNSET_VAR"),
            "{}",
            err.message
        );
    }
}
