//! Nodes and sources in the shape dbt's manifest and Jinja `graph` give them: every key dbt
//! always sets, with dbt's defaults where the project sets nothing, so packages that read
//! the graph (dbt_artifacts, dbt_project_evaluator) find what they look for. What only
//! lakeflow has sits under `config.lakeflow` (the one place dbt's schema leaves open).

use crate::project::{FileKind, Project, SourceTable};
use crate::render::Node;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Unique ids by model/seed name and by (source, table), for `depends_on`.
pub struct Ids<'a> {
    models: HashMap<&'a str, &'a str>,
    sources: HashMap<(&'a str, &'a str), String>,
    /// The project's and packages' macros, for `depends_on.macros`.
    pub macros: super::manifest::MacroIndex,
    pub macro_blocks: Vec<super::manifest::MacroBlock>,
}

impl<'a> Ids<'a> {
    pub fn new(project: &'a Project, nodes: &'a [Node]) -> Ids<'a> {
        let macro_blocks = super::manifest::macro_blocks(project);
        Ids {
            macros: super::manifest::MacroIndex::new(&macro_blocks, &project.name),
            macro_blocks,
            models: nodes
                .iter()
                .filter(|n| !n.is_test())
                .map(|n| (n.name.as_str(), n.unique_id.as_str()))
                .collect(),
            sources: project
                .schema
                .sources
                .iter()
                .map(|s| {
                    (
                        (s.source_name.as_str(), s.name.as_str()),
                        source_id(project, s),
                    )
                })
                .collect(),
        }
    }

    pub fn model(&self, name: &str) -> Option<&'a str> {
        self.models.get(name).copied()
    }

    /// `depends_on.nodes` as dbt lists them: sources first, then models, each once.
    fn depends_on(&self, refs: &[String], sources: &[(String, String)]) -> Vec<String> {
        let mut out: Vec<String> = sources
            .iter()
            .filter_map(|(s, t)| self.sources.get(&(s.as_str(), t.as_str())).cloned())
            .collect();
        for id in refs.iter().filter_map(|r| self.model(r)) {
            if !out.iter().any(|o| o == id) {
                out.push(id.to_string());
            }
        }
        out
    }
}

/// A source table's unique_id: `source.<package>.<source>.<table>`.
pub fn source_id(project: &Project, s: &SourceTable) -> String {
    let package = s.package.as_deref().unwrap_or(&project.name);
    format!("source.{package}.{}.{}", s.source_name, s.name)
}

/// What dbt keeps only on models: contract, access, constraints, versions, time spine.
fn model_keys(config: &Value, entry: &Value) -> Map<String, Value> {
    let contract = config.get("contract");
    let flag = |key: &str, default: bool| {
        contract
            .and_then(|c| c.get(key))
            .and_then(Value::as_bool)
            .unwrap_or(default)
    };
    let time_spine = match entry.get("time_spine") {
        Some(Value::Object(t)) => json!({
            "standard_granularity_column": t.get("standard_granularity_column").cloned().unwrap_or(Value::Null),
            "custom_granularities": t.get("custom_granularities").cloned().unwrap_or_else(|| json!([])),
        }),
        _ => Value::Null,
    };
    let field = |key: &str| entry.get(key).cloned().unwrap_or(Value::Null);
    let mut out = Map::new();
    out.insert(
        "contract".into(),
        json!({"enforced": flag("enforced", false), "alias_types": flag("alias_types", true), "checksum": null}),
    );
    out.insert(
        "access".into(),
        entry
            .get("access")
            .or_else(|| config.get("access"))
            .cloned()
            .unwrap_or_else(|| json!("protected")),
    );
    out.insert(
        "constraints".into(),
        entry
            .get("constraints")
            .cloned()
            .unwrap_or_else(|| json!([])),
    );
    out.insert("version".into(), Value::Null);
    out.insert("latest_version".into(), field("latest_version"));
    out.insert("deprecation_date".into(), field("deprecation_date"));
    out.insert("primary_key".into(), json!([]));
    out.insert("time_spine".into(), time_spine);
    out
}

/// The columns of a schema-file entry with what dbt keeps of each: `data_type`,
/// `constraints`, `meta`, `tags`, `quote`, `granularity`.
fn columns_of(cols: &[(String, String)], entry: &Value) -> Map<String, Value> {
    let mut out = columns(cols);
    let Some(Value::Array(items)) = entry.get("columns") else {
        return out;
    };
    for item in items {
        let Some(name) = item.get("name").and_then(Value::as_str) else {
            continue;
        };
        let Some(Value::Object(col)) = out.get_mut(name) else {
            continue;
        };
        for key in [
            "data_type",
            "constraints",
            "meta",
            "tags",
            "quote",
            "granularity",
        ] {
            if let Some(v) = item.get(key) {
                col.insert(key.to_string(), v.clone());
            }
        }
    }
    out
}

