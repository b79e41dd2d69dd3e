//! One node's configuration as dbt keeps it (a flat map of config names to JSON values), and
//! typed reads of it. Merging and the folder tree live in the loader (`project::config`).

use serde_json::{Map, Value};

/// One node's configuration, as dbt keeps it: a flat map of config names to values.
pub type Config = Map<String, Value>;

/// A config value that may be one string or a list of strings.
pub fn as_string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// What a JSON value is, for messages.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

pub fn get_str<'a>(config: &'a Config, key: &str) -> Option<&'a str> {
    config.get(key).and_then(Value::as_str)
}

pub fn get_bool(config: &Config, key: &str) -> Option<bool> {
    match config.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}
