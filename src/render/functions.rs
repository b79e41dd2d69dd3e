//! The dbt context: `ref`, `source`, `config`, `var`, `env_var`, `return`, `log`, ... as
//! minijinja functions. Per-render data lives in a `Scope` object in the render context.

use super::refs::{Cte, How, Shown};
use crate::model::relation::Relation;

use minijinja::value::{Kwargs, Object, Rest, Value, from_args};
use minijinja::{Error as JError, ErrorKind, State};

use std::sync::Arc;

pub use super::scope::{Capture, Fixtures, Pass, RefTarget, SCOPE_VAR, Scope, Shared};

pub(super) fn scope(state: &State) -> Result<Arc<Scope>, JError> {
    state
        .lookup(SCOPE_VAR)
        .and_then(|v| v.downcast_object::<Scope>())
        .ok_or_else(|| {
            JError::new(
                ErrorKind::InvalidOperation,
                "this function is only available while rendering a model",
            )
        })
}

pub fn var(state: &State, name: String, rest: Rest<Value>) -> Result<Value, JError> {
    // `var('x', none)` has a default (none); only `var('x')` requires the var.
    let default = rest.first().cloned();
    let scope = scope(state)?;
    let package = scope.capture().node_package.clone();
    let vars = package
        .and_then(|p| scope.shared.package_vars.get(&p))
        .unwrap_or(&scope.shared.vars);
    let overridden = scope.fixtures.as_ref().and_then(|f| f.vars.get(&name));
    match overridden.or_else(|| vars.get(&name)) {
        Some(v) => Ok(to_value(v)),
        None => default.ok_or_else(|| {
            JError::new(
                ErrorKind::UndefinedError,
                format!("required var '{name}' is not set; define it under `vars:` in the project file or pass --vars '{{{name}: ...}}'"),
            )
        }),
    }
}

/// `env_var()`: a unit test's `overrides.env_vars` first, then the environment.
pub fn env_var(state: &State, name: String, default: Option<Value>) -> Result<Value, JError> {
    if let Ok(scope) = scope(state)
        && let Some(v) = scope.fixtures.as_ref().and_then(|f| f.env_vars.get(&name))
    {
        return Ok(match v {
            serde_json::Value::String(s) => Value::from(s.clone()),
            other => Value::from(other.to_string()),
        });
    }
    crate::project::env::env_var(name, default)
}