fn columns(cols: &[(String, String)]) -> Map<String, Value> {
    cols.iter()
        .map(|(c, d)| {
            (
                c.clone(),
                json!({
                    "name": c, "description": d, "meta": {}, "data_type": null,
                    "constraints": [], "quote": null, "tags": [], "granularity": null,
                    "config": {"meta": {}, "tags": []},
                }),
            )
        })
        .collect()
}

/// dbt's checksum of a node's file: sha256 of its stripped text, a large seed's path, or
/// none for a generic test.
fn checksum(n: &Node, original: &std::path::Path) -> Value {
    match n.checksum.as_str() {
        "" => json!({"name": "none", "checksum": ""}),
        "path" => json!({"name": "path", "checksum": original}),
        sum => json!({"name": "sha256", "checksum": sum}),
    }
}

/// dbt's `path`: relative to the resource's folder (`staging/stg_orders.sql`); a generic
/// test's is its own name (`<name>.sql`).
fn dbt_path(n: &Node) -> String {
    let file = n
        .path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if n.test.as_ref().is_some_and(|t| t.test_name.is_some()) {
        return format!("{}.sql", n.relation.identifier);
    }
    let tail = if n.version.is_some() { 2 } else { 1 };
    let folders = n
        .fqn
        .get(1..n.fqn.len().saturating_sub(tail))
        .unwrap_or(&[]);
    let folders: &[String] =
        if n.kind == FileKind::Snapshot && n.path.extension().is_some_and(|e| e == "sql") {
            // A snapshot's fqn ends with its file's stem, then its name.
            folders
                .get(..folders.len().saturating_sub(1))
                .unwrap_or(&[])
        } else {
            folders
        };
    let mut parts: Vec<String> = folders.to_vec();
    parts.push(file);
    parts.join("/")
}

/// The node's `docs`, from its `docs` config (dbt copies it there).
fn docs_of(config: &Value) -> Value {
    let d = config.get("docs");
    json!({
        "show": d.and_then(|d| d.get("show")).cloned().unwrap_or(json!(true)),
        "node_color": d.and_then(|d| d.get("node_color")).cloned().unwrap_or(Value::Null),
    })
}

/// A path of a package's file relative to the package (the project's own, as it is).
pub fn in_package(
    project: &Project,
    package: Option<&str>,
    path: &std::path::Path,
) -> std::path::PathBuf {
    package
        .and_then(|n| project.packages.iter().find(|p| p.name == n))
        .and_then(|p| path.strip_prefix(&p.root).ok())
        .unwrap_or(path)
        .to_path_buf()
}

/// dbt's `path` of what a schema file declares (exposures, unit tests): relative to the
/// resource folder (`marts/exposures.yml`).
pub fn below_resource(path: &std::path::Path) -> String {
    crate::project::paths::components(path)
        .get(1..)
        .unwrap_or(&[])
        .join("/")
}

/// The folders between a resource folder and a schema file (`models/staging/x.yml` ->
/// `staging`), for the fqn of what the file declares.
pub fn yml_folders(file: &std::path::Path) -> Vec<String> {
    let parts = file
        .parent()
        .map(crate::project::paths::components)
        .unwrap_or_default();
    parts.into_iter().skip(1).collect()
}

