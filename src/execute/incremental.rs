//! Incremental models. The first run (and `--full-refresh`) builds the whole table; later runs
//! compute only the model's `is_incremental()` rows into a temporary table and merge them in:
//! - a table inside the catalog: one transaction of DELETE/INSERT (and ALTER for new columns);
//! - Parquet files: append only, a new version holding the old files (hard links locally,
//!   server-side copies on S3) plus the new ones, swapped in like any external write;
//! - Delta: one commit adding the new rows' files and removing the files they replace
//!   (copy-on-write of only the files that hold a matched key or partition).
//!
//! Whatever fails, the table stays as it was: nothing is committed before everything is
//! written.

use super::materialization::{External, FileFormat, Incremental, OnSchemaChange, Strategy};
use super::materialize::{Outcome, count_rows, relation_kind, replacing};
use super::templates;
use crate::catalog;
use crate::model::relation::{quote_ident, quote_literal};
use crate::render::Node;
use crate::storage::Storage;
use duckdb::Connection;

pub struct Ctx<'a> {
    pub conn: &'a Connection,
    pub node: &'a Node,
    pub storage: &'a Storage,
    pub build_id: &'a str,
    pub full_refresh: bool,
}

pub fn run(c: &Ctx, inc: &Incremental, full_sql: &str) -> Result<Outcome, String> {
    let existing = relation_kind(c.conn, &c.node.relation)?;
    let new_sql = match &c.node.incremental_sql {
        Some(Ok(sql)) => Some(crate::render::strip_statement_end(sql)),
        Some(Err(e)) if !c.full_refresh && existing.is_some() => {
            return Err(format!(
                "the model's is_incremental() branch does not compile:\n{e}"
            ));
        }
        _ => None,
    };
    match &inc.external {
        None => {
            let incremental = !c.full_refresh && existing.as_deref() == Some("table");
            match new_sql.filter(|_| incremental) {
                Some(sql) => catalog_table(c, inc, sql),
                None => {
                    let stmt = templates::render(
                        "table",
                        &[
                            ("relation", c.node.relation.to_string()),
                            ("sql", full_sql.to_string()),
                        ],
                    );
                    let rows = replacing(c.conn, &c.node.relation, "table", || {
                        count_rows(c.conn, &stmt)
                    })?;
                    Ok(Outcome::rows(Some(rows)))
                }
            }
        }
        Some(ext) => {
            let location = c
                .node
                .location
                .as_deref()
                .ok_or_else(|| "incremental model has no location".to_string())?;
            let as_view = existing.as_deref() == Some("view");
            if ext.format == FileFormat::Delta {
                delta(
                    c,
                    inc,
                    ext,
                    location,
                    new_sql.filter(|_| as_view && !c.full_refresh),
                    full_sql,
                )
            } else {
                let previous = if as_view && !c.full_refresh {
                    c.storage
                        .live_version(location, recorded_pin(c.conn, c.node))
                } else {
                    None
                };
                let sql = new_sql.filter(|_| previous.is_some());
                parquet(
                    c,
                    inc,
                    ext,
                    location,
                    previous.as_deref().zip(sql),
                    full_sql,
                )
            }
        }
    }
}

/// The version of the model's files recorded with its catalog view (switched together).
fn recorded_pin(conn: &Connection, node: &Node) -> Option<String> {
    conn.query_row(
        "select pinned_path from _lakeflow.models where unique_id = ?",
        [&node.unique_id],
        |r| r.get(0),
    )
    .ok()
    .flatten()
}

/// A temporary table of the run's new rows, dropped when this goes out of scope.
struct Batch<'a> {
    conn: &'a Connection,
    name: String,
}

