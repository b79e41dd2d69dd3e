//! Building one node: the trait every materialization implements ([`Materialize`]), what it
//! is given ([`Ctx`]) and what it returns ([`Outcome`]), and the catalog steps they share:
//! replacing a relation in one transaction, and pointing a model's view at a new version of
//! its files ([`switch_view`]).
//!
//! Errors raised while building a node have the code `LF407` (`LF543` when `crate::delta`
//! failed); a storage or catalog error from below keeps its own code. What a failed node's
//! result says is [`failure_text`].

use crate::error::{Error, Result};
use crate::model::relation::Relation;
use crate::render::{Node, strip_statement_end};
use crate::storage::Storage;
use duckdb::Connection;

/// How one materialization builds a node (one implementation per file of `execute/`).
pub trait Materialize {
    fn run(&self, c: &Ctx) -> Result<Outcome>;
}

/// Everything building one node needs.
pub struct Ctx<'a> {
    pub conn: &'a Connection,
    pub node: &'a Node,
    pub storage: &'a Storage,
    pub build_id: &'a str,
    /// Rebuild incremental models from scratch.
    pub full_refresh: bool,
    pub event_time: super::EventTime,
}

impl Ctx<'_> {
    /// The node's compiled SQL, without a final `;`.
    pub fn sql(&self) -> &str {
        strip_statement_end(&self.node.compiled_sql)
    }

    /// Where a `kind` model (external, incremental) writes its files.
    pub fn location(&self, kind: &str) -> Result<&str> {
        self.node
            .location
            .as_deref()
            .ok_or_else(|| failed(format!("{kind} model has no location")))
    }
}

pub struct Outcome {
    pub rows: Option<u64>,
    /// Where the catalog view now reads (on S3, the version this build wrote).
    pub written: Option<String>,
    /// This build's own version of the files, for replicas to pin.
    pub pinned: Option<String>,
    /// A test's result.
    pub verdict: Option<super::test::Verdict>,
    /// A line about how the node was built (an incremental run's strategy and rewrites).
    pub note: Option<String>,
    /// A microbatch model's batches, as run_results' `batch_results`.
    pub batch_results: Option<serde_json::Value>,
}

impl Outcome {
    pub fn rows(rows: Option<u64>) -> Outcome {
        Outcome {
            rows,
            written: None,
            pinned: None,
            verdict: None,
            note: None,
            batch_results: None,
        }
    }
}

/// A node could not be built (`LF407`); `message` is what its result shows.
pub fn failed(message: impl Into<String>) -> Error {
    Error::new("LF407", message)
}

/// A DuckDB statement of a build failed: DuckDB's message.
pub fn sql_error(e: duckdb::Error) -> Error {
    failed(e.to_string())
}

/// What a failed node's result says: the message of an error raised while building it
/// (`LF407`, or `LF543` from `crate::delta`), and the whole error, code and hint, of a storage
/// or catalog error from below.
pub fn failure_text(e: &Error) -> String {
    let text = match e.code {
        "LF407" | "LF543" => e.message.clone(),
        _ => e.to_string(),
    };
    let (ext, maybe) = match missing_extension(&text) {
        Some(ext) => (ext, ""),
        // DuckDB's `timestamptz` functions and operators come with ICU; without it binding
        // fails without naming it.
        None if text.contains("No function matches") && text.contains("WITH TIME ZONE") => {
            ("icu", "if DuckDB's ICU extension is not loaded: ")
        }
        None => return text,
    };
    format!(
        "{text}\n  hint: {maybe}lakeflow never downloads extensions; put {ext}.duckdb_extension (from the PyPI wheel duckdb-extension-{ext}==1.5.5) under the extension directory (LAKEFLOW_EXTENSION_DIR or `extension_directory:` in the profile), in v1.5.5/<platform>/"
    )
}

/// The extension DuckDB tried to autoload and could not, from its error message.
fn missing_extension(text: &str) -> Option<&str> {
    let rest = text.split("Extension Autoloading Error").nth(1)?;
    let rest = rest.split("required extension '").nth(1)?;
    rest.split('\'').next().filter(|e| !e.is_empty())
}

/// Names endpoint and bucket when a write to S3 failed, with the usual reason.
pub fn explain_remote(storage: &Storage, location: &str, error: Error) -> Error {
    match (&storage.remote, crate::project::paths::is_remote(location)) {
        (Some(remote), true) => {
            let text = failure_text(&error);
            let (reason, hint) = crate::storage::s3::diagnose(&text);
            failed(format!(
                "{text}\nS3: {reason} for {}; {hint}",
                remote.describe(location)
            ))
        }
        _ => error,
    }
}

