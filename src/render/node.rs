//! A node after rendering: what the later phases (graph, select, execute, report) read.

use super::{PythonInputs, TestInfo, hooks};
use crate::model::materialization::Materialization;
use crate::model::relation::Relation;
use crate::project::{Config, FileKind};
use std::path::PathBuf;

/// A model after rendering: everything later phases need, nothing they must recompute.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Node {
    pub unique_id: String,
    /// Model or seed (`resource_type` in dbt's artifacts).
    pub kind: FileKind,
    pub name: String,
    pub fqn: Vec<String>,
    pub path: PathBuf,
    pub layer: Option<String>,
    pub tags: Vec<String>,
    pub config: Config,
    pub materialization: Materialization,
    pub relation: Relation,
    pub location: Option<String>,
    /// Names of the models this one refs, in first-use order.
    pub refs: Vec<String>,
    pub sources: Vec<(String, String)>,
    pub raw_sql: String,
    pub compiled_sql: String,
    /// dbt's sha256 of the file's stripped text (a seed: the CSV; `path` for a seed over
    /// 1 MiB; empty for a generic test), for `state:modified`.
    pub checksum: String,
    /// The config keys set for the node, as dbt's `unrendered_config` (what
    /// `state:modified.configs` compares).
    #[serde(skip)]
    pub unrendered_config: Config,
    /// A data test's declaration.
    pub test: Option<TestInfo>,
    /// SQL run before and after the model is built (`pre-hook`, `post-hook`).
    pub hooks: hooks::Hooks,
    /// An incremental model's SQL with `is_incremental()` true (its new rows), or why it
    /// does not compile (reported only if an incremental run needs it).
    pub incremental_sql: Option<std::result::Result<String, String>>,
    /// Why this node cannot run, found while compiling it (as dbt's per-node "Compilation
    /// Error"): the node is reported as an error and what depends on it is skipped, while the
    /// rest of the project runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A Python model: what it reads, for the execute phase that runs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub python: Option<PythonInputs>,
    /// Its Jinja reads the database: `compiled_sql`, `incremental_sql` and `hooks` are
    /// rendered again, by [`deferred::Deferred::render`], just before it runs.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deferred: bool,
    /// A version of a versioned model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<crate::project::ModelVersion>,
    /// An enforced contract (`contract: {enforced: true}`): the columns and types the
    /// model's query must have, from its schema file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract: Option<Vec<(String, String)>>,
    /// The contract's constraints, as the column list of the table's `create table`.
    #[serde(skip)]
    pub constraints: Option<String>,
}

impl Node {
    pub fn is_ephemeral(&self) -> bool {
        self.materialization == Materialization::Ephemeral
    }

    pub fn is_test(&self) -> bool {
        self.kind == FileKind::Test
    }

    pub fn is_delta(&self) -> bool {
        self.materialization
            .external()
            .is_some_and(|e| e.format == crate::model::materialization::FileFormat::Delta)
    }
}
