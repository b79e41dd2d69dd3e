//! `materialized: incremental`. The first run (and `--full-refresh`) builds the whole table;
//! later runs compute only the model's `is_incremental()` rows into a temporary table and merge
//! them in:
//! - a table inside the catalog (here): one transaction of DELETE/INSERT (and ALTER for new
//!   columns);
//! - files at the model's location: by the model's table format (`format.rs`), which commits
//!   the new rows as one new version.
//!
//! Whatever fails, the table stays as it was: nothing is committed before everything is
//! written.

use super::format::Target;
use super::materialize::{Ctx, Materialize, Outcome, explain_remote, failed, relation_kind};
use super::new_rows::new_rows;
use crate::error::Result;
use crate::model::materialization::{self, OnSchemaChange, Strategy};
use crate::model::relation::quote_ident;

pub struct Incremental<'a> {
    pub config: &'a materialization::Incremental,
}

impl Materialize for Incremental<'_> {
    fn run(&self, c: &Ctx) -> Result<Outcome> {
        let location = c.node.location.as_deref().unwrap_or_default();
        self.build(c)
            .map_err(|e| explain_remote(c.storage, location, e))
    }
}

impl Incremental<'_> {
    fn build(&self, c: &Ctx) -> Result<Outcome> {
        let inc = self.config;
        let full_sql = c.sql();
        let existing = relation_kind(c.conn, &c.node.relation)?;
        // `full_refresh: false` keeps the table through `--full-refresh`, as in dbt.
        let full_refresh = c.full_refresh && inc.full_refresh != Some(false);
        let new_sql = match &c.node.incremental_sql {
            Some(Ok(sql)) => Some(crate::render::strip_statement_end(sql)),
            Some(Err(e)) if !full_refresh && existing.is_some() => {
                return Err(failed(format!(
                    "the model's is_incremental() branch does not compile:\n{e}"
                )));
            }
            _ => None,
        };
        // Files are added to only where the catalog already reads them through a view; a
        // catalog table only where it is a table.
        let built = match &inc.external {
            None => existing.as_deref() == Some("table"),
            Some(_) => existing.as_deref() == Some("view"),
        };
        let incremental = built && !full_refresh;
        if let Some(mb) = &inc.microbatch {
            return super::microbatch::run(c, inc, mb, new_sql.filter(|_| incremental), full_sql);
        }
        write(c, inc, new_sql.filter(|_| incremental), full_sql)
    }
}

/// One incremental write: `new_sql`'s rows merged in by the strategy, or, without it, the
/// whole table from `full_sql`.
pub fn write(
    c: &Ctx,
    inc: &materialization::Incremental,
    new_sql: Option<&str>,
    full_sql: &str,
) -> Result<Outcome> {
    match &inc.external {
        None => match new_sql {
            Some(sql) => catalog_table(c, inc, sql),
            None => Ok(Outcome::rows(Some(super::table::create(c, full_sql)?))),
        },
        Some(ext) => {
            let target = Target {
                c,
                ext,
                location: c.location("incremental")?,
            };
            super::table_format(ext.format).write_incremental(&target, inc, new_sql, full_sql)
        }
    }
}

/// A table inside the catalog: schema changes, deletes and inserts in one transaction.
fn catalog_table(c: &Ctx, inc: &materialization::Incremental, sql: &str) -> Result<Outcome> {
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
    let names: Vec<String> = plan.columns.iter().map(|(n, _)| quote_ident(n)).collect();
    let preds = inc.predicate_sql();
    let matched = |cols: &[String]| -> String {
        cols.iter()
            .map(|k| format!("{relation}.{k} = lf_new.{k}", k = quote_ident(k)))
            .collect::<Vec<_>>()
            .join(" and ")
    };
    match inc.strategy {
        Strategy::Append => {}
        Strategy::Merge => {
            // dbt-duckdb's MERGE: a matched row takes the new row's columns (all, or
            // `merge_update_columns` / all but `merge_exclude_columns`), others are inserted.
            let on: Vec<String> = inc
                .unique_key
                .iter()
                .map(|k| {
                    format!(
                        "DBT_INTERNAL_SOURCE.{k} = DBT_INTERNAL_DEST.{k}",
                        k = quote_ident(k)
                    )
                })
                .chain(inc.predicates.iter().map(|p| format!("({p})")))
                .collect();
            let updated: Vec<String> = inc
                .update_columns(plan.columns.iter().map(|(n, _)| n))
                .iter()
                .map(|n| format!("{n} = DBT_INTERNAL_SOURCE.{n}", n = quote_ident(n)))
                .collect();
            let when_matched = if updated.is_empty() {
                String::new()
            } else {
                format!("when matched then update set {} ", updated.join(", "))
            };
            let values: Vec<String> = names
                .iter()
                .map(|n| format!("DBT_INTERNAL_SOURCE.{n}"))
                .collect();
            stmts.push(format!(
                "merge into {relation} as DBT_INTERNAL_DEST using (select {} from {}) as DBT_INTERNAL_SOURCE on ({}) {when_matched}when not matched then insert ({}) values ({})",
                plan.select.join(", "),
                batch.name,
                on.join(" and "),
                names.join(", "),
                values.join(", ")
            ));
            stmts.push("commit".to_string());
            return run(c, &stmts, &batch);
        }
        Strategy::DeleteInsert => stmts.push(format!(
            "delete from {relation} where exists (select 1 from {} as lf_new where {}){preds}",
            batch.name,
            matched(&inc.unique_key)
        )),
        Strategy::InsertOverwrite => {
            let parts = crate::project::config::as_string_list(c.node.config.get("partition_by"));
            let cols: Vec<String> = parts.iter().map(|p| quote_ident(p)).collect();
            stmts.push(format!(
                "delete from {relation} where ({c}) in (select distinct {c} from {}){preds}",
                batch.name,
                c = cols.join(", ")
            ));
        }
        // The batch's window is the first predicate.
        Strategy::Microbatch => {
            stmts.push(format!("delete from {relation} where true{preds}"));
        }
    }
    stmts.push(format!(
        "insert into {relation} ({}) select {} from {}",
        names.join(", "),
        plan.select.join(", "),
        batch.name
    ));
    stmts.push("commit".to_string());
    run(c, &stmts, &batch)
}

/// Runs one incremental transaction; rolls it back when a statement fails.
fn run(c: &Ctx, stmts: &[String], batch: &super::new_rows::Batch) -> Result<Outcome> {
    if let Err(e) = c.conn.execute_batch(&stmts.join(";\n")) {
        let _ = c.conn.execute_batch("rollback");
        return Err(failed(e.to_string()));
    }
    Ok(Outcome::rows(Some(batch.rows()?)))
}