impl<'a> Batch<'a> {
    fn create(conn: &'a Connection, node: &Node, sql: &str) -> Result<Batch<'a>, String> {
        let name = quote_ident(&format!("lf_new_rows_{}", node.name));
        conn.execute_batch(&format!(
            "create or replace temp table {name} as select * from ({sql}) as lf_new"
        ))
        .map_err(|e| e.to_string())?;
        Ok(Batch { conn, name })
    }

    fn rows(&self) -> Result<u64, String> {
        self.conn
            .query_row(&format!("select count(*) from {}", self.name), [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as u64)
            .map_err(|e| e.to_string())
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        let _ = self
            .conn
            .execute_batch(&format!("drop table if exists {}", self.name));
    }
}

/// `describe` of a relation or query: (column, DuckDB type) in order.
fn columns_of(conn: &Connection, relation: &str) -> Result<Vec<(String, String)>, String> {
    let mut stmt = conn
        .prepare(&format!("describe {relation}"))
        .map_err(|e| e.to_string())?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())
}

/// How the new rows' columns become the table's, per `on_schema_change`.
#[derive(Debug, PartialEq)]
pub struct SchemaPlan {
    /// Expressions over the new rows giving the table's columns, in the table's order.
    pub select: Vec<String>,
    /// The table's columns after this run.
    pub columns: Vec<(String, String)>,
    pub added: Vec<(String, String)>,
    pub removed: Vec<String>,
    /// (column, old type, new type)
    pub retyped: Vec<(String, String, String)>,
}

pub fn plan_schema(
    table: &[(String, String)],
    new: &[(String, String)],
    mode: OnSchemaChange,
    relation: &str,
) -> Result<SchemaPlan, String> {
    let find = |cols: &[(String, String)], n: &str| -> Option<String> {
        cols.iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(n))
            .map(|(_, t)| t.clone())
    };
    let added: Vec<(String, String)> = new
        .iter()
        .filter(|(n, _)| find(table, n).is_none())
        .cloned()
        .collect();
    let removed: Vec<String> = table
        .iter()
        .filter(|(n, _)| find(new, n).is_none())
        .map(|(n, _)| n.clone())
        .collect();
    let retyped: Vec<(String, String, String)> = table
        .iter()
        .filter_map(|(n, t)| {
            let nt = find(new, n)?;
            (nt != *t).then(|| (n.clone(), t.clone(), nt))
        })
        .collect();
    let changed = !(added.is_empty() && removed.is_empty() && retyped.is_empty());
    // Keep the table's columns, filling missing ones with nulls and casting changed ones.
    let keep_table = |extra: &[(String, String)]| -> Vec<String> {
        let mut out: Vec<String> = table
            .iter()
            .map(|(n, t)| match find(new, n) {
                Some(nt) if nt == *t => quote_ident(n),
                Some(_) => format!("cast({} as {t}) as {}", quote_ident(n), quote_ident(n)),
                None => format!("cast(null as {t}) as {}", quote_ident(n)),
            })
            .collect();
        out.extend(extra.iter().map(|(n, _)| quote_ident(n)));
        out
    };
    let (select, columns) = match mode {
        _ if !changed => (keep_table(&[]), table.to_vec()),
        OnSchemaChange::Fail => {
            let mut what = Vec::new();
            for (n, t) in &added {
                what.push(format!("new column {n} {t}"));
            }
            for n in &removed {
                what.push(format!("column {n} is gone"));
            }
            for (n, a, b) in &retyped {
                what.push(format!("column {n} changed from {a} to {b}"));
            }
            return Err(format!(
                "on_schema_change is 'fail' and the new rows' columns differ from {relation}: {}; rebuild with --full-refresh, or set on_schema_change to ignore, append_new_columns or sync_all_columns",
                what.join("; ")
            ));
        }
        OnSchemaChange::Ignore => (keep_table(&[]), table.to_vec()),
        OnSchemaChange::AppendNewColumns => {
            let mut cols = table.to_vec();
            cols.extend(added.iter().cloned());
            (keep_table(&added), cols)
        }
        OnSchemaChange::SyncAllColumns => (
            new.iter().map(|(n, _)| quote_ident(n)).collect(),
            new.to_vec(),
        ),
    };
    Ok(SchemaPlan {
        select,
        columns,
        added,
        removed,
        retyped,
    })
}

