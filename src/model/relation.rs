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

impl Object for Relation {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "schema" => Some(Value::from(self.schema.clone())),
            "identifier" | "name" | "table" | "alias" => Some(Value::from(self.identifier.clone())),
            "database" => Some(Value::from(())),
            _ => None,
        }
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut minijinja::State<'_, '_>,
        method: &str,
        _args: &[Value],
    ) -> Result<Value, minijinja::Error> {
        match method {
            "render" | "__str__" => Ok(Value::from(self.to_string())),
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
