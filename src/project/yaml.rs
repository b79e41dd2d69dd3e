//! Reading the project's YAML files: located syntax errors and `{{ env_var() }}` / `{{ var() }}`
//! in string values, rendered the way dbt renders `dbt_project.yml` and `profiles.yml`.

use crate::error::{Error, Result, line_of};
use minijinja::{Environment, UndefinedBehavior, Value as JValue};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Keys whose values are rendered later, per model or hook, not when the file is loaded.
const DEFERRED_KEYS: &[&str] = &[
    "pre-hook",
    "post-hook",
    "+pre-hook",
    "+post-hook",
    "on-run-start",
    "on-run-end",
];

/// Below the top level: the tests of a model, column or source, rendered with the test (test
/// arguments such as `values: "{{ my_macro() }}"` need the macros). At the top level of the
/// project file they are the tests' configs, rendered like the rest.
const NESTED_DEFERRED_KEYS: &[&str] = &["data_tests", "tests"];

/// Top-level blocks of schema files dbt does not render when it loads them (a metric's
/// `filter: "{{ Dimension('x') }}"` is MetricFlow's Jinja); lakeflow does not read them.
const UNRENDERED_BLOCKS: &[&str] = &["metrics", "semantic_models", "saved_queries"];

pub fn read(path: &Path) -> Result<(Value, String)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("LF100", "read", path, e))?;
    let value = parse(path, &text)?;
    Ok((value, text))
}

/// A YAML file as dbt (PyYAML) reads it: anchors, aliases and `<<` merge keys resolved.
pub fn parse(path: &Path, text: &str) -> Result<Value> {
    if text.trim().is_empty() {
        return Ok(Value::Mapping(Default::default()));
    }
    let mut value = parse_plain(path, text)?;
    value.apply_merge().map_err(|e| {
        Error::new("LF101", format!("invalid YAML merge key `<<`: {e}"))
            .in_file(path)
            .hint("`<<` takes an alias of a mapping (`<<: *defaults`) or a list of them")
    })?;
    Ok(value)
}

/// YAML text merged as [`parse`] does, for values that are not project files (`--vars`,
/// `fromyaml()`).
pub fn from_str_merged(text: &str) -> std::result::Result<Value, serde_yaml::Error> {
    let mut value: Value = serde_yaml::from_str(text)?;
    value.apply_merge()?;
    Ok(value)
}

