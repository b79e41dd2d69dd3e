//! dbt's unique_ids of generic tests: `test.<project>.<name>.<hash>`, the hash computed as
//! dbt computes it, so artifacts name tests as dbt does.

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
}
