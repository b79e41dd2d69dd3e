//! The live connection a deferred node renders with (`render::deferred`): the worker's own
//! DuckDB connection, lent to the render and taken back after it.

use super::materialize::Outcome;
use crate::error::{Error, Result};
use crate::render::Node;
use crate::render::deferred::Deferred;
use crate::render::live::{Database, QueryResult};
use duckdb::Connection;
use duckdb::types::Value as DuckValue;
use serde_json::Value;
use std::sync::{Arc, Mutex};

struct LiveDb(Mutex<Connection>);

/// `conn` as the live database a render queries (`run_query`, `statement`, `adapter`).
pub fn database(conn: Connection) -> Arc<dyn Database> {
    Arc::new(LiveDb(Mutex::new(conn)))
}

impl Database for LiveDb {
    fn query(&self, sql: &str) -> std::result::Result<QueryResult, String> {
        let conn = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = match conn.prepare(sql) {
            Ok(s) => s,
            // Several statements in one block: run them, nothing to fetch.
            Err(e) if e.to_string().contains("multiple statements") => {
                conn.execute_batch(sql).map_err(|e| e.to_string())?;
                return Ok(QueryResult::default());
            }
            Err(e) => return Err(e.to_string()),
        };
        let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| e.to_string())? {
            let mut cells = Vec::new();
            let mut i = 0;
            while let Ok(v) = row.get::<_, DuckValue>(i) {
                cells.push(cell(v));
                i += 1;
            }
            out.push(cells);
        }
        drop(rows);
        let columns = stmt.column_names();
        let types = (0..columns.len())
            .map(|i| type_name(&stmt.column_logical_type(i)))
            .collect();
        Ok(QueryResult {
            columns,
            types,
            rows: out,
        })
    }
}

/// DuckDB's name of a result column's type (`INTEGER`, `DECIMAL(18,3)`, `VARCHAR`).
fn type_name(t: &duckdb::core::LogicalTypeHandle) -> String {
    use duckdb::core::LogicalTypeId as Id;
    match t.id() {
        Id::Decimal => format!("DECIMAL({},{})", t.decimal_width(), t.decimal_scale()),
        Id::TimestampTZ => "TIMESTAMP WITH TIME ZONE".into(),
        Id::TimeTZ => "TIME WITH TIME ZONE".into(),
        Id::Timestamp => "TIMESTAMP".into(),
        Id::List => format!("{}[]", type_name(&t.child(0))),
        other => format!("{other:?}").to_uppercase(),
    }
}

/// A DuckDB value as the cell Jinja sees: numbers, text, booleans, null; dates and times as
/// text in DuckDB's format.
fn cell(v: DuckValue) -> Value {
    match v {
        DuckValue::Null => Value::Null,
        DuckValue::Boolean(b) => Value::from(b),
        DuckValue::TinyInt(i) => Value::from(i),
        DuckValue::SmallInt(i) => Value::from(i),
        DuckValue::Int(i) => Value::from(i),
        DuckValue::BigInt(i) => Value::from(i),
        DuckValue::UTinyInt(i) => Value::from(i),
        DuckValue::USmallInt(i) => Value::from(i),
        DuckValue::UInt(i) => Value::from(i),
        DuckValue::UBigInt(i) => Value::from(i),
        DuckValue::HugeInt(i) => i64::try_from(i).map_or(Value::from(i.to_string()), Value::from),
        DuckValue::UHugeInt(i) => u64::try_from(i).map_or(Value::from(i.to_string()), Value::from),
        DuckValue::Float(f) => Value::from(f64::from(f)),
        DuckValue::Double(f) => Value::from(f),
        DuckValue::Decimal(d) => {
            let text = d.to_string();
            match text.parse::<i64>() {
                Ok(i) => Value::from(i),
                Err(_) => text.parse::<f64>().map_or(Value::Null, Value::from),
            }
        }
        DuckValue::Text(s) | DuckValue::Enum(s) => Value::from(s),
        DuckValue::Date32(days) => chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0)
            .map_or(Value::Null, |d| {
                Value::from(d.format("%Y-%m-%d").to_string())
            }),
        DuckValue::Timestamp(unit, v) => chrono::DateTime::from_timestamp_micros(unit.to_micros(v))
            .map_or(Value::Null, |d| Value::from(d.naive_utc().to_string())),
        DuckValue::Time64(unit, v) => {
            let micros = unit.to_micros(v);
            chrono::NaiveTime::from_num_seconds_from_midnight_opt(
                (micros / 1_000_000) as u32,
                ((micros % 1_000_000) * 1000) as u32,
            )
            .map_or(Value::Null, |t| Value::from(t.to_string()))
        }
        DuckValue::List(items) | DuckValue::Array(items) => {
            Value::from(items.into_iter().map(cell).collect::<Vec<_>>())
        }
        DuckValue::Struct(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), cell(v.clone())))
                .collect(),
        ),
        DuckValue::Union(v) => cell(*v),
        other => Value::from(format!("{other:?}")),
    }
}

