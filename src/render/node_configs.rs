//! A node's configs as dbt resolves them (folder configs of the project or its package, the
//! schema file, the project's overrides of a package), its relation, and the name space of
//! enabled models and seeds; and a node's config with dbt's defaults, as artifacts show it.

use super::Node;
use crate::error::{Error, Result};
use crate::model::relation::Relation;
use crate::project::{Config, FileKind, Project, ProjectKind, SqlFile, config as cfg};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Folder configs (most specific wins), then `schema.yml`. A package's node takes its own
/// project file's folder configs.
pub(super) fn base_config(project: &Project, file: &SqlFile) -> Config {
    let mut path = file.folders.clone();
    path.push(file.name.clone());
    let yaml = match file.kind {
        FileKind::Model => &project.schema.models,
        FileKind::Seed => &project.schema.seeds,
        FileKind::Snapshot => &project.schema.snapshots,
        FileKind::Test => return folder_config(project, file.kind, file.package.as_deref(), &path),
    };
    let mut c = folder_config(project, file.kind, file.package.as_deref(), &path);
    // A version of a versioned model takes its model's entry.
    let yml_name = file.version.as_ref().map_or(&file.name, |v| &v.model);
    if let Some(y) = yaml.get(yml_name) {
        cfg::merge_into(&mut c, &y.config);
    }
    c
}

/// The folder configs of a node at `path` (folders, then its name) of `package` (none: the
/// project's): the project's tree, or the package's own.
pub(super) fn folder_config(
    project: &Project,
    kind: FileKind,
    package: Option<&str>,
    path: &[String],
) -> Config {
    let (tree, path) = folder_tree(project, kind, package, path);
    tree.resolve(&path)
}

/// The config tree a node's folder configs come from, and its path in it.
fn folder_tree<'a>(
    project: &'a Project,
    kind: FileKind,
    package: Option<&str>,
    path: &[String],
) -> (&'a crate::project::config::ConfigTree, Vec<String>) {
    let Some(p) = package.and_then(|n| project.packages.iter().find(|p| p.name == n)) else {
        let tree = match kind {
            FileKind::Model => &project.model_configs,
            FileKind::Seed => &project.seed_configs,
            FileKind::Test => &project.test_configs,
            FileKind::Snapshot => &project.snapshot_configs,
        };
        return (tree, path.to_vec());
    };
    let tree = match kind {
        FileKind::Model => &p.trees.models,
        FileKind::Seed => &p.trees.seeds,
        FileKind::Test => &p.trees.tests,
        FileKind::Snapshot => &p.trees.snapshots,
    };
    (tree, fqn_of(&p.name, path))
}

