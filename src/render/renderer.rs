//! The renderer: one file's Jinja rendered in the project's environment, with the dbt
//! context of that file (`this`, `model`, `execute`, the per-render scope), and the locations
//! of external models (the `external_location` macro or lakeflow's rule).

use super::functions::{self, Pass, SCOPE_VAR, Scope};
use super::macros::MacroSet;
use super::{pysource, seeds};
use crate::error::{Error, Result};
use crate::location;
use crate::model::relation::Relation;
use crate::project::{Config, FileKind, Project, SqlFile, config as cfg};
use minijinja::Environment;
use minijinja::value::Value;
use std::sync::Arc;

/// Renders one file (a model, a seed, a test, a hook, a macro call) in the project's Jinja
/// environment, with the dbt context of that file.
pub(super) struct Renderer<'a> {
    pub env: &'a Environment<'a>,
    pub macros: &'a MacroSet,
    pub project: &'a Project,
    pub prefix: &'a str,
}

impl Renderer<'_> {
    pub(super) fn render_model(
        &self,
        file: &SqlFile,
        scope: &Arc<Scope>,
        this: Relation,
        config: &Config,
    ) -> Result<String> {
        if file.kind == FileKind::Seed {
            return seeds::seed_sql(self.project, file, config);
        }
        if file.is_python() {
            return python_model(file, scope);
        }
        self.render_jinja(file, scope, this, config)
    }

    /// Renders `file.source` as Jinja in the file's context.
    pub(super) fn render_jinja(
        &self,
        file: &SqlFile,
        scope: &Arc<Scope>,
        this: Relation,
        config: &Config,
    ) -> Result<String> {
        self.render_jinja_with(file, scope, this, config, &[])
    }

    /// Renders `file.source` with `extra` variables beside the file's context.
    pub(super) fn render_jinja_with(
        &self,
        file: &SqlFile,
        scope: &Arc<Scope>,
        this: Relation,
        config: &Config,
        extra: &[(&'static str, Value)],
    ) -> Result<String> {
        let source = format!("{}{}", self.prefix, pysource::python_source(&file.source));
        self.render_source(file, &source, scope, this, config, extra)
    }

    /// Renders one macro call (`call`, a Jinja expression) in the file's context, with
    /// `extra` variables beside it.
    pub(super) fn render_call(
        &self,
        file: &SqlFile,
        scope: &Arc<Scope>,
        this: Relation,
        config: &Config,
        extra: &[(&'static str, Value)],
        call: &str,
    ) -> Result<String> {
        let source = format!("{}{{{{ {call} }}}}", self.prefix);
        self.render_source(file, &source, scope, this, config, extra)
    }

    /// Renders `source` (with the macro import in front) as the file, in its context.
    fn render_source(
        &self,
        file: &SqlFile,
        source: &str,
        scope: &Arc<Scope>,
        this: Relation,
        config: &Config,
        extra: &[(&'static str, Value)],
    ) -> Result<String> {
        let ctx = self.context_with(file, scope, this, config, extra);
        self.env
            .template_from_named_str(&file.path.to_string_lossy(), source)
            .and_then(|t| t.render(ctx))
            .map_err(|e| self.error(e, file))
    }

    /// Calls the user's `external_location(relation, config)` macro if there is one.
    pub(super) fn location(
        &self,
        file: &SqlFile,
        scope: &Arc<Scope>,
        rel: &Relation,
        config: &Config,
        ext: &crate::model::materialization::External,
    ) -> Result<String> {
        let target = &self.project.target;
        let loc = if let Some(explicit) = cfg::get_str(config, "location") {
            location::from_config(target, explicit)
        } else if self.macros.has("external_location") {
            let out = self.render_call(
                file,
                scope,
                rel.clone(),
                config,
                &[],
                "external_location(this, config)",
            )?;
            let out = out.trim();
            if out.is_empty() {
                return Err(Error::new(
                    "LF208",
                    format!(
                        "the external_location macro returned nothing for '{}'",
                        file.name
                    ),
                )
                .in_file(&file.path)
                .hint("make the macro `return()` a path in every branch"));
            }
            location::from_config(target, out)
        } else {
            location::default_location(
                self.project.kind,
                target,
                file.folders.first().map(String::as_str),
                &rel.identifier,
                ext,
            )
        };
        let loc = location::normalize(&loc).map_err(|msg| {
            Error::new("LF206", msg).in_file(&file.path).hint(
                "give the model a location without `.`/`..` segments, under its bucket or folder",
            )
        })?;
        // An explicit location is the user's choice (for a dbt project even a relative one,
        // which dbt-duckdb resolves against the working directory).
        if !location::is_inside(&loc, &target.external_root)
            && !cfg::get_str(config, "location").is_some_and(|l| {
                target.dbt_paths || crate::project::paths::is_remote(l) || l.starts_with('/')
            })
            && !self.macros.has("external_location")
        {
            return Err(Error::new(
                "LF206",
                format!(
                    "the location {loc} of '{}' is outside external_root {}",
                    file.name, target.external_root
                ),
            )
            .in_file(&file.path)
            .hint("a relative location or an alias must stay under external_root (no `..` or `/` in it); give an absolute `location` to write elsewhere"));
        }
        location::check_production_guard(target, &loc).map_err(|msg| {
            Error::new("LF206", msg).in_file(&file.path).hint(
                "give this target its own external_root, or set `allow_production_writes: true` on it if that is intended",
            )
        })?;
        Ok(loc)
    }

    /// The file's context with `extra` variables beside `this`, `model` and the scope.
    pub(super) fn context_with(
        &self,
        file: &SqlFile,
        scope: &Arc<Scope>,
        this: Relation,
        config: &Config,
        extra: &[(&'static str, Value)],
    ) -> Value {
        let package = file.package.as_deref().unwrap_or(&self.project.name);
        scope.capture().node_package = file.package.clone();
        let mut fqn = vec![package.to_string()];
        fqn.extend(file.folders.iter().cloned());
        fqn.push(file.name.clone());
        let kind = serde_json::to_value(file.kind).unwrap_or_default();
        let kind = kind.as_str().unwrap_or("model");
        let model = serde_json::json!({
            "name": file.name,
            "alias": this.identifier,
            "schema": this.schema,
            "unique_id": super::unique_id(self.project, file),
            "fqn": fqn,
            "package_name": package,
            "resource_type": kind,
            "original_file_path": file.path,
            "path": file.path,
            "config": config,
        });
        let mut vars = std::collections::BTreeMap::from([
            (SCOPE_VAR, Value::from_dyn_object(scope.clone())),
            ("this", Value::from_object(this)),
            ("model", functions::to_value(model)),
            // dbt's `execute`: false while refs and configs are found, true when the SQL
            // that runs is rendered.
            ("execute", Value::from(scope.pass == Pass::Compile)),
            (
                "graph",
                Value::from_object(super::graph::GraphProxy {
                    scope: scope.clone(),
                }),
            ),
        ]);
        vars.extend(extra.iter().cloned());
        Value::from(vars)
    }
}

/// A Python model (`def model(dbt, session)`): parsing finds what it reads (`dbt.ref(...)`,
/// `dbt.source(...)`) so that it sits in the DAG, and its `dbt.config(key='value', ...)`;
/// it renders to no SQL (the execute phase runs it, `execute/python.rs`).
fn python_model(file: &SqlFile, scope: &Arc<Scope>) -> Result<String> {
    if scope.pass == Pass::Compile {
        return Ok(String::new());
    }
    static CALLS: std::sync::LazyLock<Option<[regex::Regex; 4]>> = std::sync::LazyLock::new(|| {
        let quoted = r#"['"]([^'"]+)['"]"#;
        Some([
            regex::Regex::new(&format!(r"dbt\.ref\(\s*{quoted}(?:\s*,\s*{quoted})?")).ok()?,
            regex::Regex::new(&format!(r"dbt\.source\(\s*{quoted}\s*,\s*{quoted}")).ok()?,
            regex::Regex::new(r"dbt\.config\(([^)]*)\)").ok()?,
            regex::Regex::new(r#"(\w+)\s*=\s*(?:['"]([^'"]*)['"]|(True|False|\d+))"#).ok()?,
        ])
    });
    let Some([refs, sources, configs, pairs]) = CALLS.as_ref() else {
        return Ok(String::new());
    };
    let mut capture = scope.capture();
    for c in refs.captures_iter(&file.source) {
        // `dbt.ref('package', 'model')` names the model last.
        if let Some(name) = c.get(2).or_else(|| c.get(1)) {
            capture.refs.push(name.as_str().to_string());
        }
    }
    for c in sources.captures_iter(&file.source) {
        if let (Some(s), Some(t)) = (c.get(1), c.get(2)) {
            let key = (s.as_str().to_string(), t.as_str().to_string());
            if scope.shared.sources.contains_key(&key) {
                capture.sources.push(key);
            }
        }
    }
    for call in configs.captures_iter(&file.source) {
        for kv in pairs.captures_iter(call.get(1).map_or("", |m| m.as_str())) {
            let value = match (kv.get(2), kv.get(3).map(|m| m.as_str())) {
                (Some(text), _) => serde_json::Value::from(text.as_str()),
                (None, Some("True")) => serde_json::Value::from(true),
                (None, Some("False")) => serde_json::Value::from(false),
                (None, Some(n)) => n
                    .parse::<i64>()
                    .map_or(serde_json::Value::Null, serde_json::Value::from),
                _ => continue,
            };
            capture.config.insert(kv[1].to_string(), value);
        }
    }
    Ok(String::new())
}
