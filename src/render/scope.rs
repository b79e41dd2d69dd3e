//! The per-render scope: what every render of one run shares ([`Shared`]), what one render
//! saw ([`Capture`]), and the [`Scope`] object templates reach through [`SCOPE_VAR`].

use crate::model::relation::Relation;
use crate::project::Config;
use minijinja::value::{Object, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Name of the per-render scope in the Jinja context.
pub const SCOPE_VAR: &str = "__lakeflow_scope";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// First pass: refs are recorded, not resolved; `config()` calls are captured.
    Parse,
    /// Second pass: refs resolve to relations of the final configs.
    Compile,
}

/// What a `ref()` resolves to in the compile pass.
#[derive(Debug, Clone)]
pub enum RefTarget {
    Relation(Relation),
    /// Inlined as a CTE with this name.
    Ephemeral(String),
}

/// Data shared by every render of one run.
#[derive(Debug, Default, Clone)]
pub struct Shared {
    pub vars: std::collections::BTreeMap<String, serde_json::Value>,
    /// The vars the nodes of each installed package see, by package.
    pub package_vars: HashMap<String, std::collections::BTreeMap<String, serde_json::Value>>,
    pub models: HashMap<String, usize>,
    pub ref_targets: Vec<RefTarget>,
    /// (source, table) -> SQL to put after FROM.
    pub sources: HashMap<(String, String), String>,
    /// Versioned models by name: the latest version's file name, and each version's.
    pub versions: HashMap<String, (String, HashMap<String, String>)>,
    /// `--empty`: refs and sources read no rows.
    pub empty: bool,
    /// Each model's `event_time` config (by model index), and each source table's: what a
    /// microbatch model's batches filter these inputs on.
    pub event_times: Vec<Option<String>>,
    pub source_event_times: HashMap<(String, String), String>,
    /// `--defer`: models whose refs read another target's relation (database, schema, name).
    pub deferred_refs: HashMap<String, (String, String, String)>,
}

impl Shared {
    /// The vars each installed package's nodes see, by package.
    pub fn package_vars_of(
        project: &crate::project::Project,
    ) -> HashMap<String, std::collections::BTreeMap<String, serde_json::Value>> {
        project
            .packages
            .iter()
            .map(|p| (p.name.clone(), p.vars.clone()))
            .collect()
    }

    /// The file name `ref(name)` (with `v=`/`version=`, if given) reaches: a versioned
    /// model's latest or asked-for version, else `name` itself.
    pub(super) fn versioned(&self, name: &str, version: Option<&str>) -> String {
        match (self.versions.get(name), version) {
            (Some((_, by_v)), Some(v)) => by_v.get(v).cloned().unwrap_or_else(|| name.to_string()),
            (Some((latest, _)), None) => latest.clone(),
            (None, _) => name.to_string(),
        }
    }
}

/// What one render saw: the dbt calls made while rendering a node.
#[derive(Debug, Default)]
pub struct Capture {
    pub refs: Vec<String>,
    pub sources: Vec<(String, String)>,
    pub config: Config,
    /// One slot per active macro call; `return()` fills the innermost one.
    pub(super) returns: Vec<Option<Value>>,
    /// A database call was reached without a connection (the node renders again when it
    /// runs).
    pub needs_db: bool,
    /// What `statement(name)` blocks kept, for `load_result(name)`.
    pub results: HashMap<String, Value>,
    /// The package of each macro being run, innermost last (none: the project's).
    pub(super) packages: Vec<Option<String>>,
    /// The installed package the rendered node belongs to (none: the project's).
    pub(super) node_package: Option<String>,
}

