//! Jinja that reads the database while it renders: `run_query`, `statement` with
//! `load_result`, `adapter.get_columns_in_relation`, `adapter.get_relation`, ...
//!
//! As in dbt, the parse pass renders with `execute` false: these calls return nothing and touch
//! nothing. The compile pass renders with `execute` true but without a connection: a node that
//! reaches one of these calls there stops rendering, is marked deferred, and is rendered again
//! just before it runs, with the worker's live connection ([`Deferred`]). Nodes that never
//! query the database compile once, up front, as before.

pub use super::agate::QueryResult;
use super::agate::{self, Column, Table};
use super::functions::{Pass, Scope, scope};
use crate::model::relation::Relation;
use minijinja::value::{Kwargs, Value, from_args};
use minijinja::{Error as JError, ErrorKind, State};
use std::sync::Arc;

pub use super::agate::Database;

/// How a database call behaves in the render at hand.
enum Access {
    /// The parse pass (`execute` is false): nothing runs.
    Parsing,
    /// A live render: the call runs.
    Live(Arc<dyn Database>),
}

/// Marks the message of the error that stops a compile-pass render at its first database
/// call (the node is rendered again when it runs).
pub const DEFERRED: &str = "needs the database while rendering";

fn access(state: &State) -> Result<Access, JError> {
    let scope = scope(state)?;
    if scope.pass == Pass::Parse {
        return Ok(Access::Parsing);
    }
    match &scope.db {
        Some(db) => Ok(Access::Live(db.clone())),
        None => {
            scope.defer();
            Err(JError::new(ErrorKind::InvalidOperation, DEFERRED))
        }
    }
}

fn sql_error(e: String) -> JError {
    JError::new(
        ErrorKind::InvalidOperation,
        format!("the query failed: {e}"),
    )
}

/// dbt's `run_query(sql)`: the result as a table; `none` while parsing.
pub fn run_query(state: &State, sql: String) -> Result<Value, JError> {
    match access(state)? {
        Access::Parsing => Ok(Value::from(())),
        Access::Live(db) => db.query(&sql).map(Table::value).map_err(sql_error),
    }
}

/// dbt's `{% call statement(name, fetch_result=True) %} SQL {% endcall %}`: runs the block's
/// SQL and keeps its result for `load_result(name)`.
pub fn statement(state: &mut State, name: Option<Value>, kwargs: Kwargs) -> Result<Value, JError> {
    let name = match name {
        Some(n) => Some(n),
        None => kwargs.get::<Option<Value>>("name")?,
    };
    for key in ["fetch_result", "auto_begin", "language"] {
        let _: Option<Value> = kwargs.get(key)?;
    }
    let caller: Option<Value> = kwargs.get("caller")?;
    kwargs.assert_all_used()?;
    let db = match access(state)? {
        Access::Parsing => return Ok(Value::from("")),
        Access::Live(db) => db,
    };
    let Some(caller) = caller else {
        return Err(JError::new(
            ErrorKind::MissingArgument,
            "statement() is used as a block: {% call statement('name', fetch_result=True) %} SQL {% endcall %}",
        ));
    };
    // A `return()` in the block returns from the block only (as in dbt).
    let sql = {
        let scope = scope(state)?;
        scope.capture().returns.push(None);
        let out = caller.call(state, &[]);
        let returned = scope.capture().returns.pop().flatten();
        match (returned, out) {
            (Some(_), _) => return Ok(Value::from("")),
            (None, out) => out?,
        }
    };
    let result = db.query(&sql.to_string()).map_err(sql_error)?;
    if let Some(name) = name.filter(|n| !n.is_none()) {
        let rows = result.rows.len();
        let stored = minijinja::context! {
            response => minijinja::context! {
                _message => format!("OK {rows}"),
                code => "OK",
                rows_affected => rows,
            },
            data => agate::data(&result),
            table => Table::value(result),
        };
        scope(state)?.store_result(name.to_string(), stored);
    }
    Ok(Value::from(""))
}

