//! `materialized: table`: a table inside the catalog, rebuilt from the model's query.

use super::materialize::{Ctx, Materialize, Outcome, count_rows, replacing};
use crate::error::Result;
use crate::model::templates;

pub struct Table;

impl Materialize for Table {
    fn run(&self, c: &Ctx) -> Result<Outcome> {
        Ok(Outcome::rows(Some(create(c, c.sql())?)))
    }
}

/// Makes the node's relation a table of the rows of `sql` (replacing a view of that name);
/// returns how many rows it holds.
pub fn create(c: &Ctx, sql: &str) -> Result<u64> {
    if let Some(columns) = &c.node.constraints {
        return with_constraints(c, sql, columns);
    }
    let stmt = templates::render(
        "table",
        &[
            ("relation", c.node.relation.to_string()),
            ("sql", sql.to_string()),
        ],
    );
    replacing(c.conn, &c.node.relation, "table", || {
        count_rows(c.conn, &stmt)
    })
}

/// An enforced contract with constraints: the table is created with its declared columns
/// and constraints, then filled, so DuckDB checks every row (a violation fails the model and
/// leaves the table as it was).
fn with_constraints(c: &Ctx, sql: &str, columns: &str) -> Result<u64> {
    let relation = c.node.relation.to_string();
    replacing(c.conn, &c.node.relation, "table", || {
        c.conn
            .execute_batch(&format!("create or replace table {relation} {columns}"))
            .map_err(super::materialize::sql_error)?;
        let names: Vec<String> = c
            .node
            .contract
            .iter()
            .flatten()
            .filter(|(_, t)| !t.is_empty())
            .map(|(n, _)| crate::model::relation::quote_ident(n))
            .collect();
        let n = c
            .conn
            .execute(
                &format!(
                    "insert into {relation} ({cols}) select {cols} from (\n{sql}\n) as model_subq",
                    cols = names.join(", ")
                ),
                [],
            )
            .map_err(super::materialize::sql_error)?;
        Ok(n as u64)
    })
}
