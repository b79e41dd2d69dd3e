//! dbt's naming hooks: a project that defines `generate_schema_name`, `generate_alias_name` or
//! `generate_database_name` decides where each model and seed lands, as in dbt. They are
//! called once per enabled node, after its final config is known, with the custom value from
//! the config (`schema`, `alias`, `database`; none when unset) and the node.

use super::{Renderer, Scope};
use crate::error::{Error, Result};
use crate::model::config::{self as cfg, Config};
use crate::model::relation::Relation;
use crate::project::SqlFile;
use minijinja::Value;
use std::sync::Arc;

/// The naming macros a project may override.
pub const OVERRIDES: [&str; 3] = [
    "generate_schema_name",
    "generate_alias_name",
    "generate_database_name",
];

impl Renderer<'_> {
    /// Whether the project overrides any naming macro (else the fixed rule applies).
    pub(super) fn names_nodes(&self) -> bool {
        OVERRIDES.iter().any(|m| self.macros.has(m))
    }

    /// The node's relation through the project's naming macros; `fallback` is the relation
    /// by the fixed rule, used for what the project does not override.
    pub(super) fn named_relation(
        &self,
        file: &SqlFile,
        scope: &Arc<Scope>,
        config: &Config,
        fallback: Relation,
    ) -> Result<Relation> {
        let mut relation = fallback;
        if self.macros.has("generate_database_name") {
            let database = self.call(
                file,
                scope,
                config,
                &relation,
                "generate_database_name",
                "database",
            )?;
            let catalog = catalog_name(&self.project.target.catalog);
            if !database.eq_ignore_ascii_case(&catalog) {
                return Err(Error::new(
                    "LF217",
                    format!(
                        "generate_database_name puts '{}' in the database '{database}', but lakeflow builds into the catalog '{catalog}' only",
                        file.name
                    ),
                )
                .in_file(&file.path)
                .hint("return target.database for this node from generate_database_name, or build it with its own target"));
            }
        }
        if self.macros.has("generate_schema_name") {
            relation.schema = self.call(
                file,
                scope,
                config,
                &relation,
                "generate_schema_name",
                "schema",
            )?;
        }
        if self.macros.has("generate_alias_name") {
            relation.identifier = self.call(
                file,
                scope,
                config,
                &relation,
                "generate_alias_name",
                "alias",
            )?;
        }
        Ok(relation)
    }

    /// Renders `{{ name(custom, node) }}` in the node's context and returns the trimmed text.
    fn call(
        &self,
        file: &SqlFile,
        scope: &Arc<Scope>,
        config: &Config,
        relation: &Relation,
        name: &str,
        key: &str,
    ) -> Result<String> {
        let custom = match cfg::get_str(config, key) {
            Some(v) => Value::from(v),
            None => Value::from(()),
        };
        let out = self.render_call(
            file,
            scope,
            relation.clone(),
            config,
            &[("__lf_custom", custom)],
            &format!("{name}(__lf_custom, model)"),
        )?;
        let out = out.trim();
        if out.is_empty() {
            return Err(Error::new(
                "LF218",
                format!("the {name} macro returned nothing for '{}'", file.name),
            )
            .in_file(&file.path)
            .hint(format!("make {name} return a name in every branch")));
        }
        Ok(out.to_string())
    }
}

/// The catalog's database name as DuckDB (and dbt-duckdb's `target.database`) calls it: the
/// file's stem, `memory` for an in-memory catalog.
pub fn catalog_name(catalog: &str) -> String {
    if catalog == ":memory:" {
        return "memory".to_string();
    }
    std::path::Path::new(catalog)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "memory".to_string())
}
