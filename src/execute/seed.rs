//! Seeds: a CSV file under `seed-paths` loaded into a table of the catalog. Render made the
//! node's SQL the CSV reader's query, so a seed is built as a table is; a column with no
//! value in any row becomes INTEGER, as dbt's type inference makes it (DuckDB's reader would
//! say VARCHAR), unless `column_types` names it.

use super::materialize::{Ctx, Materialize, Outcome, count_rows, replacing, sql_error};
use crate::error::Result;
use crate::model::relation::quote_ident;
use crate::model::templates;

pub struct Seed;

impl Materialize for Seed {
    fn run(&self, c: &Ctx) -> Result<Outcome> {
        let relation = &c.node.relation;
        let stmt = templates::render(
            "table",
            &[
                ("relation", relation.to_string()),
                ("sql", c.sql().to_string()),
            ],
        );
        let rows = replacing(c.conn, relation, "table", || {
            let rows = count_rows(c.conn, &stmt)?;
            type_empty_columns(c)?;
            Ok(rows)
        })?;
        Ok(Outcome::rows(Some(rows)))
    }
}

fn type_empty_columns(c: &Ctx) -> Result<()> {
    let relation = &c.node.relation;
    let typed = c
        .node
        .config
        .get("column_types")
        .and_then(|t| t.as_object());
    let mut stmt = c
        .conn
        .prepare(
            "select column_name from information_schema.columns
             where table_catalog = current_database() and table_schema = ?1 and table_name = ?2
               and data_type = 'VARCHAR' order by ordinal_position",
        )
        .map_err(sql_error)?;
    let names: Vec<String> = stmt
        .query_map([&relation.schema, &relation.identifier], |r| r.get(0))
        .map_err(sql_error)?
        .collect::<std::result::Result<_, _>>()
        .map_err(sql_error)?;
    for name in names {
        if typed.is_some_and(|t| t.contains_key(&name)) {
            continue;
        }
        let column = quote_ident(&name);
        let values: i64 = c
            .conn
            .query_row(
                &format!("select count({column}) from {relation}"),
                [],
                |r| r.get(0),
            )
            .map_err(sql_error)?;
        if values == 0 {
            c.conn
                .execute_batch(&format!(
                    "alter table {relation} alter column {column} type integer"
                ))
                .map_err(sql_error)?;
        }
    }
    Ok(())
}
