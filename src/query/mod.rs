//! `lakeflow query`: one read-only statement against the catalog or a replica, printed as a
//! table, CSV or JSON.
//!
//! A reader gets a session that cannot write, however the SQL is phrased:
//! - the database file is opened `READ_ONLY`;
//! - file access is limited to the folders the catalog's views read (the lake root, model
//!   locations, source files), the list is fixed and `lock_configuration` keeps it so;
//! - the SQL runs inside DuckDB's `query()` table function, whose parser accepts exactly one
//!   SELECT statement (FROM, WITH, VALUES, DESCRIBE, SUMMARIZE and SHOW are SELECTs), so COPY,
//!   ATTACH, INSTALL, LOAD, SET, CREATE, INSERT ... are refused before anything runs. This
//!   matters because DuckDB lets COPY write into an allowed directory.
//!
//! Every value is printed through DuckDB's own rendering (a cast to VARCHAR, `to_json()` for
//! JSON), so every type prints, nested and exotic ones included.

use crate::error::{Error, Result};
use crate::project::Project;
use crate::storage::Storage;
use duckdb::Connection;
use std::path::PathBuf;

mod reader;

pub use reader::{SessionLimits, open};

/// How `lakeflow query` prints rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryFormat {
    Table,
    Csv,
    Json,
}

/// What `lakeflow query` reads: the latest published replica, or the live catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QuerySource {
    Replica,
    Catalog,
}