/// dbt's `unrendered_config` of a node: the keys set for it (the project file's along its
/// folders, its schema file's `config:`, its `config()` call, the project's settings for a
/// package's node), each source replacing a key whole. `state:modified.configs` compares it.
pub(super) fn unrendered(project: &Project, file: &SqlFile, captured: &Config) -> Config {
    let mut path = file.folders.clone();
    path.push(file.name.clone());
    let (tree, at) = folder_tree(project, file.kind, file.package.as_deref(), &path);
    let mut out = tree.resolve_shallow(&at);
    let yaml = match file.kind {
        FileKind::Model => project
            .schema
            .models
            .get(file.version.as_ref().map_or(&file.name, |v| &v.model)),
        FileKind::Seed => project.schema.seeds.get(&file.name),
        FileKind::Snapshot => project.schema.snapshots.get(&file.name),
        FileKind::Test => None,
    };
    if let Some(y) = yaml {
        out.extend(y.config.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    out.extend(captured.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(over) = project_override(project, file.kind, file.package.as_deref(), &path) {
        out.extend(over);
    }
    out
}

/// What the project file sets for a package's node (`models: <package>: ...`): it wins over
/// everything the package says, its `config()` calls included, as in dbt.
pub(super) fn project_override(
    project: &Project,
    kind: FileKind,
    package: Option<&str>,
    path: &[String],
) -> Option<Config> {
    let package = package?;
    let trees = &project.package_configs;
    let tree = match kind {
        FileKind::Model => &trees.models,
        FileKind::Seed => &trees.seeds,
        FileKind::Test => &trees.tests,
        FileKind::Snapshot => &trees.snapshots,
    };
    Some(tree.resolve(&fqn_of(package, path))).filter(|c| !c.is_empty())
}

fn fqn_of(package: &str, path: &[String]) -> Vec<String> {
    std::iter::once(package.to_string())
        .chain(path.iter().cloned())
        .collect()
}

/// The catalog relation of a model. lakeflow: `schema` config, else the layer, else the
/// target schema. dbt: dbt's rule, `{target.schema}_{schema}` or the target schema.
pub(super) fn relation_for(project: &Project, file: &SqlFile, config: &Config) -> Relation {
    let identifier = cfg::get_str(config, "alias")
        .unwrap_or(&file.name)
        .to_string();
    // A snapshot's legacy `target_schema` is used as it is (dbt does not rename it).
    if file.kind == FileKind::Snapshot
        && let Some(schema) = cfg::get_str(config, "target_schema")
    {
        return Relation::new(schema.to_string(), identifier);
    }
    let custom = cfg::get_str(config, "schema");
    let schema = match project.kind {
        ProjectKind::Lakeflow => custom
            .map(str::to_string)
            .or_else(|| file.folders.first().cloned())
            .unwrap_or_else(|| project.target.schema.clone()),
        ProjectKind::Dbt => match custom {
            Some(c) => format!("{}_{}", project.target.schema, c.trim()),
            None => project.target.schema.clone(),
        },
    };
    Relation::new(schema, identifier)
}

/// Model and seed names are one name space, as in dbt, among enabled nodes: a disabled
/// node may share its name (a package's seed the project replaces, say); two enabled ones
/// may not. By name, the enabled node's index (else the first's).
pub(super) fn enabled_names(
    files: &[&SqlFile],
    enabled: &[bool],
) -> Result<HashMap<String, usize>> {
    let mut out: HashMap<String, usize> = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        match out.get(&f.name) {
            Some(&j) if enabled[j] && enabled[i] => {
                return Err(Error::new(
                    "LF104",
                    format!(
                        "two models or seeds are named '{}': {} and {}",
                        f.name,
                        files[j].path.display(),
                        f.path.display()
                    ),
                )
                .in_file(&f.path)
                .hint("model and seed names must be unique across the project and its packages; rename one file or disable one (`enabled: false`)"));
            }
            Some(&j) if enabled[j] || !enabled[i] => {}
            _ => {
                out.insert(f.name.clone(), i);
            }
        }
    }
    Ok(out)
}

/// The columns an enforced contract asks of a model (`contract: {enforced: true}` and the
/// `data_type` of each column in its schema file).
pub(super) fn contract(
    project: &Project,
    file: &SqlFile,
    config: &Config,
) -> Option<Vec<(String, String)>> {
    let enforced = config
        .get("contract")
        .and_then(|c| c.get("enforced"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !enforced || file.kind != FileKind::Model {
        return None;
    }
    let name = file.version.as_ref().map_or(&file.name, |v| &v.model);
    let entry = &project.schema.models.get(name)?.entry;
    let columns = entry.get("columns")?.as_array()?;
    Some(
        columns
            .iter()
            .filter_map(|c| {
                Some((
                    c.get("name")?.as_str()?.to_string(),
                    c.get("data_type")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                ))
            })
            .collect(),
    )
}

/// An enforced contract's constraints as the column list of a `create table` (dbt-duckdb
/// creates the table empty, then inserts): each column with its declared type and its
/// `not_null`, `unique`, `primary_key`, `check`, `foreign_key` (`expression: "t (id)"`) or
/// `custom` constraints, then the model's own (`constraints:` with `columns`). None when
/// the model has no constraint to enforce.
pub(super) fn constraints(project: &Project, file: &SqlFile, config: &Config) -> Option<String> {
    contract(project, file, config)?;
    let name = file.version.as_ref().map_or(&file.name, |v| &v.model);
    let entry = &project.schema.models.get(name)?.entry;
    let one = |c: &Value, columns: Option<&str>| -> Option<String> {
        let expr = c
            .get("expression")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let on = columns.map(|cols| format!(" ({cols})")).unwrap_or_default();
        Some(match c.get("type")?.as_str()? {
            "not_null" if columns.is_none() => "not null".to_string(),
            "unique" => format!("unique{on}"),
            "primary_key" => format!("primary key{on}"),
            "check" => format!("check ({expr})"),
            "foreign_key" if !expr.is_empty() => match columns {
                Some(cols) => format!("foreign key ({cols}) references {expr}"),
                None => format!("references {expr}"),
            },
            "custom" if !expr.is_empty() => expr.to_string(),
            _ => return None,
        })
    };
    let mut any = false;
    let mut parts: Vec<String> = Vec::new();
    for col in entry.get("columns")?.as_array()? {
        let (Some(n), Some(t)) = (
            col.get("name").and_then(Value::as_str),
            col.get("data_type").and_then(Value::as_str),
        ) else {
            continue;
        };
        let mut def = format!("{} {t}", crate::model::relation::quote_ident(n));
        for c in col
            .get("constraints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(sql) = one(c, None) {
                def.push(' ');
                def.push_str(&sql);
                any = true;
            }
        }
        parts.push(def);
    }
    for c in entry
        .get("constraints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let cols: Vec<String> = c
            .get("columns")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(crate::model::relation::quote_ident)
            .collect();
        let cols = (!cols.is_empty()).then(|| cols.join(", "));
        if let Some(sql) = one(c, cols.as_deref()) {
            parts.push(sql);
            any = true;
        }
    }
    any.then(|| format!("(\n    {}\n)", parts.join(",\n    ")))
}

impl Node {
    /// Its config with dbt's defaults under what the project set (the manifest's and
    /// `graph`'s `config`, and what `state:modified` compares).
    pub fn dbt_config(&self) -> Value {
        let mut c = match self.kind {
            FileKind::Model | FileKind::Seed | FileKind::Snapshot => json!({
                "enabled": true, "alias": null, "schema": null, "database": null, "tags": [],
                "meta": {}, "group": null, "persist_docs": {}, "post-hook": [], "pre-hook": [],
                "quoting": {}, "column_types": {}, "full_refresh": null, "unique_key": null,
                "on_schema_change": "ignore", "on_configuration_change": "apply", "grants": {},
                "packages": [], "docs": {"show": true, "node_color": null},
                "contract": {"enforced": false, "alias_types": true}, "event_time": null,
                "incremental_strategy": null, "batch_size": null, "lookback": 1, "begin": null,
                "concurrent_batches": null, "access": "protected",
            }),
            FileKind::Test => json!({
                "enabled": true, "alias": null, "schema": "dbt_test__audit", "database": null,
                "tags": [], "meta": {}, "group": null, "severity": "ERROR",
                "store_failures": null, "store_failures_as": null, "where": null,
                "limit": null, "fail_calc": "count(*)", "warn_if": "!= 0", "error_if": "!= 0",
            }),
        };
        if let Value::Object(map) = &mut c {
            for (k, v) in &self.config {
                map.insert(k.clone(), v.clone());
            }
            let materialized = match self.kind {
                FileKind::Seed => "seed",
                FileKind::Test => "test",
                FileKind::Snapshot => "snapshot",
                FileKind::Model if self.path.extension().is_some_and(|e| e == "py") => "table",
                FileKind::Model => "view",
            };
            map.entry("materialized")
                .or_insert_with(|| Value::from(materialized));
            map.insert("tags".into(), Value::from(self.tags.clone()));
        }
        c
    }
}

/// Versioned models by name: the latest version's file, and each version's.
pub(super) fn versions_of(
    files: &[&SqlFile],
) -> HashMap<String, (String, HashMap<String, String>)> {
    let mut out: HashMap<String, (String, HashMap<String, String>)> = HashMap::new();
    for f in files {
        if let Some(v) = &f.version {
            let entry = out.entry(v.model.clone()).or_default();
            entry.1.insert(v.v.clone(), f.name.clone());
            if v.v == v.latest {
                entry.0 = f.name.clone();
            }
        }
    }
    out
}

/// A model's or seed's unique_id (`model.<project>.<name>`; a version's
/// `model.<project>.<model>.v<v>`).
pub(super) fn unique_id(project: &Project, file: &SqlFile) -> String {
    format!(
        "{}.{}.{}",
        match file.kind {
            FileKind::Model => "model",
            FileKind::Seed => "seed",
            FileKind::Test => "test",
            FileKind::Snapshot => "snapshot",
        },
        file.package.as_deref().unwrap_or(&project.name),
        match &file.version {
            Some(v) => format!("{}.v{}", v.model, v.v),
            None => file.name.clone(),
        }
    )
}
