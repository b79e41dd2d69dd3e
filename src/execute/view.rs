//! `materialized: view`: a view in the catalog over the model's query.

use super::materialize::{Ctx, Materialize, Outcome, replacing, sql_error};
use crate::error::Result;
use crate::model::templates;

pub struct View;

impl Materialize for View {
    fn run(&self, c: &Ctx) -> Result<Outcome> {
        let stmt = templates::render(
            "view",
            &[
                ("relation", c.node.relation.to_string()),
                ("sql", c.sql().to_string()),
            ],
        );
        replacing(c.conn, &c.node.relation, "view", || {
            c.conn.execute_batch(&stmt).map_err(sql_error)
        })?;
        Ok(Outcome::rows(None))
    }
}
