//! `Relation`: what `ref()`, `source()` and `this` evaluate to in Jinja.

use minijinja::value::{Object, Value};
use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Relation {
    pub schema: String,
    pub identifier: String,
}

impl Relation {
    pub fn new(schema: impl Into<String>, identifier: impl Into<String>) -> Self {
        Relation {
            schema: schema.into(),
            identifier: identifier.into(),
        }
    }
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            quote_ident(&self.schema),
            quote_ident(&self.identifier)
        )
    }
}

/// The keys a relation shows as a mapping (dbt's relations are dicts too, and packages test
/// `relation is mapping` and `relation.get('metadata')`).
const KEYS: [&str; 4] = ["database", "schema", "identifier", "metadata"];

/// dbt's `relation.metadata`, by which packages recognise a relation (`dbt_utils._is_relation`).
pub fn metadata() -> Value {
    Value::from(std::collections::BTreeMap::from([(
        "type",
        Value::from("DuckDBRelation"),
    )]))
}

impl Object for Relation {
    fn repr(self: &Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Map
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Str(&KEYS)
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "schema" => Some(Value::from(self.schema.clone())),
            "identifier" | "name" | "table" | "alias" => Some(Value::from(self.identifier.clone())),
            "database" => Some(Value::from(())),
            "metadata" => Some(metadata()),
            "type" => Some(Value::from(())),
            "is_table" | "is_view" | "is_cte" | "is_materialized_view" => Some(Value::from(false)),
            _ => None,
        }
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut minijinja::State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, minijinja::Error> {
        match method {
            "render" | "__str__" => Ok(Value::from(self.to_string())),
            // Quoting and the parts shown are fixed in lakeflow: the same relation.
            "include" | "quote" | "incorporate" => Ok(Value::from_object((**self).clone())),
            "get" => {
                let (key, default): (Value, Option<Value>) = minijinja::value::from_args(args)?;
                Ok(self.get_value(&key).or(default).unwrap_or(Value::from(())))
            }
            _ => Err(minijinja::Error::new(
                minijinja::ErrorKind::UnknownMethod,
                format!(
                    "relations have no method `{method}`; use .schema, .identifier or .render()"
                ),
            )),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_quoted_and_escapes() {
        assert_eq!(
            Relation::new("silver", "a\"b").to_string(),
            "\"silver\".\"a\"\"b\""
        );
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