/// One node as dbt's manifest has it.
pub fn node(project: &Project, n: &Node, ids: &Ids) -> Value {
    let deps = ids.depends_on(&n.refs, &n.sources);
    let yaml = match n.kind {
        FileKind::Seed => project.schema.seeds.get(&n.name),
        FileKind::Model => project.schema.models.get(&n.name),
        FileKind::Snapshot => project.schema.snapshots.get(&n.name),
        FileKind::Test => None,
    };
    let description = yaml.map(|m| m.description.clone()).unwrap_or_default();
    let entry = yaml.map(|m| &m.entry).unwrap_or(&Value::Null);
    let cols = yaml
        .map(|m| columns_of(&m.columns, &m.entry))
        .unwrap_or_default();
    let config = n.dbt_config();
    let package = n.fqn.first().unwrap_or(&project.name);
    let file = in_package(project, Some(package), &n.path);
    let language = if n.path.extension().is_some_and(|e| e == "py") {
        "python"
    } else {
        "sql"
    };
    let mut out = json!({
        "database": crate::render::catalog_name(&project.target.catalog),
        "schema": n.relation.schema,
        "name": n.version.as_ref().map_or(&n.name, |v| &v.model),
        "resource_type": n.kind,
        "package_name": package,
        "path": dbt_path(n),
        "original_file_path": file,
        "unique_id": n.unique_id,
        "fqn": n.fqn,
        "alias": n.relation.identifier,
        "checksum": checksum(n, &file),
        "config": config,
        "tags": n.tags,
        "description": description,
        "columns": cols,
        "meta": config.get("meta").cloned().unwrap_or_else(|| json!({})),
        "group": config.get("group").cloned().unwrap_or(Value::Null),
        "docs": docs_of(&config),
        "patch_path": null,
        "build_path": null,
        "unrendered_config": n.unrendered_config,
        "relation_name": n.relation.to_string(),
    });
    let more = json!({
        "raw_code": n.raw_sql.trim(),
        "language": language,
        "refs": n.refs.iter().map(|r| json!({"name": r, "package": null, "version": null})).collect::<Vec<_>>(),
        "sources": n.sources.iter().map(|(s, t)| json!([s, t])).collect::<Vec<_>>(),
        "metrics": [],
        "depends_on": {"macros": ids.macros.called_by(&n.raw_sql), "nodes": deps},
        "compiled": true,
        "compiled_code": n.compiled_sql,
        "extra_ctes_injected": true,
        "extra_ctes": [],
    });
    let extra = json!({
        "materialization": n.materialization,
        "location": n.location,
        "path": n.path,
    });
    if let Some(Value::Object(c)) = out.get_mut("config") {
        c.insert("lakeflow".into(), extra);
    }
    if let (Value::Object(map), Value::Object(more)) = (&mut out, more) {
        if n.kind == FileKind::Seed {
            // A seed has no SQL and depends on nothing (dbt's `depends_on` is macros only).
            map.insert("depends_on".into(), json!({"macros": []}));
            map.insert("root_path".into(), json!(project.root));
            if let Some(Value::Object(c)) = map.get_mut("config") {
                c.remove("access");
            }
        } else {
            map.extend(more);
        }
        if n.kind == FileKind::Model {
            map.extend(model_keys(&config, entry));
            if let Some(v) = &n.version {
                // Numbers as numbers (`v: 1`), as dbt keeps them.
                let number = |s: &str| s.parse::<i64>().map_or_else(|_| json!(s), |i| json!(i));
                map.insert("version".into(), number(&v.v));
                map.insert("latest_version".into(), number(&v.latest));
            }
        }
    }
    if let (Some(t), Value::Object(map)) = (&n.test, &mut out) {
        map.insert(
            "test_metadata".into(),
            t.test_name.as_ref().map_or(
                Value::Null,
                |name| json!({"name": name, "namespace": t.namespace, "kwargs": t.kwargs}),
            ),
        );
        map.insert("column_name".into(), json!(t.column_name));
        // The test's macro, as dbt records what a test calls.
        if let Some(name) = &t.test_name {
            let owner = match t.namespace.as_deref() {
                Some(ns) => ns.to_string(),
                None if ["unique", "not_null", "accepted_values", "relationships"]
                    .contains(&name.as_str()) =>
                {
                    "dbt".to_string()
                }
                None => package.to_string(),
            };
            map.insert(
                "depends_on".into(),
                json!({
                    "macros": [format!("macro.{owner}.test_{name}"), "macro.dbt.get_where_subquery"],
                    "nodes": map.get("depends_on").and_then(|d| d.get("nodes")).cloned().unwrap_or_else(|| json!([])),
                }),
            );
        }
        map.insert(
            "attached_node".into(),
            json!(t.attached.as_deref().and_then(|a| ids.model(a))),
        );
        map.insert(
            "file_key_name".into(),
            json!(t.attached.as_ref().map(|a| format!("models.{a}"))),
        );
    }
    out
}

