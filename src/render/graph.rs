//! dbt's `graph` in node renders: the project's nodes and sources in the manifest's shape.
//! Nodes whose compile pass reads it are rendered again when they run, with the graph of the
//! whole run (as dbt has it complete only at execution time).

use super::functions::{Pass, Scope};
use minijinja::value::{Object, Value};
use minijinja::{Error as JError, ErrorKind, State};
use std::sync::Arc;

/// The top-level keys of dbt's graph.
const KEYS: [&str; 7] = [
    "nodes",
    "sources",
    "exposures",
    "metrics",
    "groups",
    "semantic_models",
    "saved_queries",
];

/// `graph` as a render sees it: the run's graph where the render has it; otherwise empty
/// mappings, and a compile-pass render that reads it is deferred.
#[derive(Debug)]
pub struct GraphProxy {
    pub scope: Arc<Scope>,
}

impl GraphProxy {
    fn lookup(&self, key: &str) -> Option<Value> {
        if let Some(graph) = &self.scope.graph {
            return graph.get_attr(key).ok().filter(|v| !v.is_undefined());
        }
        if !KEYS.contains(&key) {
            return None;
        }
        if self.scope.pass == Pass::Compile {
            self.scope.defer();
        }
        Some(Value::from(
            std::collections::BTreeMap::<String, Value>::new(),
        ))
    }
}

impl Object for GraphProxy {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.lookup(key.as_str()?)
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, JError> {
        match method {
            "get" => {
                let key = args.first().and_then(Value::as_str).unwrap_or_default();
                Ok(self
                    .lookup(key)
                    .or_else(|| args.get(1).cloned())
                    .unwrap_or_default())
            }
            "keys" => Ok(Value::from(KEYS.to_vec())),
            _ => Err(JError::new(
                ErrorKind::UnknownMethod,
                format!("graph has no method `{method}`"),
            )),
        }
    }
}
