//! `target/manifest.json`, `target/run_results.json` and `target/compiled/**.sql`.

use crate::error::{Error, Result};
use crate::execute::RunResult;
use crate::project::Project;
use crate::render::Node;
use serde_json::json;
use std::path::Path;

/// Every artifact passes here, so no secret value reaches `target/`.
fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io("LF701", "create folder", parent, e))?;
    }
    // Write then rename, so a reader of target/ never sees half a file.
    let tmp = path.with_extension("tmp");
    let text = crate::redact::redact(text);
    std::fs::write(&tmp, text.as_bytes()).map_err(|e| Error::io("LF701", "write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("LF701", "write", path, e))
}

fn metadata(project: &Project, invocation_id: &str) -> serde_json::Value {
    json!({
        "lakeflow_version": env!("CARGO_PKG_VERSION"),
        "generated_at": crate::model::clock::now_rfc3339(),
        "invocation_id": invocation_id,
        "project_name": project.name,
        "target": project.target.name,
    })
}

/// Writes each model's and test's compiled SQL under `target/compiled/<package>/`: the project's name for
/// its own nodes, a package's (with the path inside the package) for the package's, as dbt.
pub fn write_compiled(project: &Project, nodes: &[Node]) -> Result<()> {
    let compiled = project.target_path.join("compiled");
    // A seed has no SQL of its own to show (dbt writes none for it either).
    for n in nodes
        .iter()
        .filter(|n| n.kind != crate::project::FileKind::Seed)
    {
        let package = project
            .packages
            .iter()
            .find(|p| n.fqn.first() == Some(&p.name) && n.path.starts_with(&p.root));
        let (base, path) = match package {
            Some(p) => (
                compiled.join(&p.name),
                n.path.strip_prefix(&p.root).unwrap_or(&n.path),
            ),
            None => (compiled.join(&project.name), n.path.as_path()),
        };
        write(&base.join(compiled_path(n, path)), &n.compiled_sql)?;
    }
    Ok(())
}

/// Where a node's compiled SQL goes under `target/compiled/<project>/`: its own path, or for a
/// generic test `<schema file>/<test>.sql`, as dbt lays them out. Always a relative path
/// without `..`, so it cannot land outside that folder (say, on the model's own file when
/// `model-paths` is absolute).
pub fn compiled_path(n: &Node, path: &std::path::Path) -> std::path::PathBuf {
    let path = if n.is_test() && path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
        path.join(format!("{}.sql", n.relation.identifier))
    } else {
        path.to_path_buf()
    };
    crate::project::paths::contained(&path)
}

pub fn write_manifest(project: &Project, nodes: &[Node], invocation_id: &str) -> Result<()> {
    let manifest = json!({
        "metadata": metadata(project, invocation_id),
        "nodes": manifest_nodes(project, nodes),
    });
    write(
        &project.target_path.join("manifest.json"),
        &serde_json::to_string_pretty(&manifest).unwrap_or_default(),
    )
}

/// dbt's `results` as `on-run-end` hooks see them: one per node run (`node` as in the
/// manifest, `status`, `message`, `execution_time`, `failures`, `adapter_response`,
/// `thread_id`, `timing`).
pub fn hook_results(project: &Project, nodes: &[Node], results: &[RunResult]) -> serde_json::Value {
    let graph_nodes = manifest_nodes(project, nodes);
    let results: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let n = &nodes[r.node];
            json!({
                "node": graph_nodes.get(&n.unique_id),
                "status": r.status,
                "message": r.message,
                "execution_time": super::round3(r.seconds),
                "failures": r.failures,
                "adapter_response": {"rows_affected": r.rows},
                "thread_id": "Thread-1",
                "timing": [],
            })
        })
        .collect();
    serde_json::Value::Array(results)
}