/// Every source table as dbt's manifest has it, by unique_id.
pub fn sources(project: &Project) -> Map<String, Value> {
    project
        .schema
        .sources
        .iter()
        .map(|s| {
            let id = source_id(project, s);
            let package = s.package.as_deref().unwrap_or(&project.name);
            let freshness = freshness(&s.about.freshness);
            let file = in_package(project, s.package.as_deref(), &s.file);
            let mut config = json!({"enabled": true, "event_time": null, "freshness": freshness, "meta": {}, "tags": []});
            if let Value::Object(map) = &mut config {
                for (k, v) in &s.config {
                    map.insert(k.clone(), v.clone());
                }
            }
            let node = json!({
                "database": crate::render::catalog_name(&project.target.catalog),
                "schema": s.schema,
                "name": s.name,
                "resource_type": "source",
                "package_name": package,
                "path": file,
                "original_file_path": file,
                "unique_id": id,
                "fqn": std::iter::once(package.to_string())
                    .chain(yml_folders(&file))
                    .chain([s.source_name.clone(), s.name.clone()])
                    .collect::<Vec<_>>(),
                "source_name": s.source_name,
                "source_description": s.about.source_description,
                "loader": s.about.loader,
                "identifier": s.identifier,
                "quoting": {"database": null, "schema": null, "identifier": null, "column": null},
                "loaded_at_field": s.about.loaded_at_field,
                "loaded_at_query": null,
                "freshness": freshness,
                "external": null,
                "description": s.about.description,
                "columns": columns(&s.about.columns),
                "meta": if s.about.meta.is_null() { json!({}) } else { s.about.meta.clone() },
                "source_meta": {},
                "tags": [],
                "config": config,
                "patch_path": null,
                "unrendered_config": source_unrendered(&freshness, s.about.loaded_at_field.as_deref()),
                "relation_name": format!("{}.{}", s.schema, s.identifier),
                "created_at": 0.0,
            });
            let mut node = node;
            if let Some(Value::Object(c)) = node.get_mut("config") {
                c.insert("lakeflow".into(), json!({"external_location": s.external_location}));
            }
            (id, node)
        })
        .collect()
}

/// What dbt keeps as a source's `unrendered_config`: its freshness settings, when it has
/// any (with dbt's defaults for the rest).
fn source_unrendered(freshness: &Value, loaded_at_field: Option<&str>) -> Value {
    if freshness.is_null() && loaded_at_field.is_none() {
        return json!({});
    }
    json!({
        "freshness": freshness, "loaded_at_field": loaded_at_field, "loaded_at_query": null,
        "meta": {}, "tags": [],
    })
}

/// A source's `freshness` as dbt keeps it: none, or both thresholds (each a count and a
/// period, null where unset) and the filter.
pub fn freshness(given: &Value) -> Value {
    let Value::Object(f) = given else {
        return Value::Null;
    };
    let threshold = |key: &str| {
        let t = f.get(key);
        json!({
            "count": t.and_then(|t| t.get("count")).cloned().unwrap_or(Value::Null),
            "period": t.and_then(|t| t.get("period")).cloned().unwrap_or(Value::Null),
        })
    };
    json!({
        "warn_after": threshold("warn_after"),
        "error_after": threshold("error_after"),
        "filter": f.get("filter").cloned().unwrap_or(Value::Null),
    })
}

/// Every exposure as dbt's manifest has it, by unique_id (`exposure.<package>.<name>`).
pub fn exposures(project: &Project, ids: &Ids) -> Map<String, Value> {
    project
        .schema
        .exposures
        .iter()
        .map(|e| {
            let package = e.package.as_deref().unwrap_or(&project.name);
            let id = format!("exposure.{package}.{}", e.name);
            let field = |key: &str| e.fields.get(key).cloned().unwrap_or(Value::Null);
            let config = field("config");
            let tags = config
                .get("tags")
                .or_else(|| e.fields.get("tags"))
                .cloned()
                .unwrap_or_else(|| json!([]));
            let meta = config
                .get("meta")
                .or_else(|| e.fields.get("meta"))
                .cloned()
                .unwrap_or_else(|| json!({}));
            let owner = field("owner");
            let deps = ids.depends_on(&e.refs, &e.sources);
            let file = in_package(project, e.package.as_deref(), &e.file);
            let node = json!({
                "name": e.name,
                "resource_type": "exposure",
                "package_name": package,
                "path": below_resource(&file),
                "original_file_path": file,
                "unique_id": id,
                "fqn": std::iter::once(package.to_string())
                    .chain(yml_folders(&file))
                    .chain([e.name.clone()])
                    .collect::<Vec<_>>(),
                "type": field("type"),
                "owner": {
                    "name": owner.get("name").cloned().unwrap_or(Value::Null),
                    "email": owner.get("email").cloned().unwrap_or(Value::Null),
                },
                "description": e.fields.get("description").cloned().unwrap_or_else(|| json!("")),
                "label": field("label"),
                "maturity": field("maturity"),
                "meta": meta,
                "tags": tags,
                "config": {"enabled": true, "tags": tags, "meta": meta},
                "unrendered_config": {},
                "url": field("url"),
                "depends_on": {"macros": [], "nodes": deps},
                "refs": e.refs.iter().map(|r| json!({"name": r, "package": null, "version": null})).collect::<Vec<_>>(),
                "sources": e.sources.iter().map(|(s, t)| json!([s, t])).collect::<Vec<_>>(),
                "metrics": [],
                "created_at": 0.0,
            });
            (id, node)
        })
        .collect()
}