/// A table inside the catalog: schema changes, deletes and inserts in one transaction.
fn catalog_table(c: &Ctx, inc: &Incremental, sql: &str) -> Result<Outcome, String> {
    let (batch, plan) = new_rows(c, inc, sql)?;
    let relation = c.node.relation.to_string();
    let mut stmts = vec!["begin".to_string()];
    if inc.on_schema_change == OnSchemaChange::SyncAllColumns {
        for n in &plan.removed {
            stmts.push(format!(
                "alter table {relation} drop column {}",
                quote_ident(n)
            ));
        }
        for (n, _, t) in &plan.retyped {
            stmts.push(format!(
                "alter table {relation} alter column {} set data type {t}",
                quote_ident(n)
            ));
        }
    }
    if matches!(
        inc.on_schema_change,
        OnSchemaChange::SyncAllColumns | OnSchemaChange::AppendNewColumns
    ) {
        for (n, t) in &plan.added {
            stmts.push(format!(
                "alter table {relation} add column {} {t}",
                quote_ident(n)
            ));
        }
    }
    let on = |cols: &[String]| -> String {
        cols.iter()
            .map(|k| format!("{relation}.{k} = lf_new.{k}", k = quote_ident(k)))
            .collect::<Vec<_>>()
            .join(" and ")
    };
    match inc.strategy {
        Strategy::Append => {}
        Strategy::Merge | Strategy::DeleteInsert => stmts.push(format!(
            "delete from {relation} using {} as lf_new where {}",
            batch.name,
            on(&inc.unique_key)
        )),
        Strategy::InsertOverwrite => {
            let parts = crate::project::config::as_string_list(c.node.config.get("partition_by"));
            let cols: Vec<String> = parts.iter().map(|p| quote_ident(p)).collect();
            stmts.push(format!(
                "delete from {relation} where ({c}) in (select distinct {c} from {})",
                batch.name,
                c = cols.join(", ")
            ));
        }
    }
    let names: Vec<String> = plan.columns.iter().map(|(n, _)| quote_ident(n)).collect();
    stmts.push(format!(
        "insert into {relation} ({}) select {} from {}",
        names.join(", "),
        plan.select.join(", "),
        batch.name
    ));
    stmts.push("commit".to_string());
    if let Err(e) = c.conn.execute_batch(&stmts.join(";\n")) {
        let _ = c.conn.execute_batch("rollback");
        return Err(e.to_string());
    }
    Ok(Outcome::rows(Some(batch.rows()?)))
}

/// Parquet: the first run writes the whole table as a folder of files; later runs append.
fn parquet(
    c: &Ctx,
    inc: &Incremental,
    ext: &External,
    location: &str,
    append: Option<(&str, &str)>,
    full_sql: &str,
) -> Result<Outcome, String> {
    let new_rows = match append {
        Some((previous, sql)) => Some((previous, new_rows_for_files(c, inc, sql)?)),
        None => None,
    };
    if let Some((previous, (batch, _, _))) = &new_rows
        && batch.rows()? == 0
    {
        // Nothing new: no files, no version; the catalog keeps reading what it reads.
        let current = if crate::location::is_remote(location) {
            previous.to_string()
        } else {
            location.to_string()
        };
        return Ok(Outcome {
            written: Some(current),
            pinned: Some(previous.to_string()),
            ..Outcome::rows(Some(0))
        });
    }
    let staged = c
        .storage
        .stage(location, true, "parquet", c.build_id)
        .map_err(|e| e.to_string())?;
    let result = (|| -> Result<(u64, Option<Vec<String>>), String> {
        let (select, batch, projection) = match new_rows {
            None => (full_sql.to_string(), None, None),
            Some((previous, (batch, plan, select))) => {
                c.storage
                    .carry_over(&staged, previous)
                    .map_err(|e| e.to_string())?;
                let projection = (inc.on_schema_change == OnSchemaChange::SyncAllColumns)
                    .then(|| plan.columns.iter().map(|(n, _)| n.clone()).collect());
                (select, Some(batch), projection)
            }
        };
        if !staged.remote {
            std::fs::create_dir_all(&staged.write_path)
                .map_err(|e| format!("cannot create {}: {e}", staged.write_path))?;
        }
        let tag = format!("b-{}", c.build_id);
        let (path, mut opts) = if ext.partition_by.is_empty() {
            (
                format!("{}/{tag}.parquet", staged.write_path.trim_end_matches('/')),
                vec!["format parquet".to_string()],
            )
        } else {
            let cols: Vec<String> = ext.partition_by.iter().map(|p| quote_ident(p)).collect();
            (
                staged.write_path.clone(),
                vec![
                    "format parquet".to_string(),
                    format!("partition_by ({})", cols.join(", ")),
                    "append true".to_string(),
                    format!(
                        "filename_pattern {}",
                        quote_literal(&format!("{tag}-{{uuid}}"))
                    ),
                ],
            )
        };
        opts.extend(ext.options.iter().map(|(k, v)| format!("{k} {v}")));
        let rows = count_rows(
            c.conn,
            &format!(
                "copy ({select}) to {} ({})",
                quote_literal(&path),
                opts.join(", ")
            ),
        )?;
        drop(batch);
        Ok((rows, projection))
    })();
    let (rows, projection) = match result {
        Ok(r) => r,
        Err(e) => {
            c.storage.abort(&staged);
            return Err(e);
        }
    };
    let view = catalog::folder_view_sql(
        &c.node.relation,
        &staged.view_path,
        !ext.partition_by.is_empty(),
        projection.as_deref(),
    );
    super::materialize::put_in_place(c.conn, c.node, c.storage, staged, &view, rows)
}