pub fn run(
    project: &Project,
    storage: &Storage,
    sql: &str,
    format: QueryFormat,
    from: Option<QuerySource>,
) -> Result<()> {
    let target = &project.target;
    let use_replica = match from {
        Some(QuerySource::Replica) => true,
        Some(QuerySource::Catalog) => false,
        None => target.publish.is_some(),
    };
    let mut pulled = None;
    let file: PathBuf = if use_replica {
        let publish = target.publish.as_ref().ok_or_else(|| {
            Error::new(
                "LF603",
                format!("target '{}' publishes no replica", target.name),
            )
            .hint("add `publish: {to: ...}` to the target in profiles.yml, or use --from catalog")
        })?;
        if crate::project::paths::is_remote(&publish.to) {
            let tmp =
                std::env::temp_dir().join(format!("lakeflow-query-{}.duckdb", std::process::id()));
            crate::publish::pull(storage, &publish.to, &tmp)?;
            pulled = Some(tmp.clone());
            tmp
        } else {
            PathBuf::from(&publish.to)
        }
    } else {
        PathBuf::from(&target.catalog)
    };
    let result = open(project, &file, &SessionLimits::default())
        .and_then(|conn| print_query(&conn, sql, format));
    if let Some(tmp) = pulled {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

/// DuckDB's parse of `sql` as JSON (`json_serialize_sql`): `error` is false and
/// `statements` lists the statements when it is SELECTs, else `error_message` says why.
pub fn parse(conn: &Connection, sql: &str) -> std::result::Result<serde_json::Value, String> {
    let tree: String = conn
        .query_row("select json_serialize_sql(?::varchar)", [sql], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&tree).map_err(|e| e.to_string())
}

/// Runs `sql` as the single SELECT of `query()`, every column rendered by DuckDB as text (and
/// as JSON for the JSON format), and prints the result.
fn print_query(conn: &Connection, sql: &str, format: QueryFormat) -> Result<()> {
    let result = run_query(conn, sql, None)?;
    match format {
        QueryFormat::Json => crate::outln!("{}", result.json()),
        QueryFormat::Csv => crate::outln!("{}", result.csv("NULL").trim_end()),
        QueryFormat::Table => {
            let shown = |c: &Option<String>| c.clone().unwrap_or_else(|| "NULL".into());
            let rows: Vec<Vec<String>> = result
                .rows
                .iter()
                .map(|r| r.iter().map(|(text, _)| shown(text)).collect())
                .collect();
            print_table(&result.names, &rows);
        }
    }
    Ok(())
}

/// The result of a query: column names, and per row each value's text (None for NULL) and
/// DuckDB's JSON of it.
pub struct QueryResult {
    pub names: Vec<String>,
    pub rows: Vec<Vec<(Option<String>, Option<String>)>>,
    /// More rows than the limit asked for were there.
    pub truncated: bool,
}

impl QueryResult {
    /// A JSON array of objects; NULL is null, NaN and Infinity are strings.
    pub fn json(&self) -> String {
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|r| json_object(&self.names, r))
            .collect();
        format!("[{}]", rows.join(","))
    }

    /// CSV with a header line, NULL written as `null`.
    pub fn csv(&self, null: &str) -> String {
        let mut out = String::new();
        let header: Vec<String> = self.names.iter().map(|n| csv_cell(n)).collect();
        out.push_str(&header.join(","));
        out.push('\n');
        for r in &self.rows {
            let cells: Vec<String> = r
                .iter()
                .map(|(text, _)| csv_cell(text.as_deref().unwrap_or(null)))
                .collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        out
    }
}

/// Runs `sql` as the single SELECT of `query()` (anything else is refused, LF604), at most
/// `limit` rows of it.
pub fn run_query(conn: &Connection, sql: &str, limit: Option<usize>) -> Result<QueryResult> {
    run_query_with(conn, sql, limit, &[])
}

/// As [`run_query`], with values for the SQL's parameters (`?`, `$1`).
pub fn run_query_with(
    conn: &Connection,
    sql: &str,
    limit: Option<usize>,
    params: &[duckdb::types::Value],
) -> Result<QueryResult> {
    let mut names = Vec::new();
    let mut truncated = false;
    let mut rows = Vec::new();
    for_each_row(
        conn,
        sql,
        limit,
        params,
        |n, _, more| {
            names = n.to_vec();
            truncated = more;
            Ok(())
        },
        |r| {
            rows.push(r);
            Ok(())
        },
    )?;
    Ok(QueryResult {
        names,
        rows,
        truncated,
    })
}

/// The statement that runs the user's `sql` with `select_list` over its columns, at most
/// `limit` rows and one more (to tell a cut result), and the values it binds. Without
/// parameters the SQL is the single SELECT of `query()`; `query()` takes no parameters, so
/// SQL with parameters is first checked by DuckDB's parser to be exactly one SELECT
/// statement, then run as a subquery with the values bound.
fn wrap(
    conn: &Connection,
    sql: &str,
    select_list: &str,
    limit: Option<usize>,
    params: &[duckdb::types::Value],
) -> Result<(String, Vec<duckdb::types::Value>)> {
    let limit_sql = limit
        .map(|n| format!(" limit {}", n + 1))
        .unwrap_or_default();
    if params.is_empty() {
        return Ok((
            format!("select {select_list} from query(?){limit_sql}"),
            vec![duckdb::types::Value::Text(sql.to_string())],
        ));
    }
    let tree = parse(conn, sql).map_err(|e| query_error(&e))?;
    let one_select = tree.get("error") == Some(&serde_json::Value::Bool(false))
        && tree
            .get("statements")
            .and_then(|s| s.as_array())
            .is_some_and(|s| s.len() == 1);
    if !one_select {
        return Err(query_error("Expected a single SELECT statement"));
    }
    Ok((
        format!("select {select_list} from (\n{sql}\n) as lf_query{limit_sql}"),
        params.to_vec(),
    ))
}

/// Runs `sql` (see [`wrap`]) and hands over its column names, row count and whether the
/// result was cut at `limit` (`start`), then each row, every value as DuckDB's text and JSON of it
/// (`row`). The result is complete in DuckDB before `start`, so a caller streaming it can
/// say up front how many rows come.
pub fn for_each_row(
    conn: &Connection,
    sql: &str,
    limit: Option<usize>,
    params: &[duckdb::types::Value],
    mut start: impl FnMut(&[String], usize, bool) -> Result<()>,
    mut row: impl FnMut(Vec<(Option<String>, Option<String>)>) -> Result<()>,
) -> Result<()> {
    let failed = |e: duckdb::Error| query_error(&e.to_string());
    let (wrapped, bound) = wrap(
        conn,
        sql,
        "columns(*)::varchar, to_json(columns(*))::varchar",
        limit,
        params,
    )?;
    let mut stmt = conn.prepare(&wrapped).map_err(failed)?;
    let mut rows = stmt
        .query(duckdb::params_from_iter(bound))
        .map_err(failed)?;
    let (mut names, total) = rows
        .as_ref()
        .map(|s| (s.column_names(), s.row_count()))
        .unwrap_or_default();
    let width = names.len() / 2;
    names.truncate(width);
    let keep = limit.map_or(total, |n| total.min(n));
    start(&names, keep, total > keep)?;
    let mut sent = 0;
    while sent < keep
        && let Some(r) = rows.next().map_err(failed)?
    {
        let mut cells = Vec::with_capacity(width);
        for i in 0..width {
            let text: Option<String> = r.get(i).map_err(failed)?;
            let json: Option<String> = r.get(width + i).map_err(failed)?;
            cells.push((text, json));
        }
        row(cells)?;
        sent += 1;
    }
    Ok(())
}

/// Runs `sql` (see [`wrap`]) with DuckDB's own column types and hands over its Arrow
/// schema, row count and whether it was cut at `limit` (`start`), then its rows as Arrow
/// record batches (`batch`), the last one sliced to the limit.
pub fn for_each_batch(
    conn: &Connection,
    sql: &str,
    limit: Option<usize>,
    params: &[duckdb::types::Value],
    mut start: impl FnMut(duckdb::arrow::datatypes::SchemaRef, usize, bool) -> Result<()>,
    mut batch: impl FnMut(duckdb::arrow::record_batch::RecordBatch) -> Result<()>,
) -> Result<()> {
    let failed = |e: duckdb::Error| query_error(&e.to_string());
    let (wrapped, bound) = wrap(conn, sql, "*", limit, params)?;
    let mut stmt = conn.prepare(&wrapped).map_err(failed)?;
    let arrow = stmt
        .query_arrow(duckdb::params_from_iter(bound))
        .map_err(failed)?;
    let schema = arrow.get_schema();
    drop(arrow);
    let total = stmt.row_count();
    let keep = limit.map_or(total, |n| total.min(n));
    start(schema.clone(), keep, total > keep)?;
    let mut sent = 0;
    while sent < keep
        && let Some(chunk) = stmt.step().map_err(failed)?
    {
        let mut b = duckdb::arrow::record_batch::RecordBatch::from(chunk);
        if sent + b.num_rows() > keep {
            b = b.slice(0, keep - sent);
        }
        sent += b.num_rows();
        // DuckDB's batch carries no schema metadata and its own field names.
        let b =
            duckdb::arrow::record_batch::RecordBatch::try_new(schema.clone(), b.columns().to_vec())
                .map_err(|e| query_error(&e.to_string()))?;
        batch(b)?;
    }
    Ok(())
}

fn query_error(message: &str) -> Error {
    if message.contains("Expected a single SELECT statement") {
        return Error::new(
            "LF604",
            "lakeflow query runs one read statement (SELECT, FROM, WITH, VALUES, DESCRIBE, SUMMARIZE, SHOW); this SQL is not one",
        )
        .hint("queries are read-only: COPY, ATTACH, INSTALL, LOAD, SET, CREATE, INSERT and the like are refused; to write data, make it a model and build it");
    }
    // A pointer into lakeflow's own wrapper statement says nothing about the user's SQL.
    let message = match message.find("LINE ") {
        Some(at) if message[at..].contains("query(?)") => message[..at].trim_end(),
        _ => message,
    };
    Error::new("LF602", format!("query failed: {message}"))
}

/// One row as a JSON object of its columns; NULL is null, NaN and Infinity are strings.
pub fn json_object(names: &[String], cells: &[(Option<String>, Option<String>)]) -> String {
    let fields: Vec<String> = names
        .iter()
        .zip(cells)
        .map(|(name, (text, json))| {
            format!(
                "{}:{}",
                json_string(name),
                json_cell(json.clone(), text.as_deref())
            )
        })
        .collect();
    format!("{{{}}}", fields.join(","))
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// DuckDB's JSON for a value, kept as it is (numbers keep all their digits); where that is
/// no valid JSON (NaN, Infinity), the value's text as a JSON string.
fn json_cell(json: Option<String>, text: Option<&str>) -> String {
    match (json, text) {
        (None, _) | (_, None) => "null".into(),
        (Some(j), Some(t)) => {
            if serde_json::from_str::<serde::de::IgnoredAny>(&j).is_ok() {
                j
            } else {
                json_string(t)
            }
        }
    }
}

pub fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn print_table(names: &[String], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    crate::outln!("{}", line(names));
    crate::outln!(
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-")
    );
    for r in rows {
        crate::outln!("{}", line(r));
    }
    crate::outln!("({} rows)", rows.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_do_not_point_into_the_wrapper_statement() {
        let e = query_error(
            "Permission Error: Cannot access file \"/etc/x\"\n\nLINE 1: select columns(*)::varchar from query(?)\n        ^",
        );
        assert_eq!(e.code, "LF602");
        assert_eq!(
            e.message,
            "query failed: Permission Error: Cannot access file \"/etc/x\""
        );
        let inner = "Binder Error: column x not found\n\nLINE 1: select x from t";
        assert!(
            query_error(inner)
                .message
                .contains("LINE 1: select x from t")
        );
    }

    #[test]
    fn json_cells_stay_valid_json() {
        assert_eq!(
            json_cell(Some("12345678901234567890123".into()), Some("x")),
            "12345678901234567890123"
        );
        assert_eq!(json_cell(Some("NaN".into()), Some("nan")), "\"nan\"");
        assert_eq!(
            json_cell(Some("[1,NaN]".into()), Some("[1, nan]")),
            "\"[1, nan]\""
        );
        assert_eq!(json_cell(None, None), "null");
    }
}
