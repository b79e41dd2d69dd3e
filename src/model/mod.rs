//! The shared vocabulary every phase speaks, below all of them: relations and SQL quoting.
//! Nothing here imports a phase.

pub mod relation;
