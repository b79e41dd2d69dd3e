//! dbt's names and unique_ids of generic tests: `<test>_<target>_<arguments>` (and its short
//! form), and `test.<project>.<name>.<hash>` with the hash computed as dbt computes it, so
//! artifacts name tests as dbt does.

use crate::project::data_tests::TestTarget;
use md5::Digest;

/// The model argument dbt records for a generic test: `{{ get_where_subquery(ref('x')) }}`.
pub(super) fn dbt_model_str(target: &TestTarget) -> String {
    let inner = match target {
        TestTarget::Node(name) => format!("ref('{name}')"),
        TestTarget::Source(s, t) => format!("source('{s}', '{t}')"),
    };
    format!("{{{{ get_where_subquery({inner}) }}}}")
}

/// The suffix dbt gives a generic test's unique_id: the last 10 hex digits of the md5 of its
/// name followed by Python's `repr` of its metadata (namespace, test name, arguments with
/// `column_name` and `model`), keys sorted and every leaf as a string.
pub(super) fn dbt_test_hash(
    name: &str,
    namespace: Option<&str>,
    test_name: &str,
    args: &serde_json::Map<String, serde_json::Value>,
    column: Option<&str>,
    model: &str,
) -> String {
    let mut kwargs = args.clone();
    if let Some(c) = column {
        kwargs.insert("column_name".into(), serde_json::Value::from(c));
    }
    kwargs.insert("model".into(), serde_json::Value::from(model));
    let metadata = serde_json::json!({
        "kwargs": kwargs,
        "name": test_name,
        "namespace": namespace.unwrap_or("None"),
    });
    let text = format!("{name}{}", py_repr(&metadata));
    let digest = format!("{:x}", md5::Md5::digest(text.as_bytes()));
    digest[digest.len() - 10..].to_string()
}

/// Python's `repr` of a value whose leaves were turned into strings (`str(x)`), as dbt hashes
/// test metadata: dicts with sorted keys, lists, quoted strings.
fn py_repr(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .iter()
                .map(|k| format!("{}: {}", py_str_repr(k), py_repr(&m[k.as_str()])))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(py_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::String(s) => py_str_repr(s),
        Value::Bool(true) => py_str_repr("True"),
        Value::Bool(false) => py_str_repr("False"),
        Value::Null => py_str_repr("None"),
        Value::Number(n) => py_str_repr(&n.to_string()),
    }
}

/// Python's `repr` of a string: single quotes unless it holds a single quote and no double.
fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// dbt's generated names: `<test>_<target>_<argument values>`, and when that is 64 characters
/// or more, a short form (`<first 30 of test_target>_<md5>`) for the relation and file.
/// Returns (short, full).
pub(super) fn synthesize_names(
    test_type: &str,
    target: &str,
    args: &serde_json::Map<String, serde_json::Value>,
) -> (String, String) {
    let mut keys: Vec<&String> = args.keys().collect();
    keys.sort();
    let mut flat: Vec<String> = Vec::new();
    for k in keys {
        match &args[k] {
            serde_json::Value::Object(map) => flat.extend(map.values().map(python_str)),
            serde_json::Value::Array(items) => flat.extend(items.iter().map(python_str)),
            other => flat.push(python_str(other)),
        }
    }
    let clean: Vec<String> = flat.iter().map(|a| clean_name(a)).collect();
    let identifier = format!("{test_type}_{target}");
    let full = format!("{identifier}_{}", clean.join("__"));
    if full.len() >= 64 {
        let trunc: String = identifier.chars().take(30).collect();
        let label = format!("{:x}", md5::Md5::digest(full.as_bytes()));
        (format!("{trunc}_{label}"), full)
    } else {
        (full.clone(), full)
    }
}

/// Runs of characters other than ASCII letters, digits and `_` become one `_`.
fn clean_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_run = false;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

/// A value printed as Python's `str()` prints it, which is what dbt's names are made of.
fn python_str(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "None".into(),
        serde_json::Value::Bool(true) => "True".into(),
        serde_json::Value::Bool(false) => "False".into(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(python_repr).collect();
            format!("[{}]", parts.join(", "))
        }
        serde_json::Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("'{k}': {}", python_repr(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

fn python_repr(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => format!("'{s}'"),
        other => python_str(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// unique_ids dbt-core 1.11 gave jaffle_shop_duckdb's tests.
    #[test]
    fn test_hashes_are_dbts() {
        let args = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
        let model = |m: &str| dbt_model_str(&TestTarget::Node(m.into()));
        assert_eq!(
            dbt_test_hash(
                "accepted_values_orders_status__placed__shipped__completed__return_pending__returned",
                None,
                "accepted_values",
                &args(
                    json!({"values": ["placed", "shipped", "completed", "return_pending", "returned"]})
                ),
                Some("status"),
                &model("orders"),
            ),
            "be6b5b5ec3"
        );
        assert_eq!(
            dbt_test_hash(
                "relationships_orders_customer_id__customer_id__ref_customers_",
                None,
                "relationships",
                &args(json!({"to": "ref('customers')", "field": "customer_id"})),
                Some("customer_id"),
                &model("orders"),
            ),
            "c6ec7f58f2"
        );
        assert_eq!(py_str_repr("it's"), "\"it's\"");
        assert_eq!(py_str_repr("a'b\"c"), "'a\\'b\"c'");
    }

    #[test]
    fn names_tests_as_dbt_does() {
        let args = |v: serde_json::Value| v.as_object().unwrap().clone();
        assert_eq!(
            synthesize_names(
                "unique",
                "orders",
                &args(json!({"column_name": "order_id"}))
            )
            .1,
            "unique_orders_order_id"
        );
        assert_eq!(
            synthesize_names(
                "relationships",
                "orders",
                &args(json!({"column_name": "customer_id", "to": "ref('customers')", "field": "customer_id"}))
            )
            .1,
            "relationships_orders_customer_id__customer_id__ref_customers_"
        );
        let (short, full) = synthesize_names(
            "accepted_values",
            "orders",
            &args(
                json!({"column_name": "status", "values": ["placed", "shipped", "completed", "return_pending", "returned"]}),
            ),
        );
        assert_eq!(
            full,
            "accepted_values_orders_status__placed__shipped__completed__return_pending__returned"
        );
        assert!(short.starts_with("accepted_values_orders_"), "{short}");
        assert_eq!(short.len(), "accepted_values_orders_".len() + 32);
        // A dict argument is named by its values, a dict inside a list by its Python str().
        assert_eq!(
            synthesize_names(
                "expect_x",
                "orders",
                &args(json!({"column_name": "id", "row_condition": {"a": 1}, "pairs": [{"b": 2}]}))
            )
            .1,
            "expect_x_orders_id___b_2___1"
        );
    }
}
