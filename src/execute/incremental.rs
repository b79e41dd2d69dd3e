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
        let new_sql = match &c.node.incremental_sql {
            Some(Ok(sql)) => Some(crate::render::strip_statement_end(sql)),
            Some(Err(e)) if !c.full_refresh && existing.is_some() => {
                return Err(failed(format!(
                    "the model's is_incremental() branch does not compile:\n{e}"
                )));
            }
            _ => None,
        };
        match &inc.external {
            None => {
                let incremental = !c.full_refresh && existing.as_deref() == Some("table");
                match new_sql.filter(|_| incremental) {
                    Some(sql) => catalog_table(c, inc, sql),
                    None => Ok(Outcome::rows(Some(super::table::create(c, full_sql)?))),
                }
            }
            Some(ext) => {
                let target = Target {
                    c,
                    ext,
                    location: c.location("incremental")?,
                };
                // Files are added to only where the catalog already reads them through a view.
                let as_view = existing.as_deref() == Some("view") && !c.full_refresh;
                super::table_format(ext.format).write_incremental(
                    &target,
                    inc,
                    new_sql.filter(|_| as_view),
                    full_sql,
                )
            }
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
        return Err(failed(e.to_string()));
    }
    Ok(Outcome::rows(Some(batch.rows()?)))
}