/// What running a deferred node gives back: the worker's connection, the SQL it was
/// rendered to, and how its build went.
pub struct Ran {
    pub conn: Option<Connection>,
    pub compiled: Option<String>,
    pub outcome: Result<Outcome>,
}

/// Runs the deferred `node` on `conn`: renders it with the connection, builds it (`build`:
/// pre-hooks and the materialization), then renders and runs its post-hooks.
pub fn run(
    deferred: Option<&Deferred>,
    node: &Node,
    conn: Connection,
    build: impl FnOnce(&Connection, &Node) -> Result<Outcome>,
) -> Ran {
    let db = Arc::new(LiveDb(Mutex::new(conn)));
    let fresh = match fresh(deferred, node, &db) {
        Ok(n) => n,
        Err(e) => {
            return Ran {
                conn: take_back(db),
                compiled: None,
                outcome: Err(e),
            };
        }
    };
    let built = {
        let conn = db.0.lock().unwrap_or_else(|p| p.into_inner());
        build(&conn, &fresh)
    };
    let outcome = built.and_then(|outcome| {
        let post = match deferred {
            Some(d) => d.post_hooks(&node.unique_id, db.clone())?,
            None => Vec::new(),
        };
        let conn = db.0.lock().unwrap_or_else(|p| p.into_inner());
        super::run_hooks(&conn, "post-hook", &post)?;
        Ok(outcome)
    });
    Ran {
        conn: take_back(db),
        compiled: Some(fresh.compiled_sql),
        outcome,
    }
}

/// Renders the deferred `node` with `conn` only (`lakeflow compile`): the node with its SQL,
/// and the connection back.
pub fn render(
    deferred: Option<&Deferred>,
    node: &Node,
    conn: Connection,
) -> (Option<Connection>, Result<Node>) {
    let db = Arc::new(LiveDb(Mutex::new(conn)));
    let fresh = fresh(deferred, node, &db);
    (take_back(db), fresh)
}

/// Renders the run hooks (`start`: on-run-start, else on-run-end with `results`) over a clone
/// of `conn` and runs each on `conn` before the next renders.
pub fn run_hooks(
    deferred: &Deferred,
    conn: &Connection,
    start: bool,
    results: Option<&serde_json::Value>,
) -> Result<()> {
    let own = conn
        .try_clone()
        .map_err(|e| Error::new("LF406", e.to_string()))?;
    let db = Arc::new(LiveDb(Mutex::new(own)));
    deferred.run_hooks(start, db, results, &mut |sql| {
        conn.execute_batch(sql)
            .map_err(|e| Error::new("LF406", e.to_string()))
    })
}

/// `node` rendered with `db`: its SQL, incremental variant and pre-hooks.
fn fresh(deferred: Option<&Deferred>, node: &Node, db: &Arc<LiveDb>) -> Result<Node> {
    let Some(d) = deferred else {
        return Err(Error::new(
            "LF407",
            format!(
                "'{}' must be rendered when it runs, but nothing can render it",
                node.name
            ),
        ));
    };
    let f = d.render(&node.unique_id, db.clone()).map_err(|e| {
        super::materialize::failed(format!(
            "rendering it with the database failed: {}",
            super::materialize::failure_text(&e)
        ))
    })?;
    let mut n = node.clone();
    n.compiled_sql = f.compiled_sql;
    n.incremental_sql = f.incremental_sql;
    n.hooks = f.hooks;
    Ok(n)
}

/// The connection lent to the render, once the render's scopes are gone.
fn take_back(db: Arc<LiveDb>) -> Option<Connection> {
    Arc::try_unwrap(db)
        .ok()
        .map(|d| d.0.into_inner().unwrap_or_else(|p| p.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_as_dbt_shows_them() {
        let conn = Connection::open_in_memory().expect("duckdb");
        let db = LiveDb(Mutex::new(conn));
        let r = db
            .query("select 1 as i, 2.50::decimal(5,2) as d, 'x' as s, date '2024-02-29' as dt, timestamp '2024-01-02 03:04:05' as ts, null as n")
            .expect("query");
        assert_eq!(r.columns, ["i", "d", "s", "dt", "ts", "n"]);
        assert_eq!(r.types[0], "INTEGER");
        assert_eq!(r.types[1], "DECIMAL(5,2)");
        assert_eq!(r.types[2], "VARCHAR");
        assert_eq!(
            r.rows[0],
            vec![
                Value::from(1),
                Value::from(2.5),
                Value::from("x"),
                Value::from("2024-02-29"),
                Value::from("2024-01-02 03:04:05"),
                Value::Null
            ]
        );
        let batch = db.query("create table t(a int); insert into t values (1), (2);");
        assert!(batch.is_ok(), "{batch:?}");
        let n = db.query("select count(*) from t").expect("count");
        assert_eq!(n.rows[0][0], Value::from(2));
    }
}
