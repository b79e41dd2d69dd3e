//! `materialized: ephemeral`: nothing to build. Ephemeral models are inlined as CTEs into the
//! models that use them and are taken out of the plan before it runs; this is here so that
//! every materialization has its implementation.

use super::materialize::{Ctx, Materialize, Outcome};
use crate::error::Result;

pub struct Ephemeral;

impl Materialize for Ephemeral {
    fn run(&self, _: &Ctx) -> Result<Outcome> {
        Ok(Outcome::rows(None))
    }
}