/// dbt's `load_result(name)`: what `statement(name)` kept, or `none`.
pub fn load_result(state: &State, name: String) -> Result<Value, JError> {
    Ok(scope(state)?.load_result(&name).unwrap_or(Value::from(())))
}

/// The SQL a relation argument stands for: a relation object, or text (a source's or an
/// ephemeral's SQL).
fn relation_sql(v: &Value) -> String {
    match v.downcast_object_ref::<Relation>() {
        Some(r) => r.to_string(),
        None => v.to_string(),
    }
}

/// The columns of `relation` (name and DuckDB type), empty when it does not exist (as dbt
/// answers).
fn columns_of(db: &dyn Database, relation: &str) -> Result<Vec<Column>, JError> {
    match db.query(&format!("describe select * from {relation}")) {
        Ok(r) => Ok(r
            .rows
            .iter()
            .map(|row| Column {
                name: text(row.first()),
                dtype: text(row.get(1)),
            })
            .collect()),
        Err(e) if e.contains("does not exist") => Ok(Vec::new()),
        Err(e) => Err(sql_error(e)),
    }
}

fn text(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn column_values(columns: Vec<Column>) -> Value {
    Value::from(
        columns
            .into_iter()
            .map(Value::from_object)
            .collect::<Vec<_>>(),
    )
}

/// The `adapter` methods that read the catalog.
pub fn adapter_method(
    state: &State,
    method: &str,
    args: &[Value],
) -> Option<Result<Value, JError>> {
    Some(match method {
        "get_columns_in_relation" => (|| {
            let (relation,): (Value,) = from_args(args)?;
            match access(state)? {
                Access::Parsing => Ok(Value::from(Vec::<Value>::new())),
                Access::Live(db) => Ok(column_values(columns_of(&*db, &relation_sql(&relation))?)),
            }
        })(),
        "get_missing_columns" => (|| {
            let (from, to): (Value, Value) = from_args(args)?;
            match access(state)? {
                Access::Parsing => Ok(Value::from(Vec::<Value>::new())),
                Access::Live(db) => {
                    let have: Vec<String> = columns_of(&*db, &relation_sql(&to))?
                        .into_iter()
                        .map(|c| c.name.to_lowercase())
                        .collect();
                    let missing = columns_of(&*db, &relation_sql(&from))?
                        .into_iter()
                        .filter(|c| !have.contains(&c.name.to_lowercase()))
                        .collect();
                    Ok(column_values(missing))
                }
            }
        })(),
        "get_relation" => (|| {
            let (schema, identifier) = schema_and_identifier(args)?;
            match access(state)? {
                Access::Parsing => Ok(Value::from(())),
                Access::Live(db) => {
                    let found = relations(&*db, &schema, Some(&identifier))?;
                    Ok(found
                        .into_iter()
                        .next()
                        .map(Value::from_object)
                        .unwrap_or(Value::from(())))
                }
            }
        })(),
        "list_relations_without_caching" => (|| {
            let (schema_relation,): (Value,) = from_args(args)?;
            let schema = schema_relation
                .get_attr("schema")
                .ok()
                .and_then(|s| s.as_str().map(str::to_string))
                .unwrap_or_default();
            match access(state)? {
                Access::Parsing => Ok(Value::from(Vec::<Value>::new())),
                Access::Live(db) => Ok(Value::from(
                    relations(&*db, &schema, None)?
                        .into_iter()
                        .map(Value::from_object)
                        .collect::<Vec<_>>(),
                )),
            }
        })(),
        "drop_relation" => (|| {
            let (relation,): (Value,) = from_args(args)?;
            match access(state)? {
                Access::Parsing => Ok(Value::from(())),
                Access::Live(db) => {
                    let Some(r) = relation.downcast_object_ref::<Relation>() else {
                        return Err(JError::new(
                            ErrorKind::InvalidOperation,
                            "drop_relation() needs a relation (ref(), this or api.Relation.create())",
                        ));
                    };
                    for found in relations(&*db, &r.schema, Some(&r.identifier))? {
                        let kind = relation_kind(&*db, &found)?;
                        db.query(&format!("drop {kind} if exists {found}"))
                            .map_err(sql_error)?;
                    }
                    Ok(Value::from(()))
                }
            }
        })(),
        "check_schema_exists" => (|| {
            let (schema, _) = schema_and_identifier_opt(args)?;
            match access(state)? {
                Access::Parsing => Ok(Value::from(false)),
                Access::Live(db) => {
                    let r = db
                        .query(&format!(
                            "select 1 from information_schema.schemata where lower(schema_name) = lower({})",
                            crate::model::relation::quote_literal(&schema)
                        ))
                        .map_err(sql_error)?;
                    Ok(Value::from(!r.rows.is_empty()))
                }
            }
        })(),
        _ => return None,
    })
}

/// The schema and identifier of a `get_relation(database, schema, identifier)` call.
fn schema_and_identifier(args: &[Value]) -> Result<(String, String), JError> {
    let (schema, identifier) = schema_and_identifier_opt(args)?;
    identifier.map(|i| (schema, i)).ok_or_else(|| {
        JError::new(
            ErrorKind::MissingArgument,
            "get_relation(database, schema, identifier) needs an identifier",
        )
    })
}

fn schema_and_identifier_opt(args: &[Value]) -> Result<(String, Option<String>), JError> {
    let (schema, identifier) = relation_args(args, &[])?;
    Ok((schema.unwrap_or_default(), identifier))
}

/// `(database, schema, identifier)` as dbt's relation calls take them, positional or by
/// keyword (`extra` keywords are accepted and ignored); the database is lakeflow's one catalog.
fn relation_args(
    args: &[Value],
    extra: &[&str],
) -> Result<(Option<String>, Option<String>), JError> {
    let (_db, schema, identifier, kwargs): (Option<Value>, Option<Value>, Option<Value>, Kwargs) =
        from_args(args)?;
    let pick = |pos: Option<Value>, key: &str| -> Result<Option<String>, JError> {
        let v = match pos {
            Some(v) => Some(v),
            None => kwargs.get::<Option<Value>>(key)?,
        };
        Ok(v.filter(|v| !v.is_none()).map(|v| v.to_string()))
    };
    let _ = pick(None, "database")?;
    let schema = pick(schema, "schema")?;
    let identifier = pick(identifier, "identifier")?;
    for key in extra {
        let _: Option<Value> = kwargs.get(key)?;
    }
    kwargs.assert_all_used()?;
    Ok((schema, identifier))
}

/// The tables and views of `schema` (one of them, with `identifier`), as relations.
fn relations(
    db: &dyn Database,
    schema: &str,
    identifier: Option<&str>,
) -> Result<Vec<Relation>, JError> {
    use crate::model::relation::quote_literal;
    let mut sql = format!(
        "select table_schema, table_name from information_schema.tables where lower(table_schema) = lower({})",
        quote_literal(schema)
    );
    if let Some(i) = identifier {
        sql.push_str(&format!(
            " and lower(table_name) = lower({})",
            quote_literal(i)
        ));
    }
    sql.push_str(" order by table_name");
    let r = db.query(&sql).map_err(sql_error)?;
    Ok(r.rows
        .iter()
        .map(|row| Relation::new(text(row.first()), text(row.get(1))))
        .collect())
}

/// `adapter`: `adapter.quote(x)`, `adapter.dispatch(name, namespace)`, and the methods that
/// read the catalog (`live.rs`).
#[derive(Debug)]
pub struct Adapter {
    pub dispatch: Arc<super::packages::Dispatcher>,
}

impl minijinja::value::Object for Adapter {
    fn call_method(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, JError> {
        match method {
            "quote" => {
                let (name,): (String,) = from_args(args)?;
                Ok(Value::from(crate::model::relation::quote_ident(&name)))
            }
            "dispatch" => super::packages::dispatch(&self.dispatch, state, args),
            "type" => Ok(Value::from("duckdb")),
            _ => match adapter_method(state, method, args) {
                Some(result) => result,
                None => Err(JError::new(
                    ErrorKind::UnknownMethod,
                    format!("adapter.{method}() is not supported by lakeflow"),
                )),
            },
        }
    }
}

/// `table` or `view`: what `relation` is in the catalog.
fn relation_kind(db: &dyn Database, relation: &Relation) -> Result<&'static str, JError> {
    use crate::model::relation::quote_literal;
    let r = db
        .query(&format!(
            "select table_type from information_schema.tables where table_schema = {} and table_name = {}",
            quote_literal(&relation.schema),
            quote_literal(&relation.identifier)
        ))
        .map_err(sql_error)?;
    Ok(match r.rows.first().and_then(|row| row.first()) {
        Some(serde_json::Value::String(t)) if t == "VIEW" => "view",
        _ => "table",
    })
}

/// dbt's `api`: `api.Relation.create(...)`, `api.Column(...)`.
#[derive(Debug)]
pub struct Api;

impl minijinja::value::Object for Api {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "Relation" => Some(Value::from_object(ApiRelation)),
            "Column" => Some(Value::from_object(ApiColumn)),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct ApiRelation;

impl minijinja::value::Object for ApiRelation {
    fn call_method(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, JError> {
        if method != "create" {
            return Err(JError::new(
                ErrorKind::UnknownMethod,
                format!("api.Relation has no method `{method}` in lakeflow; use create(...)"),
            ));
        }
        let (schema, identifier) =
            relation_args(args, &["type", "quote_policy", "include_policy"])?;
        let schema = match schema {
            Some(s) => s,
            None => state
                .lookup("target")
                .and_then(|t| t.get_attr("schema").ok())
                .map(|s| s.to_string())
                .unwrap_or_else(|| "main".to_string()),
        };
        let identifier = identifier.unwrap_or_default();
        Ok(Value::from_object(Relation::new(schema, identifier)))
    }
}

#[derive(Debug)]
struct ApiColumn;

impl minijinja::value::Object for ApiColumn {
    fn call(self: &Arc<Self>, _state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, JError> {
        let (name, dtype): (String, String) = from_args(args)?;
        Ok(Value::from_object(Column { name, dtype }))
    }

    fn call_method(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, JError> {
        match method {
            "create" => self.call(state, args),
            // dbt's type labels (`string` is TEXT, `integer` INT), else the type as given.
            "translate_type" => {
                let (dtype,): (String,) = from_args(args)?;
                let label = match dtype.to_ascii_uppercase().as_str() {
                    "STRING" => "TEXT".to_string(),
                    "INTEGER" => "INT".to_string(),
                    "TIMESTAMP" | "FLOAT" | "BOOLEAN" | "BIGINT" => dtype.to_ascii_uppercase(),
                    _ => dtype,
                };
                Ok(Value::from(label))
            }
            "string_type" => {
                let (size,): (u64,) = from_args(args)?;
                Ok(Value::from(format!("character varying({size})")))
            }
            "numeric_type" => {
                let (dtype, precision, scale): (String, Option<Value>, Option<Value>) =
                    from_args(args)?;
                Ok(Value::from(match (precision, scale) {
                    (Some(p), Some(s)) if !p.is_none() && !s.is_none() => {
                        format!("{dtype}({p},{s})")
                    }
                    _ => dtype,
                }))
            }
            _ => Err(JError::new(
                ErrorKind::UnknownMethod,
                format!("api.Column has no method `{method}` in lakeflow"),
            )),
        }
    }
}

impl Scope {
    /// Records that this render reached a database call without a connection.
    pub(super) fn defer(&self) {
        self.capture().needs_db = true;
    }

    /// Whether this render reached a database call without a connection.
    pub fn deferred(&self) -> bool {
        self.capture().needs_db
    }

    fn store_result(&self, name: String, value: Value) {
        self.capture().results.insert(name, value);
    }

    fn load_result(&self, name: &str) -> Option<Value> {
        self.capture().results.get(name).cloned()
    }
}
