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

/// Writes `doc` as pretty JSON at `path` (through [`write`]).
pub fn write_json(path: &Path, doc: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(doc)
        .map_err(|e| Error::new("LF701", format!("cannot serialize {}: {e}", path.display())))?;
    write(path, &text)
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
    // The manifest holds what the graph does (nodes, sources, exposures, ...), and metadata.
    let mut manifest = graph(project, nodes);
    if let serde_json::Value::Object(m) = &mut manifest {
        m.insert("metadata".into(), metadata(project, invocation_id));
    }
    write(
        &project.target_path.join("manifest.json"),
        &serde_json::to_string_pretty(&manifest).unwrap_or_default(),
    )
}

/// dbt's `results` as `on-run-end` hooks see them: one per node run (`node` as in the
/// manifest, `status`, `message`, `execution_time`, `failures`, `adapter_response`,
/// `thread_id`, `timing`).
pub fn hook_results(project: &Project, nodes: &[Node], results: &[RunResult]) -> serde_json::Value {
    let graph_nodes = manifest_nodes(project, nodes, &super::dbt_nodes::Ids::new(project, nodes));
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
    let ids = super::dbt_nodes::Ids::new(project, nodes);
    json!({
        "nodes": manifest_nodes(project, nodes, &ids),
        "sources": super::dbt_nodes::sources(project),
        "exposures": super::dbt_nodes::exposures(project, &ids),
        "metrics": {},
        "groups": {},
        "semantic_models": {},
        "saved_queries": {},
    })
}

/// The manifest's `nodes`: each node by unique_id, in dbt's shape.
fn manifest_nodes(
    project: &Project,
    nodes: &[Node],
    ids: &super::dbt_nodes::Ids,
) -> serde_json::Map<String, serde_json::Value> {
    nodes
        .iter()
        .map(|n| (n.unique_id.clone(), super::dbt_nodes::node(project, n, ids)))
        .collect()
}

/// What a run's results list besides its nodes.
pub struct Listed {
    /// The exposures (a build of the whole project selects them).
    pub exposures: bool,
    /// Whether the on-run-end hooks failed.
    pub end_failed: bool,
}

pub fn write_run_results(
    project: &Project,
    nodes: &[Node],
    results: &[RunResult],
    seconds: f64,
    invocation_id: &str,
    listed: &Listed,
) -> Result<()> {
    let mut items: Vec<serde_json::Value> = results
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
    // dbt lists the run hooks as operations, and a build the exposures it selected (with
    // nothing to run).
    for (which, start, failed) in [
        ("on-run-start", true, false),
        ("on-run-end", false, listed.end_failed),
    ] {
        // Numbered per project or package, from 0.
        let mut seen: std::collections::HashMap<String, usize> = Default::default();
        for owner in crate::render::hooks::hook_owners(project, start) {
            let i = seen.entry(owner.clone()).or_default();
            items.push(json!({
                "unique_id": format!("operation.{owner}.{owner}-{which}-{i}"),
                "status": if failed { "error" } else { "success" },
                "execution_time": 0.0,
                "rows_affected": null,
                "failures": null,
                "message": null,
            }));
            *i += 1;
        }
    }
    if listed.exposures {
        for e in &project.schema.exposures {
            let package = e.package.as_deref().unwrap_or(&project.name);
            items.push(json!({
                "unique_id": format!("exposure.{package}.{}", e.name),
                "status": "no-op",
                "execution_time": 0.0,
                "rows_affected": null,
                "failures": null,
                "message": null,
            }));
        }
    }
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