#[derive(Debug)]
pub struct Scope {
    pub shared: Arc<Shared>,
    pub pass: Pass,
    /// Config known before this render (folders, schema.yml; in the compile pass, final).
    pub config: Config,
    pub capture: Mutex<Capture>,
    /// What `is_incremental()` says: true only when rendering an incremental model's
    /// incremental variant.
    pub incremental: bool,
    /// The live connection of an execution-time render.
    pub db: Option<Arc<dyn super::agate::Database>>,
    /// In a render when the node runs: the refs the DAG ordered it after, the only ones
    /// `ref()` may make then.
    pub known_refs: Option<Vec<String>>,
    /// dbt's `graph` of the run, in a render when the node runs.
    pub graph: Option<Value>,
    /// A unit test's render: what `ref()`/`source()` read instead (fixture CTE names, keyed
    /// `name` or `source.table`), and the vars it overrides.
    pub fixtures: Option<Fixtures>,
}

/// What a unit test's render reads instead of the model's inputs.
#[derive(Debug, Default, Clone)]
pub struct Fixtures {
    pub inputs: HashMap<String, String>,
    pub vars: std::collections::BTreeMap<String, serde_json::Value>,
    /// Macros that return a fixed value instead (`name` or `package.name`).
    pub macros: HashMap<String, serde_json::Value>,
    /// Environment variables `env_var()` reads instead.
    pub env_vars: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Object for Scope {}

impl Scope {
    /// Whether the node rendered is a microbatch model (its inputs with an `event_time` read
    /// only the batch's window).
    pub fn microbatch(&self) -> bool {
        self.fixtures.is_none()
            && crate::project::config::get_str(&self.config, "materialized") == Some("incremental")
            && crate::project::config::get_str(&self.config, "incremental_strategy")
                == Some("microbatch")
    }

    /// A scope with nothing but its pass and config: the shape every constructor starts from.
    fn plain(shared: Arc<Shared>, pass: Pass, config: Config) -> Scope {
        Scope {
            shared,
            pass,
            config,
            capture: Mutex::new(Capture::default()),
            incremental: false,
            db: None,
            known_refs: None,
            graph: None,
            fixtures: None,
        }
    }

    pub fn new(shared: Arc<Shared>, pass: Pass, config: Config) -> Arc<Scope> {
        Arc::new(Scope::plain(shared, pass, config))
    }

    /// A compile-pass scope in which `is_incremental()` is true.
    pub fn incremental(shared: Arc<Shared>, config: Config) -> Arc<Scope> {
        Arc::new(Scope {
            incremental: true,
            ..Scope::plain(shared, Pass::Compile, config)
        })
    }

    /// A compile-pass scope with a live connection, rendered just before the node runs;
    /// `ref()` is limited to `known_refs` when given.
    pub fn live(
        shared: Arc<Shared>,
        config: Config,
        incremental: bool,
        db: Arc<dyn super::agate::Database>,
        known_refs: Option<&[String]>,
        graph: Option<Value>,
    ) -> Arc<Scope> {
        Arc::new(Scope {
            incremental,
            db: Some(db),
            known_refs: known_refs.map(<[String]>::to_vec),
            graph,
            ..Scope::plain(shared, Pass::Compile, config)
        })
    }

    /// A compile-pass scope of a unit test: `ref()`/`source()` read `fixtures`, and
    /// `is_incremental()` says `incremental`.
    pub fn unit_test(
        shared: Arc<Shared>,
        config: Config,
        incremental: bool,
        fixtures: Fixtures,
    ) -> Arc<Scope> {
        Arc::new(Scope {
            incremental,
            fixtures: Some(fixtures),
            ..Scope::plain(shared, Pass::Compile, config)
        })
    }

    pub(super) fn capture(&self) -> std::sync::MutexGuard<'_, Capture> {
        self.capture.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn take_capture(&self) -> Capture {
        std::mem::take(&mut *self.capture())
    }

    /// The config visible to `config.get()`: what was known before, plus `config()` calls.
    pub(super) fn current_config(&self, key: &str) -> Option<serde_json::Value> {
        self.capture()
            .config
            .get(key)
            .or_else(|| self.config.get(key))
            .cloned()
    }
}
