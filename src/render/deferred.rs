//! Nodes rendered when they run: those whose compile pass reached `run_query`, `statement` or
//! an `adapter` call that reads the catalog (see `live.rs`). Rendering keeps what it needs to
//! render them again (the environment, the macros, the project, each node's final config and
//! relation), and the execute phase calls [`Deferred::render`] with the worker's connection,
//! after everything upstream of the node was built.

use super::functions::{Scope, Shared};
use super::hooks::Hooks;
use super::live::Database;
use super::macros::MacroSet;
use super::{Renderer, ephemeral};
use crate::error::Result;
use crate::model::materialization::Materialization;
use crate::model::relation::Relation;
use crate::project::{Config, Project, SqlFile};
use minijinja::Environment;
use std::collections::HashMap;
use std::sync::Arc;

/// What the compiled SQL of a deferred node says until it runs.
pub const PLACEHOLDER: &str = "-- rendered when this node runs: its Jinja queries the database (run_query, statement or adapter)";

/// How to render one deferred node again.
#[derive(Debug, Clone)]
pub(super) struct Recipe {
    pub file: SqlFile,
    pub config: Config,
    pub relation: Relation,
    /// Refs of every variant, for the ephemeral CTEs put in front.
    pub refs: Vec<String>,
    /// An incremental model: its `is_incremental()` variant is rendered too.
    pub incremental: bool,
    /// A model: its hooks are rendered too.
    pub hooks: bool,
}

/// A deferred node rendered with a live connection.
#[derive(Debug, Clone)]
pub struct Fresh {
    pub compiled_sql: String,
    pub incremental_sql: Option<std::result::Result<String, String>>,
    pub hooks: Hooks,
}

pub struct Deferred {
    pub(super) env: Environment<'static>,
    pub(super) macros: MacroSet,
    pub(super) prefix: String,
    pub(super) project: Project,
    pub(super) shared: Arc<Shared>,
    pub(super) materializations: Vec<Materialization>,
    pub(super) bodies: Vec<Option<String>>,
    /// By unique_id.
    pub(super) recipes: HashMap<String, Recipe>,
    /// Each model's refs (as parsed), to follow ephemeral models through one another.
    pub(super) refs_of: Vec<Vec<String>>,
    /// Deferred ephemeral models: (index among the models, recipe).
    pub(super) ephemerals: Vec<(usize, Recipe)>,
    /// The run hooks render when they run ([`Deferred::run_hooks`]): on-run-start ones that
    /// read the database or the graph, on-run-end ones that read the run.
    pub on_run_start: bool,
    pub on_run_end: bool,
    /// dbt's `graph` of the run, set once the run's nodes are known ([`Deferred::set_graph`]).
    pub(super) graph: std::sync::OnceLock<minijinja::Value>,
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred")
            .field("nodes", &self.recipes.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Deferred {
    /// Gives the deferred renders dbt's `graph` (JSON in the manifest's shape).
    pub fn set_graph(&self, graph: &serde_json::Value) {
        let _ = self.graph.set(super::functions::to_value(graph));
    }

    fn renderer(&self) -> Renderer<'_> {
        Renderer {
            env: &self.env,
            macros: &self.macros,
            project: &self.project,
            prefix: &self.prefix,
        }
    }

    /// Renders the node `unique_id` with `db`: its SQL, its incremental variant, its hooks.
    pub fn render(&self, unique_id: &str, db: Arc<dyn Database>) -> Result<Fresh> {
        let Some(recipe) = self.recipes.get(unique_id) else {
            return Err(crate::error::Error::new(
                "LF407",
                format!("'{unique_id}' was not kept for rendering when it runs"),
            ));
        };
        let r = self.renderer();
        let bodies = self.bodies_with_ephemerals(&r, &recipe.refs, &db)?;
        let render = |incremental: bool| -> Result<String> {
            let scope = self.scope(recipe, &db, incremental, Some(&recipe.refs));
            let body = r.render_model(
                &recipe.file,
                &scope,
                recipe.relation.clone(),
                &recipe.config,
            )?;
            Ok(ephemeral::inline_ephemerals(
                &recipe.refs,
                &self.shared.models,
                &self.materializations,
                &bodies,
                &body,
            ))
        };
        let compiled_sql = render(false)?;
        let incremental_sql = recipe
            .incremental
            .then(|| render(true).map_err(|e| e.to_string()));
        // Post-hooks render after the build ([`Deferred::post_hooks`]): their Jinja may read
        // or change what the build made.
        let hooks = Hooks {
            pre: self.hook_list(recipe, &db, "pre")?,
            post: Vec::new(),
        };
        Ok(Fresh {
            compiled_sql,
            incremental_sql,
            hooks,
        })
    }

    /// Renders the on-run-start (`start`) or on-run-end hooks one by one with a live
    /// connection and runs each with `exec`; dbt's `graph`, and `results` (JSON in dbt's
    /// shape) after the run.
    pub fn run_hooks(
        &self,
        start: bool,
        db: Arc<dyn Database>,
        results: Option<&serde_json::Value>,
        exec: &mut dyn FnMut(&str) -> Result<()>,
    ) -> Result<()> {
        let mut extra = Vec::new();
        if let Some(graph) = self.graph.get() {
            extra.push(("graph", graph.clone()));
        }
        if let Some(results) = results {
            extra.push(("results", super::functions::to_value(results)));
        }
        super::hooks::run_live(&self.renderer(), start, db, &extra, exec)
    }

    /// The post-hooks of the deferred node `unique_id`, rendered after it was built.
    pub fn post_hooks(&self, unique_id: &str, db: Arc<dyn Database>) -> Result<Vec<String>> {
        match self.recipes.get(unique_id) {
            Some(recipe) => self.hook_list(recipe, &db, "post"),
            None => Ok(Vec::new()),
        }
    }

    fn hook_list(
        &self,
        recipe: &Recipe,
        db: &Arc<dyn Database>,
        which: &str,
    ) -> Result<Vec<String>> {
        if !recipe.hooks {
            return Ok(Vec::new());
        }
        let scope = self.scope(recipe, db, false, None);
        self.renderer().hook_list(
            &recipe.file,
            &scope,
            &recipe.relation,
            &recipe.config,
            which,
        )
    }

    /// A live scope for `recipe`'s node.
    fn scope(
        &self,
        recipe: &Recipe,
        db: &Arc<dyn Database>,
        incremental: bool,
        known_refs: Option<&[String]>,
    ) -> Arc<Scope> {
        Scope::live(
            self.shared.clone(),
            recipe.config.clone(),
            incremental,
            db.clone(),
            known_refs,
            self.graph.get().cloned(),
        )
    }

    /// The models' bodies with the deferred ephemeral models `refs` reach (directly or
    /// through other ephemerals) rendered live.
    fn bodies_with_ephemerals(
        &self,
        r: &Renderer,
        refs: &[String],
        db: &Arc<dyn Database>,
    ) -> Result<Vec<Option<String>>> {
        let mut bodies = self.bodies.clone();
        let reached = ephemeral::reached(
            refs,
            &self.shared.models,
            &self.materializations,
            &self.refs_of,
        );
        for (i, recipe) in &self.ephemerals {
            if !reached.contains(i) {
                continue;
            }
            let scope = self.scope(recipe, db, false, None);
            bodies[*i] = Some(r.render_model(
                &recipe.file,
                &scope,
                recipe.relation.clone(),
                &recipe.config,
            )?);
        }
        Ok(bodies)
    }
}
