//! dbt's `pre-hook` / `post-hook` configs: SQL run right before and after a model is built,
//! rendered with the model's context (`this`, `config`, macros), in the order the configs
//! merged them (project file, then schema file, then `config()` in the model).

use super::Renderer;
use super::functions::{Pass, Scope, Shared};
use crate::error::Result;
use crate::model::relation::Relation;
use crate::project::{Config, FileKind, SqlFile};
use minijinja::value::Value;
use std::sync::Arc;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Hooks {
    pub pre: Vec<String>,
    pub post: Vec<String>,
}

impl Hooks {
    pub fn is_empty(&self) -> bool {
        self.pre.is_empty() && self.post.is_empty()
    }
}

/// The hook templates under both spellings (`pre-hook` in YAML, `pre_hook` in `config()`):
/// a string, a list of strings, or `{sql: ..., transaction: ...}` items.
fn templates(config: &Config, which: &str) -> Vec<String> {
    let mut out = Vec::new();
    for key in [format!("{which}-hook"), format!("{which}_hook")] {
        match config.get(&key) {
            Some(serde_json::Value::Array(items)) => out.extend(items.iter().filter_map(sql_of)),
            Some(v) => out.extend(sql_of(v)),
            None => {}
        }
    }
    out
}

fn sql_of(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(m) => m.get("sql").and_then(|s| s.as_str()).map(str::to_string),
        _ => None,
    }
}

impl Renderer<'_> {
    pub(super) fn hooks(
        &self,
        file: &SqlFile,
        scope: &Arc<Scope>,
        this: &Relation,
        config: &Config,
    ) -> Result<Hooks> {
        Ok(Hooks {
            pre: self.hook_list(file, scope, this, config, "pre")?,
            post: self.hook_list(file, scope, this, config, "post")?,
        })
    }

    /// The model's `pre` or `post` hooks, rendered (empty ones left out).
    pub(super) fn hook_list(
        &self,
        file: &SqlFile,
        scope: &Arc<Scope>,
        this: &Relation,
        config: &Config,
        which: &str,
    ) -> Result<Vec<String>> {
        templates(config, which)
            .into_iter()
            .map(|source| {
                let hook = SqlFile {
                    source,
                    ..file.clone()
                };
                self.render_jinja(&hook, scope, this.clone(), config)
                    .map(|s| s.trim().to_string())
            })
            .filter(|r| r.as_ref().map_or(true, |s| !s.is_empty()))
            .collect()
    }
}

/// The project's `on-run-start` (`pre`) and `on-run-end` (`post`) hooks, rendered with the
/// project's macros, `var`, `env_var` and `target` (no model: `this` is the target schema).
/// Rendered in the environment the nodes rendered in (one `invocation_id`, one
/// `run_started_at` per run). On-run-end hooks that read `results` or `graph`, or query the
/// database, are rendered after the run instead ([`on_run_end`]); the flag says so.
pub(super) fn project_hooks(renderer: &Renderer) -> Result<(Hooks, bool)> {
    let project = renderer.project;
    if project.on_run_start.is_empty() && project.on_run_end.is_empty() {
        return Ok((Hooks::default(), false));
    }
    let pre = render_project_hooks(renderer, &project.on_run_start, "on-run-start", None, &[])?;
    let reads_run = project
        .on_run_end
        .iter()
        .any(|h| super::macros::mentions(h, "results") || super::macros::mentions(h, "graph"));
    if reads_run {
        return Ok((
            Hooks {
                pre,
                post: Vec::new(),
            },
            true,
        ));
    }
    // One that queries the database while rendering is rendered after the run too.
    match render_project_hooks(renderer, &project.on_run_end, "on-run-end", None, &[]) {
        Ok(post) => Ok((Hooks { pre, post }, false)),
        Err(e) if e.message.contains(super::live::DEFERRED) => Ok((
            Hooks {
                pre,
                post: Vec::new(),
            },
            true,
        )),
        Err(e) => Err(e),
    }
}

/// The on-run-end hooks rendered after the run, with `results` and `graph` and a live
/// connection.
pub(super) fn on_run_end(
    renderer: &Renderer,
    db: Arc<dyn super::live::Database>,
    graph: Value,
    results: Value,
) -> Result<Vec<String>> {
    render_project_hooks(
        renderer,
        &renderer.project.on_run_end,
        "on-run-end",
        Some(db),
        &[("graph", graph), ("results", results)],
    )
}

fn render_project_hooks(
    renderer: &Renderer,
    hooks: &[String],
    name: &str,
    db: Option<Arc<dyn super::live::Database>>,
    extra: &[(&'static str, Value)],
) -> Result<Vec<String>> {
    let project = renderer.project;
    let shared = Arc::new(Shared {
        vars: project.vars.clone(),
        ..Shared::default()
    });
    let graph = extra
        .iter()
        .find(|(k, _)| *k == "graph")
        .map(|(_, v)| v.clone());
    let this = Relation::new(project.target.schema.clone(), "on_run");
    let rel = project
        .file
        .strip_prefix(&project.root)
        .unwrap_or(&project.file)
        .to_path_buf();
    hooks
        .iter()
        .map(|source| {
            let file = SqlFile {
                name: name.to_string(),
                path: rel.clone(),
                folders: Vec::new(),
                source: source.clone(),
                kind: FileKind::Model,
                checksum: String::new(),
                package: None,
            };
            let scope = match &db {
                Some(db) => Scope::live(
                    shared.clone(),
                    Config::new(),
                    false,
                    db.clone(),
                    None,
                    graph.clone(),
                ),
                None => Scope::new(shared.clone(), Pass::Compile, Config::new()),
            };
            renderer
                .render_jinja_with(&file, &scope, this.clone(), &Config::new(), extra)
                .map(|s| s.trim().to_string())
        })
        .filter(|r| r.as_ref().map_or(true, |s| !s.is_empty()))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_every_hook_spelling() {
        let config: crate::project::Config = serde_json::from_str(
            r#"{"pre-hook": "a", "pre_hook": ["b", {"sql": "c", "transaction": false}], "post-hook": ["d"]}"#,
        )
        .unwrap();
        assert_eq!(super::templates(&config, "pre"), vec!["a", "b", "c"]);
        assert_eq!(super::templates(&config, "post"), vec!["d"]);
    }
}