/// dbt's `graph`: the nodes (as in the manifest) and the sources, by unique_id.
pub fn graph(project: &Project, nodes: &[Node]) -> serde_json::Value {
    let nodes = manifest_nodes(project, nodes);
    let sources: serde_json::Map<String, serde_json::Value> = project
        .schema
        .sources
        .iter()
        .map(|s| {
            let id = format!("source.{}.{}.{}", project.name, s.source_name, s.name);
            let node = json!({
                "unique_id": id,
                "resource_type": "source",
                "package_name": project.name,
                "source_name": s.source_name,
                "name": s.name,
                "schema": s.schema,
                "identifier": s.identifier,
                "original_file_path": s.file,
                "fqn": [project.name.as_str(), s.source_name.as_str(), s.name.as_str()],
                "config": s.config,
                "external_location": s.external_location,
            });
            (id, node)
        })
        .collect();
    json!({
        "nodes": nodes,
        "sources": sources,
        "exposures": {},
        "metrics": {},
        "groups": {},
        "semantic_models": {},
        "saved_queries": {},
    })
}

/// The manifest's `nodes`: each node by unique_id, in dbt's shape.
fn manifest_nodes(project: &Project, nodes: &[Node]) -> serde_json::Map<String, serde_json::Value> {
    let by_name: std::collections::HashMap<&str, &str> = nodes
        .iter()
        .filter(|n| !n.is_test())
        .map(|n| (n.name.as_str(), n.unique_id.as_str()))
        .collect();
    nodes
        .iter()
        .map(|n| {
            let deps: Vec<&str> = n
                .refs
                .iter()
                .filter_map(|r| by_name.get(r.as_str()).copied())
                .collect();
            let sources: Vec<String> = n
                .sources
                .iter()
                .map(|(s, t)| format!("source.{}.{s}.{t}", project.name))
                .collect();
            let yaml = match n.kind {
                crate::project::FileKind::Seed => project.schema.seeds.get(&n.name),
                crate::project::FileKind::Model => project.schema.models.get(&n.name),
                crate::project::FileKind::Test => None,
            };
            let description = yaml.map(|m| m.description.clone()).unwrap_or_default();
            let columns: serde_json::Map<String, serde_json::Value> = yaml
                .map(|m| {
                    m.columns
                        .iter()
                        .map(|(c, d)| (c.clone(), json!({"name": c, "description": d})))
                        .collect()
                })
                .unwrap_or_default();
            (
                n.unique_id.clone(),
                json!({
                    "unique_id": n.unique_id,
                    "name": n.name,
                    "resource_type": n.kind,
                    "package_name": n.fqn.first().unwrap_or(&project.name),
                    "original_file_path": n.path,
                    "fqn": n.fqn,
                    "schema": n.relation.schema,
                    "alias": n.relation.identifier,
                    "relation_name": n.relation.to_string(),
                    "tags": n.tags,
                    "description": description,
                    "columns": columns,
                    "config": n.config,
                    "materialization": n.materialization,
                    "location": n.location,
                    "depends_on": {"nodes": deps, "sources": sources},
                    "raw_code": n.raw_sql,
                    "checksum": {"name": "fnv1a64", "checksum": n.checksum},
                    "compiled_code": n.compiled_sql,
                    "test_metadata": n.test.as_ref().and_then(|t| t.test_name.as_ref().map(|name| json!({
                        "name": name, "namespace": t.namespace, "kwargs": t.kwargs,
                    }))),
                    "column_name": n.test.as_ref().and_then(|t| t.column_name.clone()),
                    "attached_node": n.test.as_ref().and_then(|t| t.attached.as_ref()).and_then(|a| by_name.get(a.as_str()).copied()),
                }),
            )
        })
        .collect()
}

pub fn write_run_results(
    project: &Project,
    nodes: &[Node],
    results: &[RunResult],
    seconds: f64,
    invocation_id: &str,
) -> Result<()> {
    let items: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let n = &nodes[r.node];
            json!({
                "unique_id": n.unique_id,
                "status": r.status,
                "execution_time": super::round3(r.seconds),
                "rows_affected": r.rows,
                "failures": r.failures,
                "relation_name": n.relation.to_string(),
                "location": n.location,
                "written": r.written,
                "message": r.message,
            })
        })
        .collect();
    let doc = json!({
        "metadata": metadata(project, invocation_id),
        "elapsed_time": super::round3(seconds),
        "results": items,
    });
    write(
        &project.target_path.join("run_results.json"),
        &serde_json::to_string_pretty(&doc).unwrap_or_default(),
    )
}
