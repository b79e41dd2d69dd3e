//! The new rows of an incremental run: computed once into a temporary table ([`Batch`]),
//! checked (one row per key for `merge`), and mapped onto the table's columns by the model's
//! `on_schema_change` ([`SchemaPlan`]). Every table kind merges them from here: the catalog
//! table (`incremental.rs`) and the file formats (`files_format.rs`, `delta_format.rs`).

use super::materialize::{Ctx, failed, sql_error};
use crate::error::Result;
use crate::model::materialization::{Incremental, OnSchemaChange, Strategy};
use crate::model::relation::quote_ident;
use crate::render::Node;
use duckdb::Connection;

/// A temporary table of the run's new rows, dropped when this goes out of scope.
pub struct Batch<'a> {
    conn: &'a Connection,
    /// The temporary table's name, quoted.
    pub name: String,
}

impl<'a> Batch<'a> {
    fn create(conn: &'a Connection, node: &Node, sql: &str) -> Result<Batch<'a>> {
        let name = quote_ident(&format!("lf_new_rows_{}", node.name));
        conn.execute_batch(&format!(
            "create or replace temp table {name} as select * from ({sql}) as lf_new"
        ))
        .map_err(sql_error)?;
        Ok(Batch { conn, name })
    }

    pub fn rows(&self) -> Result<u64> {
        self.conn
            .query_row(&format!("select count(*) from {}", self.name), [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as u64)
            .map_err(sql_error)
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
fn columns_of(conn: &Connection, relation: &str) -> Result<Vec<(String, String)>> {
    let mut stmt = conn
        .prepare(&format!("describe {relation}"))
        .map_err(sql_error)?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql_error)?
        .collect::<Result<_, _>>()
        .map_err(sql_error)
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
) -> Result<SchemaPlan> {
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
            return Err(failed(format!(
                "on_schema_change is 'fail' and the new rows' columns differ from {relation}: {}; rebuild with --full-refresh, or set on_schema_change to ignore, append_new_columns or sync_all_columns",
                what.join("; ")
            )));
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

/// The run's new rows in a temporary table and how their columns map to the table's (per
/// `on_schema_change`); for `merge`, checked to have one row per key.
pub fn new_rows<'a>(c: &Ctx<'a>, inc: &Incremental, sql: &str) -> Result<(Batch<'a>, SchemaPlan)> {
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
fn check_one_row_per_key(conn: &Connection, batch: &str, keys: &[String]) -> Result<()> {
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
        Some((key, n)) => Err(failed(format!(
            "the new rows have {n} rows for unique_key ({}) = ({key}); merge needs one row per key: deduplicate in the model (e.g. `qualify row_number() over (partition by {} order by ...) = 1`) or use incremental_strategy 'delete+insert'",
            keys.join(", "),
            keys.join(", ")
        ))),
        None => Ok(()),
    }
}

/// The new rows of a table of files (any table format) in a temporary table, how their columns
/// map to the table's, and the SELECT giving them in the table's columns. Files already
/// written cannot change a column's type: that needs a full refresh.
pub fn new_rows_for_files<'a>(
    c: &Ctx<'a>,
    inc: &Incremental,
    sql: &str,
) -> Result<(Batch<'a>, SchemaPlan, String)> {
    let (batch, plan) = new_rows(c, inc, sql)?;
    if !plan.retyped.is_empty() && inc.on_schema_change != OnSchemaChange::Ignore {
        return Err(retyped_error(&plan));
    }
    let select = format!("select {} from {}", plan.select.join(", "), batch.name);
    Ok((batch, plan, select))
}

fn retyped_error(plan: &SchemaPlan) -> crate::error::Error {
    let what: Vec<String> = plan
        .retyped
        .iter()
        .map(|(n, a, b)| format!("{n} from {a} to {b}"))
        .collect();
    failed(format!(
        "the new rows change column types ({}), which files already written cannot follow; rebuild with --full-refresh",
        what.join(", ")
    ))
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
        assert_eq!(err.code, "LF407");
        assert!(err.message.contains("new column w DOUBLE"), "{err}");
        assert!(err.message.contains("column v is gone"), "{err}");
        assert!(err.message.contains("--full-refresh"), "{err}");
        let same = plan_schema(&table, &table, OnSchemaChange::Fail, "t").unwrap();
        assert_eq!(same.select, vec!["\"id\"", "\"v\""]);
    }
}
