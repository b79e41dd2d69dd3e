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

/// The `on-run-start` (`pre`) and `on-run-end` (`post`) hooks of the project and its
/// packages, rendered with their macros, `var`, `env_var` and `target` (no model: `this` is
/// the target schema). Rendered in the environment the nodes rendered in (one
/// `invocation_id`, one `run_started_at` per run). On-run-end hooks that read `results` or
/// `graph`, or query the database, are rendered after the run instead ([`on_run_end`]); the
/// flag says so.
pub(super) fn project_hooks(renderer: &Renderer) -> Result<RunHooks> {
    let start = run_hooks(renderer.project, Which::Start);
    let end = run_hooks(renderer.project, Which::End);
    let mut out = RunHooks::default();
    // A hook that queries the database (or reads the graph) while rendering is rendered when
    // it runs, as are on-run-end hooks that read `results` or `graph`.
    match render_project_hooks(renderer, &start, None, &[]) {
        Ok(pre) => out.hooks.pre = pre,
        Err(e) if e.message.contains(super::live::DEFERRED) => out.start_live = true,
        Err(e) => return Err(e),
    }
    let reads_run = end.iter().any(|h| {
        super::macros::mentions(&h.source, "results") || super::macros::mentions(&h.source, "graph")
    });
    if reads_run {
        out.end_live = true;
        return Ok(out);
    }
    match render_project_hooks(renderer, &end, None, &[]) {
        Ok(post) => out.hooks.post = post,
        Err(e) if e.message.contains(super::live::DEFERRED) => out.end_live = true,
        Err(e) => return Err(e),
    }
    Ok(out)
}

/// The run hooks rendered up front, and which of the two lists render when they run instead.
#[derive(Debug, Default)]
pub(super) struct RunHooks {
    pub hooks: Hooks,
    pub start_live: bool,
    pub end_live: bool,
}

/// Renders each on-run-start (`start`) or on-run-end hook with a live connection and hands
/// it to `exec` before the next renders (so a hook sees what the ones before it did), with
/// `extra` (dbt's `graph`, and `results` after the run) in its context.
pub(super) fn run_live(
    renderer: &Renderer,
    start: bool,
    db: Arc<dyn super::live::Database>,
    extra: &[(&'static str, Value)],
    exec: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<()> {
    let which = if start { Which::Start } else { Which::End };
    let shared = hook_shared(renderer.project);
    for file in run_hooks(renderer.project, which) {
        let sql = render_hook(renderer, &shared, &file, Some(&db), extra)?;
        if !sql.is_empty() {
            exec(&sql)?;
        }
    }
    Ok(())
}

/// The project or package each on-run-start (`start`) or on-run-end hook belongs to, in the
/// order they run.
pub fn hook_owners(project: &crate::project::Project, start: bool) -> Vec<String> {
    let which = if start { Which::Start } else { Which::End };
    run_hooks(project, which)
        .into_iter()
        .map(|f| f.package.unwrap_or_else(|| project.name.clone()))
        .collect()
}

#[derive(Clone, Copy)]
enum Which {
    Start,
    End,
}

/// The run hooks in dbt's order: the project's, then the packages' (by package name), each
/// as a file of the project or package it comes from.
fn run_hooks(project: &crate::project::Project, which: Which) -> Vec<SqlFile> {
    let mut packages: Vec<&crate::project::packages::Package> = project.packages.iter().collect();
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    let file_of = |path: &std::path::Path, package: Option<&str>, source: &String| SqlFile {
        name: match which {
            Which::Start => "on-run-start",
            Which::End => "on-run-end",
        }
        .to_string(),
        path: path.to_path_buf(),
        source: source.clone(),
        kind: FileKind::Model,
        package: package.map(str::to_string),
        ..SqlFile::default()
    };
    let rel = project
        .file
        .strip_prefix(&project.root)
        .unwrap_or(&project.file)
        .to_path_buf();
    let own = match which {
        Which::Start => &project.on_run_start,
        Which::End => &project.on_run_end,
    };
    let mut out: Vec<SqlFile> = own.iter().map(|h| file_of(&rel, None, h)).collect();
    for p in packages {
        let hooks = match which {
            Which::Start => &p.on_run_start,
            Which::End => &p.on_run_end,
        };
        let path = p.root.join("dbt_project.yml");
        out.extend(hooks.iter().map(|h| file_of(&path, Some(&p.name), h)));
    }
    out
}

fn render_project_hooks(
    renderer: &Renderer,
    hooks: &[SqlFile],
    db: Option<&Arc<dyn super::live::Database>>,
    extra: &[(&'static str, Value)],
) -> Result<Vec<String>> {
    let shared = hook_shared(renderer.project);
    hooks
        .iter()
        .map(|file| render_hook(renderer, &shared, file, db, extra))
        .filter(|r| r.as_ref().map_or(true, |s| !s.is_empty()))
        .collect()
}

/// What run hooks render with: the project's vars and each package's.
fn hook_shared(project: &crate::project::Project) -> Arc<Shared> {
    Arc::new(Shared {
        vars: project.vars.clone(),
        package_vars: Shared::package_vars_of(project),
        ..Shared::default()
    })
}

/// One run hook rendered (trimmed); a render that needs the database and has none is the
/// DEFERRED error.
fn render_hook(
    renderer: &Renderer,
    shared: &Arc<Shared>,
    file: &SqlFile,
    db: Option<&Arc<dyn super::live::Database>>,
    extra: &[(&'static str, Value)],
) -> Result<String> {
    let graph = extra
        .iter()
        .find(|(k, _)| *k == "graph")
        .map(|(_, v)| v.clone());
    let scope = match db {
        Some(db) => Scope::live(
            shared.clone(),
            Config::new(),
            false,
            db.clone(),
            None,
            graph,
        ),
        None => Scope::new(shared.clone(), Pass::Compile, Config::new()),
    };
    let this = Relation::new(renderer.project.target.schema.clone(), "on_run");
    let out = renderer
        .render_jinja_with(file, &scope, this, &Config::new(), extra)
        .map(|s| s.trim().to_string());
    if scope.deferred() {
        return Err(crate::error::Error::new(
            "LF202",
            format!("{}: {}", file.name, super::live::DEFERRED),
        ));
    }
    out
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
