//! Package macros in Jinja: `dbt_utils.star(...)` through a namespace object per installed
//! package, and `adapter.dispatch('name', 'namespace')` searching the packages the project's
//! `dispatch:` names (else the namespace itself) for `duckdb__name`, then `default__name`.

use super::functions::call_macro;
use super::macros::MacroSet;
use crate::project::packages::Dispatch;
use minijinja::value::{Object, Rest, Value, ValueOrKwargs};
use minijinja::{Error as JError, ErrorKind, State};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What `adapter.dispatch` and the namespaces resolve against.
#[derive(Debug, Default)]
pub struct Dispatcher {
    root: String,
    /// Search order per macro namespace, from `dispatch:`.
    search: BTreeMap<String, Vec<String>>,
    /// (package, or none for the project; macro name) -> internal macro name.
    macros: BTreeMap<(Option<String>, String), String>,
}

impl Dispatcher {
    pub fn new(root: &str, dispatch: &[Dispatch], macros: &MacroSet) -> Dispatcher {
        Dispatcher {
            root: root.to_string(),
            search: dispatch
                .iter()
                .map(|d| (d.namespace.clone(), d.search_order.clone()))
                .collect(),
            macros: macros
                .all()
                .map(|(p, n, i)| ((p.map(str::to_string), n.to_string()), i.to_string()))
                .collect(),
        }
    }

    /// The internal macro `adapter.dispatch(name, namespace)` reaches, if any.
    pub fn resolve(&self, name: &str, namespace: Option<&str>) -> Option<&str> {
        const PREFIXES: [&str; 2] = ["duckdb__", "default__"];
        let Some(ns) = namespace else {
            return PREFIXES
                .iter()
                .chain(&[""])
                .find_map(|p| self.macros.get(&(None, format!("{p}{name}"))))
                .map(String::as_str);
        };
        let order: Vec<&str> = match self.search.get(ns) {
            Some(order) if !order.is_empty() => order.iter().map(String::as_str).collect(),
            _ => vec![ns],
        };
        order.iter().find_map(|package| {
            let package = (*package != self.root).then(|| package.to_string());
            PREFIXES.iter().find_map(|p| {
                self.macros
                    .get(&(package.clone(), format!("{p}{name}")))
                    .map(String::as_str)
            })
        })
    }
}

/// A callable that runs the internal macro `internal` with the caller's arguments.
pub fn macro_value(internal: String) -> Value {
    Value::from_function(move |state: &mut State, args: Rest<ValueOrKwargs>| {
        call_macro(state, &internal, &args.into_values())
    })
}

/// `adapter.dispatch(name, macro_namespace=None)`.
pub fn dispatch(dispatcher: &Dispatcher, state: &State, args: &[Value]) -> Result<Value, JError> {
    let (name, namespace, kwargs): (String, Option<String>, minijinja::value::Kwargs) =
        minijinja::value::from_args(args)?;
    let namespace = match namespace {
        Some(ns) => Some(ns),
        None => kwargs.get::<Option<String>>("macro_namespace")?,
    };
    if let Some(internal) = dispatcher.resolve(&name, namespace.as_deref()) {
        return Ok(macro_value(internal.to_string()));
    }
    // dbt's own macros (`dbt.dateadd`, ...) answer for the `dbt` namespace.
    if namespace.as_deref() == Some("dbt")
        && let Some(v) = state
            .lookup("dbt")
            .and_then(|d| d.get_attr(&name).ok())
            .filter(|v| !v.is_undefined())
    {
        return Ok(v);
    }
    Err(JError::new(
        ErrorKind::UnknownFunction,
        match namespace {
            Some(ns) => format!(
                "no macro '{name}' to dispatch to in '{ns}' (looked for duckdb__{name} and default__{name}; is the package installed? run `lakeflow deps`)"
            ),
            None => format!("no macro '{name}' to dispatch to"),
        },
    ))
}

/// One installed package as a Jinja namespace: `dbt_utils.generate_surrogate_key(...)`; or,
/// with no package, the project's own macros under the project's name.
#[derive(Debug)]
pub struct Namespace {
    pub package: Option<String>,
    pub dispatcher: Arc<Dispatcher>,
}

impl Object for Namespace {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = (self.package.clone(), key.as_str()?.to_string());
        self.dispatcher
            .macros
            .get(&key)
            .map(|i| macro_value(i.clone()))
    }
}
