//! Seeds: a CSV file under `seed-paths` loaded into a table of the catalog. Render made the
//! node's SQL the CSV reader's query, so a seed is built as a table is.

use super::materialize::{Ctx, Materialize, Outcome};
use crate::error::Result;

pub struct Seed;

impl Materialize for Seed {
    fn run(&self, c: &Ctx) -> Result<Outcome> {
        super::table::Table.run(c)
    }
}
