//! `lakeflow run-operation MACRO --args '{...}'`: one macro of the project or a package,
//! rendered with a live connection to the catalog, as `dbt run-operation` runs it. What the
//! macro does to the database (`run_query`, `statement`) happens while it renders; its text
//! is returned for the caller to show.

use super::Renderer;
use super::functions::{Scope, Shared};
use super::live::Database;
use crate::error::{Error, Result};
use crate::model::relation::Relation;
use crate::project::{Config, FileKind, Project, SqlFile};
use std::sync::Arc;

pub fn run_operation(
    project: &Project,
    name: &str,
    args: &serde_json::Map<String, serde_json::Value>,
    db: Arc<dyn Database>,
    graph: Option<&serde_json::Value>,
) -> Result<String> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'))
    };
    if !valid(name) || args.keys().any(|k| !valid(k) || k.contains('.')) {
        return Err(Error::new(
            "LF219",
            format!("'{name}' (or one of its argument names) is not a macro name"),
        )
        .hint(
            "name the macro as `my_macro` or `package.my_macro`, and pass --args '{name: value}'",
        ));
    }
    let (env, macros, prefix) = super::macro_environment(project)?;
    let renderer = Renderer {
        env: &env,
        macros: &macros,
        project,
        prefix: &prefix,
    };
    let shared = Arc::new(Shared {
        vars: project.vars.clone(),
        package_vars: Shared::package_vars_of(project),
        ..Shared::default()
    });
    let call_args: Vec<String> = args
        .keys()
        .map(|k| format!("{k}=__lf_args['{k}']"))
        .collect();
    let file = SqlFile {
        name: name.to_string(),
        path: project
            .file
            .strip_prefix(&project.root)
            .unwrap_or(&project.file)
            .to_path_buf(),
        source: format!("{{{{ {name}({}) }}}}", call_args.join(", ")),
        kind: FileKind::Model,
        ..SqlFile::default()
    };
    let graph = graph.map(super::functions::to_value);
    let scope = Scope::live(shared, Config::new(), false, db, None, graph);
    let this = Relation::new(project.target.schema.clone(), name.to_string());
    let extra = [(
        "__lf_args",
        super::functions::to_value(serde_json::Value::Object(args.clone())),
    )];
    renderer
        .render_jinja_with(&file, &scope, this, &Config::new(), &extra)
        .map(|s| s.trim().to_string())
        .map_err(|e| {
            if e.message.contains("is unknown") {
                e.hint(format!(
                    "define `{{% macro {name}(...) %}}` in macros/, or call a package's as package.macro"
                ))
            } else {
                e
            }
        })
}
