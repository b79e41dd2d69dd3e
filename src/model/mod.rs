//! The shared vocabulary every phase speaks, below all of them: relations and SQL quoting,
//! materializations and file formats, the SQL templates, build ids and clock helpers.
//! Nothing here imports a phase.

pub mod clock;
pub mod config;
pub mod materialization;
pub mod microbatch;
pub mod relation;
pub mod snapshot;
pub mod templates;
pub mod unit_test;

/// The catalog schema of lakeflow's state tables (`catalog::state`); no model may be built
/// into it.
pub const STATE_SCHEMA: &str = "_lakeflow";