/// A version of a model's files, written and committed, for its catalog view to read.
pub struct Version {
    /// The view's SQL, reading exactly this version.
    pub view: String,
    /// Where the view reads, for the report.
    pub written: String,
    /// This version, recorded with the view for replicas to pin.
    pub pinned: String,
    pub rows: u64,
    /// What was committed, for the message when the view cannot be switched to it.
    pub committed: String,
}

/// Points the model's catalog view at `version`, recording the version with it in the same
/// transaction.
pub fn switch_view(c: &Ctx, version: Version) -> Result<Outcome> {
    replacing(c.conn, &c.node.relation, "view", || {
        c.conn.execute_batch(&version.view).map_err(sql_error)?;
        crate::catalog::state::record_pin(c.conn, &c.node.unique_id, &version.pinned)
            .map_err(sql_error)
    })
    .map_err(|e| {
        failed(format!(
            "{}, but the catalog view failed: {}",
            version.committed, e.message
        ))
    })?;
    Ok(Outcome {
        rows: Some(version.rows),
        written: Some(version.written),
        pinned: Some(version.pinned),
        verdict: None,
        note: None,
        batch_results: None,
    })
}

/// Runs `create` (which makes `relation` a `kind`: view or table) after dropping a relation of
/// the other kind by that name, in one transaction: a model whose materialization changed
/// replaces its old relation, a failure leaves the old one in place, and what `create` records
/// beside the relation (the version a view pins) changes with it or not at all.
pub fn replacing<T>(
    conn: &Connection,
    relation: &Relation,
    kind: &str,
    create: impl Fn() -> Result<T>,
) -> Result<T> {
    // Most runs replace a relation of the same kind, or make a new one: that is tried first,
    // and what the catalog holds by that name is looked up only when it fails. (A lookup per
    // model scans every view and table of the catalog, which costs more than the model itself
    // in a project of hundreds.)
    match in_transaction(conn, None, &create) {
        Ok(v) => Ok(v),
        Err(e) => match relation_kind(conn, relation)?.filter(|k| k != kind) {
            Some(other) => in_transaction(conn, Some(&format!("drop {other} {relation}")), &create),
            None => Err(e),
        },
    }
}

/// Runs `first` (when given) then `create` in one transaction, rolled back if either fails.
fn in_transaction<T>(
    conn: &Connection,
    first: Option<&str>,
    create: &impl Fn() -> Result<T>,
) -> Result<T> {
    conn.execute_batch("begin").map_err(sql_error)?;
    let created = match first {
        Some(stmt) => conn
            .execute_batch(stmt)
            .map_err(sql_error)
            .and_then(|()| create()),
        None => create(),
    };
    match created {
        Ok(v) => {
            conn.execute_batch("commit").map_err(sql_error)?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("rollback");
            Err(e)
        }
    }
}

/// Whether `relation` exists in the catalog now, and as what (`view` or `table`).
pub fn relation_kind(conn: &Connection, relation: &Relation) -> Result<Option<String>> {
    conn.query_row(
        "select case
            when exists (select 1 from duckdb_views() where database_name = current_database()
                         and schema_name = ?1 and view_name = ?2 and not internal) then 'view'
            when exists (select 1 from duckdb_tables() where database_name = current_database()
                         and schema_name = ?1 and table_name = ?2) then 'table' end",
        [&relation.schema, &relation.identifier],
        |r| r.get(0),
    )
    .map_err(sql_error)
}

/// The columns (name, DuckDB type) of a query or relation, as `describe` gives them.
pub fn describe(conn: &Connection, sql: &str) -> Result<Vec<(String, String)>> {
    let mut stmt = conn
        .prepare(&format!("describe {sql}"))
        .map_err(sql_error)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(sql_error)?;
    rows.collect::<std::result::Result<_, _>>()
        .map_err(sql_error)
}

/// Runs a statement that reports a row count (COPY, CREATE TABLE AS).
pub fn count_rows(conn: &Connection, stmt: &str) -> Result<u64> {
    let mut prepared = conn.prepare(stmt).map_err(sql_error)?;
    let mut rows = prepared.query([]).map_err(sql_error)?;
    let count = match rows.next().map_err(sql_error)? {
        Some(row) => row.get::<_, i64>(0).unwrap_or(0),
        None => 0,
    };
    Ok(count.max(0) as u64)
}
