//! `target/manifest.json`, `target/run_results.json` and `target/compiled/**.sql`.

use crate::error::{Error, Result};
use crate::execute::RunResult;
use crate::project::Project;
use crate::render::Node;
use serde_json::json;
use std::path::Path;

/// Every artifact passes here, so no secret value reaches `target/`.
fn write(path: &Path, text: &str) -> Result<()> {
    write_whole(path, &crate::redact::redact(text))
}

/// Writes `text` at `path` through a temporary file and a rename, so a reader of target/
/// never sees half a file (the caller has masked its secrets).
pub fn write_whole(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io("LF701", "create folder", parent, e))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text.as_bytes()).map_err(|e| Error::io("LF701", "write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("LF701", "write", path, e))
}

/// Writes `doc` as pretty JSON at `path` (through [`write`]).
pub fn write_json(path: &Path, doc: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(doc)
        .map_err(|e| Error::new("LF701", format!("cannot serialize {}: {e}", path.display())))?;
    write(path, &text)
}

/// run_results' `metadata` (dbt's v6 keys only).
fn results_metadata(project: &Project, invocation_id: &str) -> serde_json::Value {
    let mut m = super::manifest::metadata(project, invocation_id, RUN_RESULTS_VERSION);
    if let Some(map) = m.as_object_mut() {
        map.retain(|k, _| {
            matches!(
                k.as_str(),
                "dbt_schema_version"
                    | "dbt_version"
                    | "generated_at"
                    | "invocation_id"
                    | "invocation_started_at"
                    | "env"
            )
        });
    }
    m
}

const RUN_RESULTS_VERSION: &str = "https://schemas.getdbt.com/dbt/run-results/v6.json";

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
    let manifest = manifest(project, nodes, invocation_id);
    write(
        &project.target_path.join("manifest.json"),
        &serde_json::to_string_pretty(&manifest).unwrap_or_default(),
    )
}

/// The manifest of `nodes`, as [`write_manifest`] writes it.
pub fn manifest(project: &Project, nodes: &[Node], invocation_id: &str) -> serde_json::Value {
    // The manifest holds what the graph does (nodes, sources, exposures, ...), the macros,
    // docs and unit tests, the parent and child maps, and metadata.
    let ids = super::dbt_nodes::Ids::new(project, nodes);
    let graph = graph_with(project, nodes, &ids);
    let unit_tests = super::manifest::unit_tests(project, nodes, &ids);
    let listed = super::manifest::listed(project, &ids);
    let analyses = super::manifest::analyses(project, &ids);
    let empty = serde_json::Map::new();
    let section = |k: &str| graph.get(k).and_then(|v| v.as_object()).unwrap_or(&empty);
    let of = |k: &str| listed.get(k).unwrap_or(&empty);
    let (parent_map, child_map) = super::manifest::parent_child_maps(&[
        section("nodes"),
        section("sources"),
        section("exposures"),
        of("metrics"),
        of("semantic_models"),
        of("saved_queries"),
        &unit_tests,
        &analyses,
    ]);
    let mut manifest = json!({
        "metadata": super::manifest::metadata(project, invocation_id, super::manifest::SCHEMA_VERSION),
    });
    if let (serde_json::Value::Object(m), serde_json::Value::Object(mut g)) = (&mut manifest, graph)
    {
        if let Some(serde_json::Value::Object(nodes)) = g.get_mut("nodes") {
            nodes.extend(analyses);
        }
        m.extend(g);
        m.insert(
            "macros".into(),
            serde_json::Value::Object(super::manifest::macros(&ids.macro_blocks, &ids.macros)),
        );
        m.insert(
            "docs".into(),
            serde_json::Value::Object(super::manifest::docs(project)),
        );
        m.insert("unit_tests".into(), serde_json::Value::Object(unit_tests));
        for (k, v) in listed {
            m.insert(k.into(), serde_json::Value::Object(v));
        }
        m.insert("parent_map".into(), serde_json::Value::Object(parent_map));
        m.insert("child_map".into(), serde_json::Value::Object(child_map));
        for key in ["selectors", "disabled", "group_map", "functions"] {
            m.insert(key.into(), json!({}));
        }
    }
    manifest
}

/// dbt's `results` as `on-run-end` hooks see them: each node's entry of run_results.json,
/// with the node as in the manifest.
pub fn hook_results(project: &Project, nodes: &[Node], results: &[RunResult]) -> serde_json::Value {
    let graph_nodes = manifest_nodes(project, nodes, &super::dbt_nodes::Ids::new(project, nodes));
    let results: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let n = &nodes[r.node];
            let mut entry = result_entry(n, r);
            if let Some(map) = entry.as_object_mut() {
                map.insert(
                    "node".into(),
                    graph_nodes.get(&n.unique_id).cloned().unwrap_or_default(),
                );
            }
            entry
        })
        .collect();
    serde_json::Value::Array(results)
}

