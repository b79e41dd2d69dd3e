//! A generic test's arguments as Jinja: values from the schema file become literals (lists and
//! dicts mutable, as in Python), while arguments dbt evaluates (`ref(...)`, `{{ ... }}`)
//! become expressions.

use crate::project::{Config, config as cfg};

/// The `model` argument: the relation, or with `where:` a subquery of it, as dbt passes it.
pub(super) fn model_arg(relation_expr: &str, config: &Config) -> String {
    match cfg::get_str(config, "where") {
        Some(w) => format!(
            "(\"(select * from \" ~ {relation_expr} ~ \" where \" ~ {} ~ \") dbt_subquery\")",
            literal_str(w)
        ),
        None => relation_expr.to_string(),
    }
}

/// dbt evaluates test arguments written as a call of these (`to: ref('customers')`).
pub(super) fn looks_like_call(s: &str) -> bool {
    let s = s.trim();
    ["ref", "source", "var", "env_var", "doc"].iter().any(|f| {
        s.strip_prefix(f)
            .map(str::trim_start)
            .is_some_and(|rest| rest.starts_with('(') && s.ends_with(')'))
    })
}

/// `{{ expr }}` as the whole string: the expression, evaluated natively as dbt does (so
/// `values: "{{ my_values() }}"` passes a list).
pub(super) fn whole_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then(|| inner.trim())
}

/// A string with `{{ ... }}` inside it (`"cast(x as {{ dbt.type_string() }})"`) as the Jinja
/// expression that renders it, as dbt renders a test's arguments.
fn templated_str(s: &str) -> Option<String> {
    if !s.contains("{{") {
        return None;
    }
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        let close = rest[open..].find("}}")? + open;
        if open > 0 {
            parts.push(literal_str(&rest[..open]));
        }
        parts.push(format!("({})", rest[open + 2..close].trim()));
        rest = &rest[close + 2..];
    }
    if !rest.is_empty() {
        parts.push(literal_str(rest));
    }
    Some(format!("({})", parts.join(" ~ ")))
}

/// A JSON value as a Jinja literal.
pub(super) fn literal(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "none".into(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => templated_str(s).unwrap_or_else(|| literal_str(s)),
        serde_json::Value::Array(items) => {
            // Lists and dicts are Python's: a test macro may append to its argument.
            let parts: Vec<String> = items.iter().map(literal).collect();
            format!("{}([{}])", super::pysource::MUTABLE_FN, parts.join(", "))
        }
        serde_json::Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", literal_str(k), literal(v)))
                .collect();
            format!("{}({{{}}})", super::pysource::MUTABLE_FN, parts.join(", "))
        }
    }
}

pub(super) fn literal_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literals_and_calls() {
        assert!(looks_like_call("ref('customers')"));
        assert!(looks_like_call(" source('raw', 'x') "));
        assert!(!looks_like_call("reference"));
        assert_eq!(
            literal(&json!(["a\"b", 1, true, null])),
            "__lf_mut([\"a\\\"b\", 1, true, none])"
        );
        assert_eq!(
            literal(&json!("cast(x as {{ dbt.type_string() }})")),
            "(\"cast(x as \" ~ (dbt.type_string()) ~ \")\")"
        );
    }
}
