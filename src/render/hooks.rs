//! dbt's `pre-hook` / `post-hook` configs: SQL run right before and after a model is built,
//! rendered with the model's context (`this`, `config`, macros), in the order the configs
//! merged them (project file, then schema file, then `config()` in the model).

use super::Renderer;
use super::functions::{Pass, Scope, Shared};
use crate::error::Result;
use crate::model::relation::Relation;
use crate::project::{Config, FileKind, SqlFile};
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
/// `run_started_at` per run).
pub(super) fn project_hooks(renderer: &Renderer) -> Result<Hooks> {
    let project = renderer.project;
    if project.on_run_start.is_empty() && project.on_run_end.is_empty() {
        return Ok(Hooks::default());
    }
    let shared = Arc::new(Shared {
        vars: project.vars.clone(),
        ..Shared::default()
    });
    let this = Relation::new(project.target.schema.clone(), "on_run");
    let rel = project
        .file
        .strip_prefix(&project.root)
        .unwrap_or(&project.file)
        .to_path_buf();
    let render = |hooks: &[String], name: &str| -> Result<Vec<String>> {
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
                };
                let scope = Scope::new(shared.clone(), Pass::Compile, Config::new());
                renderer
                    .render_jinja(&file, &scope, this.clone(), &Config::new())
                    .map(|s| s.trim().to_string())
            })
            .filter(|r| r.as_ref().map_or(true, |s| !s.is_empty()))
            .collect()
    };
    Ok(Hooks {
        pre: render(&project.on_run_start, "on-run-start")?,
        post: render(&project.on_run_end, "on-run-end")?,
    })
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
