//! lakeflow as a library: the phases of a run, each in its own module, imports flowing one way.
//!
//! ```text
//!  commands/   one file per command; build reads like the list below
//!  cli         the command line (clap)
//!  example_data  the example project and its generated data
//!  serve       `lakeflow serve`: the latest replica over HTTP, read-only, behind tokens
//!  query       `lakeflow query`: read-only SQL on the catalog or a replica
//!  report/     progress lines, the summary, artifacts under target/
//!  publish     read replicas of the catalog, put in place atomically
//!  execute/    runs the selected nodes in DAG order: one file per materialization
//!  catalog/    the catalog file: lock, session, views, the `_lakeflow` state tables
//!  select      dbt's selector syntax over the DAG
//!  graph       the DAG of nodes (petgraph)
//!  render/     Jinja -> nodes (compiled SQL, configs, relations, locations); no I/O
//!  location    where an external model's files go
//!  delta/      the Delta table format: log, snapshots, commits, maintenance, Delta sources
//!  storage/    files on local disk / NAS and S3: staging, versions, garbage collection
//!  project/    load: lakeflow.yml or dbt_project.yml + profiles.yml, SQL and YAML files
//!  model/      the vocabulary every phase speaks: relations, materializations, templates, clock
//!  redact      the one masking point for secrets; every printed line goes through it
//!  error       the one error type and its code table
//! ```
//!
//! A module may import only modules below it in [`LAYERS`]; `tests/architecture.rs` reads
//! `src/` and fails on an import that points up, or on an import cycle between files of one
//! module longer than a pair.

/// The modules from the bottom layer to the top: each may use only those before it.
pub const LAYERS: &[&str] = &[
    "error",
    "redact",
    "http",
    "model",
    "project",
    "storage",
    "delta",
    "location",
    "render",
    "graph",
    "state",
    "select",
    "catalog",
    "execute",
    "publish",
    "report",
    "query",
    "serve",
    "example_data",
    "cli",
    "commands",
];

pub mod catalog;
pub mod cli;
pub mod commands;
pub mod delta;
pub mod error;
pub mod example_data;
pub mod execute;
pub mod graph;
pub mod http;
pub mod location;
pub mod model;
pub mod project;
pub mod publish;
pub mod query;
pub mod redact;
pub mod render;
pub mod report;
pub mod select;
pub mod serve;
pub mod state;
pub mod storage;
