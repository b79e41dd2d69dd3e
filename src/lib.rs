//! lakeflow as a library: the phases of a run, each in its own module.
//!
//! load (`project`) -> render -> graph -> select -> execute -> publish (`catalog`) -> report

pub mod catalog;
pub mod cli;
pub mod commands;
pub mod delta;
pub mod error;
pub mod example_data;
pub mod execute;
pub mod graph;
pub mod location;
pub mod model;
pub mod project;
pub mod publish;
pub mod query;
pub mod redact;
pub mod render;
pub mod report;
pub mod select;
pub mod storage;
