//! Running one model: the SQL each materialization executes, and for external models the
//! staged write that is published only when it succeeded.

use super::materialization::{External, FileFormat, Materialization};
use super::templates;
use crate::catalog;
use crate::model::relation::quote_literal;
use crate::render::{Node, strip_statement_end};
use crate::storage::Storage;
use duckdb::Connection;

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
}

impl Outcome {
    pub(super) fn rows(rows: Option<u64>) -> Outcome {
        Outcome {
            rows,
            written: None,
            pinned: None,
            verdict: None,
            note: None,
        }
    }
}

/// Builds one node, with its pre-hooks before and post-hooks after (a failing hook fails the
/// node; post-hooks run only when the build succeeded).
pub fn run(
    conn: &Connection,
    node: &Node,
    storage: &Storage,
    build_id: &str,
    full_refresh: bool,
) -> Result<Outcome, String> {
    run_hooks(conn, "pre-hook", &node.hooks.pre)?;
    let outcome = build(conn, node, storage, build_id, full_refresh)?;
    run_hooks(conn, "post-hook", &node.hooks.post)?;
    Ok(outcome)
}

fn run_hooks(conn: &Connection, which: &str, hooks: &[String]) -> Result<(), String> {
    for sql in hooks {
        conn.execute_batch(sql)
            .map_err(|e| format!("{which} failed: {e}\n  {which}: {sql}"))?;
    }
    Ok(())
}

fn build(
    conn: &Connection,
    node: &Node,
    storage: &Storage,
    build_id: &str,
    full_refresh: bool,
) -> Result<Outcome, String> {
    let sql = strip_statement_end(&node.compiled_sql);
    let relation = node.relation.to_string();
    match &node.materialization {
        Materialization::Ephemeral => Ok(Outcome::rows(None)),
        Materialization::Incremental(inc) => {
            let ctx = super::incremental::Ctx {
                conn,
                node,
                storage,
                build_id,
                full_refresh,
            };
            let location = node.location.as_deref().unwrap_or_default();
            super::incremental::run(&ctx, inc, sql)
                .map_err(|e| explain_remote(storage, location, e))
        }
        Materialization::Test => {
            let verdict = super::test::run(conn, node, sql)?;
            Ok(Outcome {
                verdict: Some(verdict),
                ..Outcome::rows(None)
            })
        }
        Materialization::View => {
            let stmt =
                templates::render("view", &[("relation", relation), ("sql", sql.to_string())]);
            replacing(conn, &node.relation, "view", || {
                conn.execute_batch(&stmt).map_err(|e| e.to_string())
            })?;
            Ok(Outcome::rows(None))
        }
        Materialization::Table => {
            let stmt =
                templates::render("table", &[("relation", relation), ("sql", sql.to_string())]);
            let rows = replacing(conn, &node.relation, "table", || count_rows(conn, &stmt))?;
            Ok(Outcome::rows(Some(rows)))
        }
        Materialization::External(ext) => {
            let location = node
                .location
                .as_deref()
                .ok_or_else(|| "external model has no location".to_string())?;
            let write = ExternalWrite {
                conn,
                node,
                sql,
                ext,
                location,
                storage,
                build_id,
            };
            if ext.format == FileFormat::Delta {
                delta(&write)
            } else {
                external(&write)
            }
        }
    }
}

/// Everything writing one external model needs.
struct ExternalWrite<'a> {
    conn: &'a Connection,
    node: &'a Node,
    sql: &'a str,
    ext: &'a External,
    location: &'a str,
    storage: &'a Storage,
    build_id: &'a str,
}

/// A Delta model: new data files and one commit; the catalog view reads that version's files.
fn delta(w: &ExternalWrite) -> Result<Outcome, String> {
    if !crate::location::is_remote(w.location) {
        std::fs::create_dir_all(w.location)
            .map_err(|e| format!("cannot create {}: {e}", w.location))?;
    }
    let table = crate::delta::Table::open(w.location, w.storage.remote.as_ref())
        .map_err(|e| explain_remote(w.storage, w.location, e))?;
    delta_full(w.conn, w.node, &table, w.sql, w.ext, w.build_id)
        .map_err(|e| explain_remote(w.storage, w.location, e))
}

/// Writes `sql` as the new version of `table` and points the catalog view at it.
pub(super) fn delta_full(
    conn: &Connection,
    node: &Node,
    table: &crate::delta::Table,
    sql: &str,
    ext: &External,
    build_id: &str,
) -> Result<Outcome, String> {
    let written = crate::delta::write::write_model(conn, table, sql, ext, build_id, &node.name)?;
    delta_view(conn, node, table, &written)
}

/// Points the model's catalog view at the version `written` committed.
pub(super) fn delta_view(
    conn: &Connection,
    node: &Node,
    table: &crate::delta::Table,
    written: &crate::delta::write::ModelWrite,
) -> Result<Outcome, String> {
    let reader = crate::delta::reader_sql(&table.location, &written.snapshot)?;
    let view = templates::render(
        "external_view",
        &[
            ("relation", node.relation.to_string()),
            ("reader", format!("({reader})")),
        ],
    );
    let pinned = crate::delta::pin(&table.location, written.snapshot.version);
    replacing(conn, &node.relation, "view", || {
        conn.execute_batch(&view).map_err(|e| e.to_string())?;
        record_pin(conn, node, &pinned)
    })
    .map_err(|e| {
        format!(
            "version {} of {} was committed, but the catalog view failed: {e}",
            written.snapshot.version, table.location
        )
    })?;
    Ok(Outcome {
        rows: Some(written.rows),
        written: Some(table.location.clone()),
        pinned: Some(pinned),
        verdict: None,
        note: None,
    })
}