/// dbt's `graph`: the nodes (as in the manifest) and the sources, by unique_id.
pub fn graph(project: &Project, nodes: &[Node]) -> serde_json::Value {
    graph_with(project, nodes, &super::dbt_nodes::Ids::new(project, nodes))
}

fn graph_with(project: &Project, nodes: &[Node], ids: &super::dbt_nodes::Ids) -> serde_json::Value {
    json!({
        "nodes": manifest_nodes(project, nodes, ids),
        "sources": super::dbt_nodes::sources(project),
        "exposures": super::dbt_nodes::exposures(project, ids),
        "metrics": {},
        "groups": {},
        "semantic_models": {},
        "saved_queries": {},
    })
}

/// The manifest's `nodes`: each node by unique_id, in dbt's shape (unit tests have their
/// own section).
fn manifest_nodes(
    project: &Project,
    nodes: &[Node],
    ids: &super::dbt_nodes::Ids,
) -> serde_json::Map<String, serde_json::Value> {
    nodes
        .iter()
        .filter(|n| {
            !matches!(
                n.materialization,
                crate::model::materialization::Materialization::UnitTest(_)
            )
        })
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
        .map(|r| result_entry(&nodes[r.node], r))
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
            items.push(bare_entry(
                format!("operation.{owner}.{owner}-{which}-{i}"),
                if failed { "error" } else { "success" },
            ));
            *i += 1;
        }
    }
    if listed.exposures {
        for e in &project.schema.exposures {
            let package = e.package.as_deref().unwrap_or(&project.name);
            items.push(bare_entry(
                format!("exposure.{package}.{}", e.name),
                "no-op",
            ));
        }
    }
    let doc = json!({
        "metadata": results_metadata(project, invocation_id),
        "elapsed_time": super::round3(seconds),
        "results": items,
        "args": {
            "which": project.invocation.which,
            "invocation_command": std::env::args().collect::<Vec<_>>().join(" "),
            "select": project.invocation.select,
            "exclude": project.invocation.exclude,
            "vars": project.invocation.vars,
            "full_refresh": project.invocation.full_refresh,
            "empty": project.invocation.empty,
            "target": project.target.name,
            "indirect_selection": "eager",
        },
    });
    write(
        &project.target_path.join("run_results.json"),
        &serde_json::to_string_pretty(&doc).unwrap_or_default(),
    )
}

/// One node's result in dbt's v6 shape; what lakeflow adds (rows, where the files went) sits
/// in `adapter_response`, the free-form part.
fn result_entry(n: &Node, r: &RunResult) -> serde_json::Value {
    let ran = r.started_at.is_some();
    let timing = match r.started_at {
        Some(t) => {
            let end = t + chrono::Duration::milliseconds((r.seconds * 1000.0) as i64);
            let fmt =
                |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
            json!([{"name": "execute", "started_at": fmt(t), "completed_at": fmt(end)}])
        }
        None => json!([]),
    };
    use crate::execute::Status;
    let seed = n.kind == crate::project::FileKind::Seed;
    let built = matches!(r.status, Status::Success);
    // What dbt-duckdb says of a build: `OK`, a seed's `INSERT n`.
    let said = match (built, seed, r.rows) {
        (true, true, Some(rows)) => Some(format!("INSERT {rows}")),
        (true, _, _) => Some("OK".to_string()),
        _ => None,
    };
    let mut adapter = serde_json::Map::new();
    if ran && r.status != Status::Error {
        adapter.insert(
            "_message".into(),
            json!(said.clone().unwrap_or("OK".into())),
        );
    }
    if let Some(rows) = r.rows {
        adapter.insert("rows_affected".into(), json!(rows));
    }
    if n.location.is_some() || r.written.is_some() {
        adapter.insert(
            "lakeflow".into(),
            json!({"location": n.location, "written": r.written}),
        );
    }
    let compiled = ran && n.kind != crate::project::FileKind::Seed;
    json!({
        "status": r.status,
        "timing": timing,
        "thread_id": format!("Thread-{} (worker)", r.thread + 1),
        "execution_time": super::round3(r.seconds),
        "adapter_response": adapter,
        "message": r.message.clone().or(said),
        "failures": r.failures,
        "unique_id": n.unique_id,
        "compiled": compiled,
        "compiled_code": compiled.then(|| r.compiled.clone().unwrap_or_else(|| n.compiled_sql.clone())),
        "relation_name": (!n.is_test() && n.kind != crate::project::FileKind::Seed).then(|| n.relation.to_string()),
        "batch_results": r.batch_results,
    })
}

/// A result with nothing run behind it (run hooks, exposures).
fn bare_entry(unique_id: String, status: &str) -> serde_json::Value {
    json!({
        "status": status, "timing": [], "thread_id": "Thread-1 (worker)",
        "execution_time": 0.0, "adapter_response": {}, "message": null, "failures": null,
        "unique_id": unique_id, "compiled": null, "compiled_code": null,
        "relation_name": null, "batch_results": null,
    })
}
