//! `materialized: external`: the model's rows written as files of its `format` at its
//! location, and a catalog view over them. The write is staged and committed by the model's
//! table format (`format.rs`); the view switches to the new version only once it is committed.

use super::format::Target;
use super::materialize::{Ctx, Materialize, Outcome};
use crate::error::Result;
use crate::model::materialization;

pub struct External<'a> {
    pub config: &'a materialization::External,
}

impl Materialize for External<'_> {
    fn run(&self, c: &Ctx) -> Result<Outcome> {
        let target = Target {
            c,
            ext: self.config,
            location: c.location("external")?,
        };
        super::table_format(self.config.format).write(&target, c.sql())
    }
}
