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
    /// Whether the project or a package overrides any naming macro (else the fixed rule
    /// applies).
    pub(super) fn names_nodes(&self) -> bool {
        overridden(self.macros)
    }

    /// The naming macro `name` that names `file`'s node, as a call: a package's own override
    /// for the package's nodes (as dbt), else the project's; none if neither overrides it.
    fn naming_macro(&self, file: &SqlFile, name: &str) -> Option<String> {
        if let Some(p) = file.package.as_deref()
            && self.macros.internal(Some(p), name).is_some()
        {
            return Some(format!("{p}.{name}"));
        }
        self.macros.has(name).then(|| name.to_string())
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
        if let Some(call) = self.naming_macro(file, "generate_database_name") {
            let database = self.call(file, scope, config, &relation, &call, "database")?;
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
        if let Some(call) = self.naming_macro(file, "generate_schema_name") {
            relation.schema = self.call(file, scope, config, &relation, &call, "schema")?;
        }
        if let Some(call) = self.naming_macro(file, "generate_alias_name") {
            relation.identifier = self.call(file, scope, config, &relation, &call, "alias")?;
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

/// Whether the project or an installed package defines one of dbt's naming macros.
pub(super) fn overridden(macros: &super::macros::MacroSet) -> bool {
    macros.all().any(|(_, name, _)| OVERRIDES.contains(&name))
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
