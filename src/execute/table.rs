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