/// The run's new rows in a temporary table and how their columns map to the table's (per
/// `on_schema_change`); for `merge`, checked to have one row per key.
fn new_rows<'a>(
    c: &Ctx<'a>,
    inc: &Incremental,
    sql: &str,
) -> Result<(Batch<'a>, SchemaPlan), String> {
    let batch = Batch::create(c.conn, c.node, sql)?;
    let relation = c.node.relation.to_string();
    let plan = plan_schema(
        &columns_of(c.conn, &relation)?,
        &columns_of(c.conn, &batch.name)?,
        inc.on_schema_change,
        &relation,
    )?;
    if inc.strategy == Strategy::Merge {
        check_one_row_per_key(c.conn, &batch.name, &inc.unique_key)?;
    }
    Ok((batch, plan))
}

/// `merge` replaces a key's row by the new one, so the new rows must have one row per key
/// (rows with a null key match nothing and are simply inserted).
fn check_one_row_per_key(conn: &Connection, batch: &str, keys: &[String]) -> Result<(), String> {
    let key_list: Vec<String> = keys.iter().map(|k| quote_ident(k)).collect();
    let text: Vec<String> = key_list.iter().map(|k| format!("{k}::varchar")).collect();
    let not_null: Vec<String> = key_list
        .iter()
        .map(|k| format!("{k} is not null"))
        .collect();
    let sql = format!(
        "select concat_ws(', ', {}), count(*) from {batch} where {} group by {} having count(*) > 1 limit 1",
        text.join(", "),
        not_null.join(" and "),
        key_list.join(", ")
    );
    let dup: Option<(String, i64)> = conn
        .query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
        .ok();
    match dup {
        Some((key, n)) => Err(format!(
            "the new rows have {n} rows for unique_key ({}) = ({key}); merge needs one row per key: deduplicate in the model (e.g. `qualify row_number() over (partition by {} order by ...) = 1`) or use incremental_strategy 'delete+insert'",
            keys.join(", "),
            keys.join(", ")
        )),
        None => Ok(()),
    }
}

/// The new rows of a file table (Parquet or Delta) in a temporary table, how their columns
/// map to the table's, and the SELECT giving them in the table's columns. Files already
/// written cannot change a column's type: that needs a full refresh.
fn new_rows_for_files<'a>(
    c: &Ctx<'a>,
    inc: &Incremental,
    sql: &str,
) -> Result<(Batch<'a>, SchemaPlan, String), String> {
    let (batch, plan) = new_rows(c, inc, sql)?;
    if !plan.retyped.is_empty() && inc.on_schema_change != OnSchemaChange::Ignore {
        return Err(retyped_error(&plan));
    }
    let select = format!("select {} from {}", plan.select.join(", "), batch.name);
    Ok((batch, plan, select))
}

fn retyped_error(plan: &SchemaPlan) -> String {
    let what: Vec<String> = plan
        .retyped
        .iter()
        .map(|(n, a, b)| format!("{n} from {a} to {b}"))
        .collect();
    format!(
        "the new rows change column types ({}), which files already written cannot follow; rebuild with --full-refresh",
        what.join(", ")
    )
}