fn parse_plain(path: &Path, text: &str) -> Result<Value> {
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
/// dbt's `target` object: `database` is the catalog file's stem (`memory` for `:memory:`),
/// as dbt-duckdb reports it.
pub fn target_json(t: &super::profile::Target) -> serde_json::Value {
    let database = if t.catalog == ":memory:" {
        "memory".to_string()
    } else {
        Path::new(&t.catalog)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    serde_json::json!({
        "name": t.name, "schema": t.schema, "type": t.adapter, "threads": t.threads,
        "profile_name": t.profile_name, "path": t.catalog, "external_root": t.external_root,
        "database": database,
    })
}

pub struct YamlRenderer {
    env: Environment<'static>,
}

impl YamlRenderer {
    pub fn new(vars: BTreeMap<String, serde_json::Value>) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_function("env_var", super::env::env_var);
        env.add_function(
            "var",
            move |name: String, rest: minijinja::value::Rest<JValue>| -> std::result::Result<JValue, minijinja::Error> {
                // `var('x', none)` has a default (none); only `var('x')` requires the var.
                let default = rest.first().cloned();
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

    /// The renderer of profiles.yml: `env_var()` may read `DBT_ENV_SECRET*` variables there.
    pub fn allowing_secret_env_vars(&self) -> Self {
        let mut env = self.env.clone();
        env.add_function("env_var", super::env::secret_env_var);
        YamlRenderer { env }
    }

    /// Adds `target` (`target.name`, `target.schema`, `target.type`, ...), as dbt has it when
    /// it renders `schema.yml` and `dbt_project.yml`.
    pub fn with_target(mut self, target: &super::profile::Target) -> Self {
        self.env.add_global(
            "target",
            JValue::from(minijinja::value::Serde(target_json(target))),
        );
        self
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
        self.render_at(value, path, text, 0)
    }

    fn render_at(&self, value: Value, path: &Path, text: &str, depth: usize) -> Result<Value> {
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
                    let deferred = k.as_str().is_some_and(|k| {
                        DEFERRED_KEYS.contains(&k)
                            || (depth > 0 && NESTED_DEFERRED_KEYS.contains(&k))
                            || (depth == 0 && UNRENDERED_BLOCKS.contains(&k))
                    });
                    let v = if deferred {
                        v
                    } else {
                        self.render_at(v, path, text, depth + 1)?
                    };
                    out.insert(k, v);
                }
                Value::Mapping(out)
            }
            Value::Sequence(items) => Value::Sequence(
                items
                    .into_iter()
                    .map(|v| self.render_at(v, path, text, depth + 1))
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

/// What a YAML value is, for messages: "a mapping", "a list", ...
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Typed reads of one YAML file's keys: a value of the wrong type is an error naming the file,
/// the line and the key, never a silent default.
pub struct Keys<'a> {
    pub file: &'a Path,
    pub text: &'a str,
}

impl Keys<'_> {
    /// The error for `key` holding `found` where `expected` was wanted.
    pub fn wrong_type(&self, key: &str, expected: &str, found: &Value) -> Error {
        wrong_type(self.file, self.text, key, expected, kind_of(found))
    }

    /// A string (numbers and booleans are taken as written); None if absent or null.
    pub fn str(&self, map: &Value, key: &str) -> Result<Option<String>> {
        match get(map, key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => scalar_string(v)
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "a string", v)),
        }
    }

    /// One string or a list of strings.
    pub fn str_list(&self, map: &Value, key: &str) -> Result<Option<Vec<String>>> {
        match get(map, key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|i| {
                    scalar_string(i).ok_or_else(|| self.wrong_type(key, "a list of strings", i))
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(v) => scalar_string(v)
                .map(|s| Some(vec![s]))
                .ok_or_else(|| self.wrong_type(key, "a string or a list of strings", v)),
        }
    }

    pub fn bool(&self, map: &Value, key: &str) -> Result<Option<bool>> {
        match get(map, key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v @ Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Ok(Some(true)),
                "false" | "no" | "0" => Ok(Some(false)),
                _ => Err(self.wrong_type(key, "true or false", v)),
            },
            Some(v) => Err(self.wrong_type(key, "true or false", v)),
        }
    }

    /// A whole number of at least `min`.
    pub fn count(&self, map: &Value, key: &str, min: u64) -> Result<Option<usize>> {
        match get(map, key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => scalar_string(v)
                .and_then(|s| s.trim().parse::<u64>().ok())
                .filter(|n| *n >= min)
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    self.wrong_type(key, &format!("a whole number of at least {min}"), v)
                }),
        }
    }

    /// A mapping (or nothing).
    pub fn map<'v>(&self, map: &'v Value, key: &str) -> Result<Option<&'v Value>> {
        match get(map, key) {
            None | Some(Value::Null) => Ok(None),
            Some(v @ Value::Mapping(_)) => Ok(Some(v)),
            Some(v) => Err(self.wrong_type(key, "a mapping", v)),
        }
    }
}

/// `key` in `file` holds a value of the wrong kind. The hint names the usual cause: an
/// unquoted `{{ ... }}`, which YAML reads as a mapping.
pub fn wrong_type(file: &Path, text: &str, key: &str, expected: &str, found: &str) -> Error {
    let line = key_line(text, key);
    let unquoted_jinja = line
        .and_then(|l| text.lines().nth(l - 1))
        .is_some_and(|l| l.contains("{{") || l.contains("{%"));
    let hint = if unquoted_jinja {
        format!(
            "quote Jinja expressions in YAML: `{key}: \"{{{{ ... }}}}\"`; unquoted, YAML reads `{{{{ }}}}` as a mapping"
        )
    } else {
        format!("give `{key}` {expected}")
    };
    let err = Error::new(
        "LF115",
        format!("`{key}` must be {expected}, but it is {found}"),
    )
    .hint(hint);
    match line {
        Some(l) => err.at(file, l, None).with_snippet_from(text),
        None => err.in_file(file),
    }
}

