//! What `ref()` gives besides a plain relation: an ephemeral model's CTE name, and a relation
//! that prints as something else (read with `--empty`, or in another database).

use crate::model::relation::Relation;
use minijinja::value::{Object, Value, from_args};
use minijinja::{Error as JError, ErrorKind, State};
use std::sync::Arc;

/// What `ref()` of an ephemeral model gives: a relation (dbt's, with `is_cte` true) that
/// renders as the name of its CTE.
#[derive(Debug)]
pub struct Cte(pub String);

/// A relation `ref()` gives that prints as something else, and is the relation otherwise
/// (its keys and methods): read with `--empty`, or another database's.
#[derive(Debug)]
pub struct Shown {
    pub relation: Relation,
    pub how: How,
}

#[derive(Debug)]
pub enum How {
    /// `--empty`: a query of none of its rows (as dbt's `render_limited`).
    Limited,
    /// A `--defer`red ref to another catalog, attached under this name.
    In(String),
}

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.how {
            How::Limited => write!(f, "(select * from {} where false limit 0)", self.relation),
            How::In(db) => write!(
                f,
                "{}.{}",
                crate::model::relation::quote_ident(db),
                self.relation
            ),
        }
    }
}

impl Object for Shown {
    fn repr(self: &Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        if let (How::In(db), Some("database")) = (&self.how, key.as_str()) {
            return Some(Value::from(db.clone()));
        }
        Value::from_object(self.relation.clone())
            .get_item(key)
            .ok()
            .filter(|v| !v.is_undefined())
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Str(&["database", "schema", "identifier", "metadata"])
    }

    fn call_method(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, JError> {
        // dbt's `render()` of a limited relation is the relation; `__str__` is what it prints.
        match (method, &self.how) {
            ("__str__", _) | ("render", How::In(_)) => Ok(Value::from(self.to_string())),
            _ => Value::from_object(self.relation.clone()).call_method(state, method, args),
        }
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self.as_ref(), f)
    }
}

impl Object for Cte {
    fn repr(self: &Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Map
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Str(&["identifier", "metadata"])
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "identifier" | "name" | "table" | "alias" => Value::from(self.0.clone()),
            "schema" | "database" | "type" => Value::from(()),
            "is_cte" => Value::from(true),
            "is_table" | "is_view" => Value::from(false),
            "metadata" => crate::model::relation::metadata(),
            _ => return None,
        })
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, JError> {
        match method {
            "render" | "__str__" => Ok(Value::from(self.0.clone())),
            "include" | "quote" | "incorporate" => Ok(Value::from_object(Cte(self.0.clone()))),
            "get" => {
                let (key, default): (Value, Option<Value>) = from_args(args)?;
                Ok(self.get_value(&key).or(default).unwrap_or(Value::from(())))
            }
            _ => Err(JError::new(
                ErrorKind::UnknownMethod,
                format!("relations have no method `{method}`"),
            )),
        }
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