/// Delta: a full write, or one commit of the new rows by the model's strategy.
fn delta(
    c: &Ctx,
    inc: &Incremental,
    ext: &External,
    location: &str,
    new_sql: Option<&str>,
    full_sql: &str,
) -> Result<Outcome, String> {
    if !crate::location::is_remote(location) {
        std::fs::create_dir_all(location).map_err(|e| format!("cannot create {location}: {e}"))?;
    }
    let table = crate::delta::Table::open(location, c.storage.remote.as_ref())?;
    let sql = match new_sql {
        Some(sql) if table.exists()? => sql,
        _ => {
            return super::materialize::delta_full(
                c.conn, c.node, &table, full_sql, ext, c.build_id,
            );
        }
    };
    catch_up(c, &table)?;
    let (batch, _, select) = new_rows_for_files(c, inc, sql)?;
    let applied = crate::delta::incremental::apply(
        c.conn,
        &table,
        &crate::delta::incremental::NewRows {
            select_sql: &select,
            batch: &batch.name,
            rows: batch.rows()?,
        },
        inc,
        ext,
        c.build_id,
        &c.node.name,
    )?;
    drop(batch);
    let mut outcome = super::materialize::delta_view(c.conn, c.node, &table, &applied.write)?;
    outcome.note = Some(format!(
        "incremental {}: {} files added, {} replaced ({} unchanged rows rewritten)",
        inc.strategy.name(),
        applied.files_added,
        applied.files_removed,
        applied.rows_rewritten
    ));
    Ok(outcome)
}

/// Points the model's view at the table's latest version when it reads an older one: a run
/// killed between a commit and the switch of the view left it behind, and the new rows must
/// be computed against what the table holds (else an append would add that batch again).
fn catch_up(c: &Ctx, table: &crate::delta::Table) -> Result<(), String> {
    let latest = table.snapshot(&crate::delta::AsOf::Latest)?;
    let viewed = recorded_pin(c.conn, c.node)
        .as_deref()
        .and_then(crate::delta::parse_pin)
        .filter(|(loc, _)| loc.trim_end_matches('/') == table.location)
        .map(|(_, v)| v);
    if viewed == Some(latest.version) {
        return Ok(());
    }
    let write = crate::delta::write::ModelWrite {
        rows: 0,
        snapshot: latest,
    };
    super::materialize::delta_view(c.conn, c.node, table, &write).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(spec: &[(&str, &str)]) -> Vec<(String, String)> {
        spec.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn schema_plans_follow_on_schema_change() {
        let table = cols(&[("id", "BIGINT"), ("v", "VARCHAR")]);
        let new = cols(&[("id", "BIGINT"), ("w", "DOUBLE")]);
        let ignore = plan_schema(&table, &new, OnSchemaChange::Ignore, "t").unwrap();
        assert_eq!(
            ignore.select,
            vec!["\"id\"", "cast(null as VARCHAR) as \"v\""]
        );
        assert_eq!(ignore.columns, table);
        let append = plan_schema(&table, &new, OnSchemaChange::AppendNewColumns, "t").unwrap();
        assert_eq!(
            append.columns,
            cols(&[("id", "BIGINT"), ("v", "VARCHAR"), ("w", "DOUBLE")])
        );
        assert_eq!(append.select.last().unwrap(), "\"w\"");
        let sync = plan_schema(&table, &new, OnSchemaChange::SyncAllColumns, "t").unwrap();
        assert_eq!(sync.columns, new);
        assert_eq!(sync.removed, vec!["v"]);
        let err = plan_schema(&table, &new, OnSchemaChange::Fail, "main.t").unwrap_err();
        assert!(err.contains("new column w DOUBLE"), "{err}");
        assert!(err.contains("column v is gone"), "{err}");
        assert!(err.contains("--full-refresh"), "{err}");
        let same = plan_schema(&table, &table, OnSchemaChange::Fail, "t").unwrap();
        assert_eq!(same.select, vec!["\"id\"", "\"v\""]);
    }
}