/// The line where `key:` (or `+key:`) is written in `text`, if it can be found.
pub fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            let t = t.strip_prefix('+').unwrap_or(t);
            let t = t
                .strip_prefix('"')
                .and_then(|r| r.strip_prefix(key)?.strip_prefix('"'))
                .or_else(|| t.strip_prefix(key));
            t.is_some_and(|r| r.trim_start().starts_with(':'))
        })
        .map(|i| i + 1)
}

/// A YAML value as JSON. Keys that are not strings are written as their YAML text (an unquoted
/// `{{ x }}` is a mapping with a mapping for its key), so nothing is dropped on the way.
pub fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Number(n) => serde_json::to_value(n).unwrap_or(J::Null),
        Value::String(s) => J::String(s.clone()),
        Value::Sequence(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Mapping(map) => J::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = scalar_string(k).unwrap_or_else(|| {
                        serde_yaml::to_string(k)
                            .map(|t| t.trim().to_string())
                            .unwrap_or_default()
                    });
                    (key, to_json(v))
                })
                .collect(),
        ),
        Value::Tagged(t) => to_json(&t.value),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn merge_keys_resolve_as_in_dbt() {
        let text = "outputs:\n  prod: &prod\n    type: duckdb\n    threads: 4\n    secrets: [{type: s3}]\n  dev:\n    <<: *prod\n    threads: 1\n";
        let v = parse(Path::new("profiles.yml"), text).unwrap();
        assert_eq!(v["outputs"]["dev"]["type"], "duckdb");
        assert_eq!(v["outputs"]["dev"]["threads"], 1);
        assert_eq!(v["outputs"]["dev"]["secrets"][0]["type"], "s3");
        assert!(v["outputs"]["dev"].get("<<").is_none());
        assert!(parse(Path::new("x.yml"), "a:\n  <<: 3\n").is_err());
    }

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
    fn wrong_types_are_located_errors_with_a_hint_for_unquoted_jinja() {
        let text = "a: 1\nexternal_root: {{ env_var('X') }}\nthreads: [1]\nok: yes\n";
        let doc = parse(Path::new("p.yml"), text).unwrap();
        let keys = Keys {
            file: Path::new("p.yml"),
            text,
        };
        let err = keys.str(&doc, "external_root").unwrap_err();
        assert_eq!(err.code, "LF115");
        assert_eq!(err.location.clone().unwrap().line, Some(2));
        assert!(err.message.contains("a mapping"), "{}", err.message);
        assert!(err.hint.clone().unwrap().contains("quote Jinja"));
        assert_eq!(
            keys.count(&doc, "threads", 1)
                .unwrap_err()
                .location
                .clone()
                .unwrap()
                .line,
            Some(3)
        );
        assert_eq!(keys.str(&doc, "a").unwrap().as_deref(), Some("1"));
        assert_eq!(keys.bool(&doc, "ok").unwrap(), Some(true));
        assert_eq!(keys.str(&doc, "absent").unwrap(), None);
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

    #[test]
    fn target_is_available_with_with_target() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("profiles.yml"),
            "shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: /data/wh.duckdb\n      schema: raw\n      external_root: /data/lake\n",
        )
        .unwrap();
        let renderer = YamlRenderer::new(Default::default());
        let target = super::super::profile::load(&super::super::profile::ProfileRequest {
            profiles_dir: Some(dir.path()),
            project_dir: Path::new("/proj"),
            dbt_paths_from: None,
            profile_name: "shop",
            target: None,
            renderer: &renderer,
        })
        .unwrap();
        let text = "m: \"{{ 'view' if target.name == 'dev' else 'table' }} {{ target.schema }} {{ target.type }} {{ target.database }}\"\n";
        let value = parse(Path::new("p.yml"), text).unwrap();
        let out = renderer
            .with_target(&target)
            .render_tree(value, Path::new("p.yml"), text)
            .unwrap();
        assert_eq!(get_str(&out, "m").as_deref(), Some("view raw duckdb wh"));
    }
}