pub fn ref_(state: &State, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, JError> {
    let scope = scope(state)?;
    let positional: Vec<String> = args
        .iter()
        .filter(|a| !a.is_kwargs())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let name = positional.last().cloned().ok_or_else(|| {
        JError::new(
            ErrorKind::MissingArgument,
            "ref() needs a model name, e.g. ref('orders')",
        )
    })?;
    // `ref('model', v=2)` / `version=2`: that version of a versioned model.
    let v: Option<Value> = kwargs.get("v")?;
    let version: Option<Value> = kwargs.get("version")?;
    let version = v
        .or(version)
        .filter(|v| !v.is_none())
        .map(|v| v.to_string());
    let name = scope.shared.versioned(&name, version.as_deref());
    {
        // As in dbt: a ref made only when the node runs is not in the DAG, so what it reads
        // may not be built yet.
        if scope
            .known_refs
            .as_ref()
            .is_some_and(|k| !k.contains(&name))
        {
            return Err(JError::new(
                ErrorKind::InvalidOperation,
                format!(
                    "ref('{name}') is called only when the model runs, so the build order does not know it; add `-- depends_on: {{{{ ref('{name}') }}}}` to the model, or call ref('{name}') outside `{{% if execute %}}`"
                ),
            ));
        }
        scope.capture().refs.push(name.clone());
    }
    if scope.pass == Pass::Parse {
        return Ok(Value::from_object(Relation::new("__unresolved__", name)));
    }
    if let Some(cte) = scope.fixtures.as_ref().and_then(|f| f.inputs.get(&name)) {
        return Ok(Value::from_object(Cte(cte.clone())));
    }
    let index = scope.shared.models.get(&name).ok_or_else(|| {
        JError::new(
            ErrorKind::UndefinedError,
            format!("model '{name}' not found"),
        )
    })?;
    // `--defer`: an unselected model not built here is read where the state's run built it.
    if let Some((database, schema, identifier)) = scope.shared.deferred_refs.get(&name) {
        let relation = Relation::new(schema.clone(), identifier.clone());
        // An empty database: the catalog this run builds into.
        return Ok(if database.is_empty() {
            Value::from_object(relation)
        } else {
            Value::from_object(Shown {
                relation,
                how: How::In(database.clone()),
            })
        });
    }
    let batch_filter = scope
        .microbatch()
        .then(|| scope.shared.event_times.get(*index).cloned().flatten())
        .flatten();
    Ok(match &scope.shared.ref_targets[*index] {
        RefTarget::Relation(r) if scope.shared.empty => Value::from_object(Shown {
            relation: r.clone(),
            how: How::Limited,
        }),
        RefTarget::Relation(r) if batch_filter.is_some() => Value::from_safe_string(in_batch(
            &r.to_string(),
            batch_filter.as_deref().unwrap_or_default(),
        )),
        RefTarget::Relation(r) => Value::from_object(r.clone()),
        RefTarget::Ephemeral(cte) => Value::from_object(Cte(cte.clone())),
    })
}

/// An input of a microbatch model with an `event_time`, as each batch reads it (the
/// placeholders become the batch's window, as dbt's event-time filter).
fn in_batch(from: &str, event_time: &str) -> String {
    use crate::model::microbatch::{END, START};
    format!("(select * from {from} where {event_time} >= '{START}' and {event_time} < '{END}')")
}

pub fn source(state: &State, source_name: String, table: String) -> Result<Value, JError> {
    let scope = scope(state)?;
    let key = (source_name, table);
    if let Some(cte) = scope
        .fixtures
        .as_ref()
        .and_then(|f| f.inputs.get(&format!("{}.{}", key.0, key.1)))
    {
        return Ok(Value::from_safe_string(cte.clone()));
    }
    let sql = scope.shared.sources.get(&key).ok_or_else(|| {
        let known: Vec<String> = scope
            .shared
            .sources
            .keys()
            .filter(|(s, _)| *s == key.0)
            .map(|(_, t)| t.clone())
            .collect();
        let hint = if known.is_empty() {
            format!(
                "declare source '{}' under `sources:` in a .yml file in the model path",
                key.0
            )
        } else {
            format!("tables of source '{}': {}", key.0, known.join(", "))
        };
        JError::new(
            ErrorKind::UndefinedError,
            format!("source '{}.{}' is not defined; {hint}", key.0, key.1),
        )
    })?;
    scope.capture().sources.push(key.clone());
    if scope.shared.empty {
        return Ok(Value::from_safe_string(format!(
            "(select * from {sql} where false limit 0)"
        )));
    }
    if scope.microbatch()
        && let Some(et) = scope.shared.source_event_times.get(&key)
    {
        return Ok(Value::from_safe_string(in_batch(sql, et)));
    }
    Ok(Value::from_safe_string(sql.clone()))
}

/// `config`: callable as `config(materialized='table')`, with `config.get(key, default)`.
#[derive(Debug)]
pub struct ConfigObject;

impl Object for ConfigObject {
    fn call(self: &Arc<Self>, state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, JError> {
        let scope = scope(state)?;
        let (kwargs,): (Kwargs,) = from_args(args)?;
        if scope.pass == Pass::Parse {
            let mut capture = scope.capture();
            for key in kwargs.args() {
                let value: Value = kwargs.get(key)?;
                let json = serde_json::to_value(&value)
                    .map_err(|e| JError::new(ErrorKind::InvalidOperation, e.to_string()))?;
                crate::project::config::merge_into(
                    &mut capture.config,
                    &serde_json::Map::from_iter([(key.to_string(), json)]),
                );
            }
        }
        Ok(Value::from(""))
    }

    fn call_method(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, JError> {
        let scope = scope(state)?;
        match method {
            "get" => {
                let (key, default, kwargs): (String, Option<Value>, Kwargs) = from_args(args)?;
                let default = match default {
                    Some(d) => Some(d),
                    None => kwargs.get::<Option<Value>>("default")?,
                };
                // dbt-duckdb's `validator=` is accepted and not checked.
                let _: Option<Value> = kwargs.get("validator")?;
                kwargs.assert_all_used()?;
                Ok(match scope.current_config(&key) {
                    Some(v) => to_value(&v),
                    None => default.unwrap_or(Value::from(())),
                })
            }
            "require" => {
                let (key,): (String,) = from_args(args)?;
                scope
                    .current_config(&key)
                    .map(|v| to_value(&v))
                    .ok_or_else(|| {
                        JError::new(
                            ErrorKind::UndefinedError,
                            format!("config '{key}' is required but not set"),
                        )
                    })
            }
            _ => Err(JError::new(
                ErrorKind::UnknownMethod,
                format!("config has no method `{method}`; use config.get(key, default)"),
            )),
        }
    }
}

/// dbt's `return(value)`: the innermost macro call stops here and returns `value` instead of
/// its text. It stops by raising an error that [`call_macro`] catches, so nothing after the
/// `return()` runs (as in dbt, where `return` raises an exception).
pub fn return_(state: &State, value: Value) -> Result<Value, JError> {
    let scope = scope(state)?;
    let mut capture = scope.capture();
    match capture.returns.last_mut() {
        Some(slot) => {
            *slot = Some(value);
            Err(JError::new(ErrorKind::InvalidOperation, RETURNED))
        }
        None => Err(JError::new(
            ErrorKind::InvalidOperation,
            "return() is only allowed inside a macro",
        )),
    }
}

/// The error `return()` unwinds the macro with.
const RETURNED: &str = "return() outside of a macro call";

/// Calls the user macro `internal` and applies `return()`.
pub fn call_macro(state: &mut State, internal: &str, args: &[Value]) -> Result<Value, JError> {
    let scope = scope(state)?;
    if let Some(value) = overridden_macro(state, &scope, internal) {
        return Ok(value);
    }
    scope.capture().packages.push(package_of(state, internal));
    let out = with_return(state, |state| {
        match state.lookup(internal).filter(|v| !v.is_undefined()) {
            Some(macro_value) => macro_value.call(state, &fit_args(&macro_value, args)),
            None => call_elsewhere(state, internal, args),
        }
    });
    scope.capture().packages.pop();
    out
}

/// A unit test's fixed value for the macro `internal` (`overrides: macros:`), if it has one.
fn overridden_macro(state: &State, scope: &Scope, internal: &str) -> Option<Value> {
    let macros = &scope.fixtures.as_ref()?.macros;
    if macros.is_empty() {
        return None;
    }
    let rest = internal.strip_prefix(super::macros::INTERNAL_PREFIX)?;
    let (key, name) = match package_of(state, internal) {
        Some(p) => {
            let name = rest.strip_prefix(&format!("{p}__"))?;
            (format!("{p}.{name}"), name)
        }
        None => (rest.to_string(), rest),
    };
    macros
        .get(&key)
        .or_else(|| macros.get(name))
        .map(|v| to_value(v.clone()))
}

/// Name of the global listing the installed packages.
pub const PACKAGES_VAR: &str = "__lakeflow_packages";

/// The package whose macro `internal` is (none: the project's).
fn package_of(state: &State, internal: &str) -> Option<String> {
    let rest = internal.strip_prefix(super::macros::INTERNAL_PREFIX)?;
    state
        .lookup(PACKAGES_VAR)?
        .try_iter()
        .ok()?
        .filter_map(|p| p.as_str().map(str::to_string))
        .find(|p| rest.starts_with(&format!("{p}__")))
}

/// A macro name only packages define, called without a namespace: the macro of the package
/// whose macro is running (as dbt resolves a package's own macros), else dbt's macro of that
/// name if there is one.
pub fn call_package_local(
    state: &mut State,
    name: &str,
    candidates: &[(String, String)],
    args: &[Value],
) -> Result<Value, JError> {
    // The package of the running macro; at the top of a package's node, that package.
    let current = {
        let scope = scope(state)?;
        let capture = scope.capture();
        match capture.packages.last() {
            Some(p) => p.clone(),
            None => capture.node_package.clone(),
        }
    };
    if let Some((_, internal)) = candidates.iter().find(|(p, _)| Some(p) == current.as_ref()) {
        return call_macro(state, internal, args);
    }
    if super::globals::dbt_macro_names().contains(&name) {
        return Value::from_object(super::globals::DbtNamespace).call_method(state, name, args);
    }
    let packages: Vec<&str> = candidates.iter().map(|(p, _)| p.as_str()).collect();
    Err(JError::new(
        ErrorKind::UnknownFunction,
        format!(
            "'{name}' is a macro of the package {}; call it as {}.{name}(...)",
            packages.join(", "),
            packages.first().copied().unwrap_or_default()
        ),
    ))
}

/// Runs `call` (a macro's body) with a slot for its `return()`: the value returned, else
/// what the body rendered.
pub fn with_return(
    state: &mut State,
    call: impl FnOnce(&mut State) -> Result<Value, JError>,
) -> Result<Value, JError> {
    let scope = scope(state)?;
    scope.capture().returns.push(None);
    let out = call(state);
    let returned = scope.capture().returns.pop().flatten();
    match (returned, out) {
        (Some(value), _) => Ok(value),
        (None, out) => out,
    }
}

/// The arguments of a call, fitted to a macro with Jinja2's catch-alls: keyword arguments it
/// does not name go into its `kwargs`, positional ones past its own into its `varargs`.
fn fit_args(macro_value: &Value, args: &[Value]) -> Vec<Value> {
    let spec: Vec<String> = macro_value
        .get_attr("arguments")
        .ok()
        .and_then(|a| a.try_iter().ok())
        .map(|it| it.filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let takes_kwargs = spec.iter().any(|a| a == "kwargs");
    let takes_varargs = spec.iter().any(|a| a == "varargs");
    if !takes_kwargs && !takes_varargs {
        return args.to_vec();
    }
    let named: Vec<&String> = spec
        .iter()
        .filter(|a| *a != "kwargs" && *a != "varargs")
        .collect();
    let (positional, kwargs) = match args.last().map(|l| Kwargs::try_from(l.clone())) {
        Some(Ok(kw)) => (&args[..args.len() - 1], Some(kw)),
        _ => (args, None),
    };
    let mut out: Vec<Value> = positional.iter().take(named.len()).cloned().collect();
    let mut keep: Vec<(String, Value)> = Vec::new();
    let mut extra = std::collections::BTreeMap::new();
    if let Some(kw) = &kwargs {
        for key in kw.args() {
            let value: Value = kw.peek(key).unwrap_or_default();
            if named.iter().any(|n| *n == key) || key == "caller" || !takes_kwargs {
                keep.push((key.to_string(), value));
            } else {
                extra.insert(key.to_string(), value);
            }
        }
    }
    if takes_kwargs {
        keep.push(("kwargs".into(), Value::from(extra)));
    }
    if takes_varargs {
        let rest: Vec<Value> = positional.iter().skip(named.len()).cloned().collect();
        keep.push(("varargs".into(), Value::from(rest)));
    } else {
        out.extend(positional.iter().skip(named.len()).cloned());
    }
    out.push(Value::from(Kwargs::from_iter(keep)));
    out
}

/// The names a macro evaluated in a template of its own sees from the render that calls it.
pub const CALLER_CONTEXT: [&str; 4] = [SCOPE_VAR, "this", "model", "execute"];

/// A macro the calling macro cannot see: minijinja's macros close over the names their body
/// spells out and over what is defined after them, so a call through `call_macro` (a
/// dispatch, a namespace, a plain call) to a macro defined earlier in the combined template
/// finds nothing. It runs in a fresh evaluation of that template, with this render's context.
fn call_elsewhere(state: &State, internal: &str, args: &[Value]) -> Result<Value, JError> {
    let missing = || {
        JError::new(
            ErrorKind::UnknownFunction,
            format!(
                "macro '{}' is not loaded",
                internal.trim_start_matches(super::macros::INTERNAL_PREFIX)
            ),
        )
    };
    let Ok(template) = state.env().get_template(super::macros::TEMPLATE) else {
        return Err(missing());
    };
    let ctx: std::collections::BTreeMap<&str, Value> = CALLER_CONTEXT
        .into_iter()
        .filter_map(|k| state.lookup(k).map(|v| (k, v)))
        .collect();
    let mut captured = template.render_captured(Value::from(ctx))?;
    captured.with_state_mut(|other| match other.lookup(internal) {
        Some(m) if !m.is_undefined() => m.call(other, &fit_args(&m, args)),
        _ => Err(missing()),
    })
}

/// dbt's `log(msg, info=False)`: shown on the console only with `info=True` (once, in the
/// compile pass).
pub fn log(
    state: &State,
    message: Value,
    info: Option<bool>,
    kwargs: Kwargs,
) -> Result<Value, JError> {
    let scope = scope(state)?;
    let info = match kwargs.get::<Option<bool>>("info")? {
        Some(kw) => kw,
        None => info.unwrap_or(false),
    };
    kwargs.assert_all_used()?;
    if scope.pass == Pass::Compile && info {
        crate::errln!("{message}");
    }
    Ok(Value::from(""))
}

pub fn raise_compiler_error(message: String) -> Result<Value, JError> {
    Err(JError::new(ErrorKind::InvalidOperation, message))
}

/// dbt's `is_incremental()`: whether this render is the one that runs when the model's table
/// exists and `--full-refresh` was not given. Both variants are compiled up front; the run
/// picks one.
pub fn is_incremental(state: &State) -> bool {
    scope(state).is_ok_and(|s| s.incremental)
}

/// Any serializable value as a Jinja value.
pub fn to_value<T: serde::Serialize>(value: T) -> Value {
    Value::from(minijinja::value::Serde(value))
}