/// Parquet/CSV/JSON files, staged and put in place atomically.
fn external(w: &ExternalWrite) -> Result<Outcome, String> {
    let partitioned = !w.ext.partition_by.is_empty();
    let staged = w
        .storage
        .stage(
            w.location,
            partitioned,
            w.ext.format.extension(),
            w.build_id,
        )
        .map_err(|e| e.to_string())?;
    let stmt = templates::render(
        "external_copy",
        &[
            ("sql", w.sql.to_string()),
            ("path", quote_literal(&staged.write_path)),
            ("options", copy_options(w.ext)),
        ],
    );
    let rows = match count_rows(w.conn, &stmt) {
        Ok(rows) => rows,
        Err(e) => {
            w.storage.abort(&staged);
            return Err(explain_remote(w.storage, w.location, e));
        }
    };
    let view = catalog::external_view_sql(&w.node.relation, &staged.view_path, w.ext);
    put_in_place(w.conn, w.node, w.storage, staged, &view, rows)
        .map_err(|e| explain_remote(w.storage, w.location, e))
}

/// After a staged write succeeded: puts the new version in place, points the model's catalog
/// view at it (`view` is the view's SQL), then drops versions beyond the retention.
pub(super) fn put_in_place(
    conn: &Connection,
    node: &Node,
    storage: &Storage,
    staged: crate::storage::Staged,
    view: &str,
    rows: u64,
) -> Result<Outcome, String> {
    storage.commit(&staged).map_err(|e| e.to_string())?;
    replacing(conn, &node.relation, "view", || {
        conn.execute_batch(view).map_err(|e| e.to_string())?;
        record_pin(conn, node, &staged.pinned_path)
    })
    .map_err(|e| {
        format!(
            "files written to {}, but the catalog view failed: {e}",
            staged.view_path
        )
    })?;
    // Old versions go only once nothing live points at them; a failure here loses no data.
    if let Err(e) = storage.collect_garbage(&staged) {
        crate::errln!(
            "warning: {}: old versions were not removed: {}",
            node.name,
            e.message
        );
    }
    Ok(Outcome {
        written: Some(staged.view_path),
        pinned: Some(staged.pinned_path),
        ..Outcome::rows(Some(rows))
    })
}

/// Runs `create` (which makes `relation` a `kind`: view or table) after dropping a relation of
/// the other kind by that name, in one transaction: a model whose materialization changed
/// replaces its old relation, a failure leaves the old one in place, and what `create` records
/// beside the relation (the version a view pins) changes with it or not at all.
pub(super) fn replacing<T>(
    conn: &Connection,
    relation: &crate::model::relation::Relation,
    kind: &str,
    create: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    let other = relation_kind(conn, relation)?.filter(|k| k != kind);
    conn.execute_batch("begin").map_err(|e| e.to_string())?;
    let created = match other {
        Some(other) => conn
            .execute_batch(&format!("drop {other} {relation}"))
            .map_err(|e| e.to_string())
            .and_then(|()| create()),
        None => create(),
    };
    match created {
        Ok(v) => {
            conn.execute_batch("commit").map_err(|e| e.to_string())?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("rollback");
            Err(e)
        }
    }
}

/// Records `pinned` as the version the model's view reads, in the transaction that switches
/// the view: a run killed right after a model was built leaves the catalog's view and this
/// record agreeing, and the next incremental run goes on from the version readers saw.
fn record_pin(conn: &Connection, node: &Node, pinned: &str) -> Result<(), String> {
    conn.execute(
        "update _lakeflow.models set pinned_path = ? where unique_id = ?",
        [pinned, node.unique_id.as_str()],
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// Whether `relation` exists in the catalog now, and as what (`view` or `table`).
pub(super) fn relation_kind(
    conn: &Connection,
    relation: &crate::model::relation::Relation,
) -> Result<Option<String>, String> {
    conn.query_row(
        "select case
            when exists (select 1 from duckdb_views() where database_name = current_database()
                         and schema_name = ?1 and view_name = ?2 and not internal) then 'view'
            when exists (select 1 from duckdb_tables() where database_name = current_database()
                         and schema_name = ?1 and table_name = ?2) then 'table' end",
        [&relation.schema, &relation.identifier],
        |r| r.get(0),
    )
    .map_err(|e| e.to_string())
}

/// Names endpoint and bucket when an S3 write fails, with the usual reason.
fn explain_remote(storage: &Storage, location: &str, error: String) -> String {
    match (&storage.remote, crate::location::is_remote(location)) {
        (Some(remote), true) => {
            let (reason, hint) = crate::storage::s3::diagnose(&error);
            format!(
                "{error}\nS3: {reason} for {}; {hint}",
                remote.describe(location)
            )
        }
        _ => error,
    }
}

fn copy_options(ext: &External) -> String {
    let mut opts = vec![format!("format {}", ext.format.extension())];
    if !ext.partition_by.is_empty() {
        let cols: Vec<String> = ext
            .partition_by
            .iter()
            .map(|c| crate::model::relation::quote_ident(c))
            .collect();
        opts.push(format!("partition_by ({})", cols.join(", ")));
    }
    for (k, v) in &ext.options {
        opts.push(format!("{k} {v}"));
    }
    opts.join(", ")
}

/// Runs a statement that reports a row count (COPY, CREATE TABLE AS).
pub(super) fn count_rows(conn: &Connection, stmt: &str) -> Result<u64, String> {
    let mut prepared = conn.prepare(stmt).map_err(|e| e.to_string())?;
    let mut rows = prepared.query([]).map_err(|e| e.to_string())?;
    let count = match rows.next().map_err(|e| e.to_string())? {
        Some(row) => row.get::<_, i64>(0).unwrap_or(0),
        None => 0,
    };
    Ok(count.max(0) as u64)
}
