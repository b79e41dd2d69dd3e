//! `target/manifest.json`, `target/run_results.json` and `target/compiled/**.sql`.

use crate::error::{Error, Result};
use crate::execute::RunResult;
use crate::project::Project;
use crate::render::Node;
use serde_json::json;
use std::path::{Path, PathBuf};

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
    write_in_place(path, text)
}

/// [`write_whole`] into a folder that exists.
fn write_in_place(path: &Path, text: &str) -> Result<()> {
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
pub fn write_compiled(project: &Project, nodes: &[&Node]) -> Result<()> {
    use rayon::prelude::*;
    let compiled = project.target_path.join("compiled");
    // A seed has no SQL of its own to show (dbt writes none for it either).
    // By (folder of the project or package, path): of two nodes compiled to one path, the
    // later wins, as when written in turn.
    let mut by_base: std::collections::BTreeMap<
        PathBuf,
        std::collections::BTreeMap<PathBuf, &str>,
    > = Default::default();
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
        by_base
            .entry(base)
            .or_default()
            .insert(compiled_path(n, path), n.compiled_sql.as_str());
    }
    for (base, files) in &by_base {
        // A first compile writes the whole folder under a temporary name and renames it into
        // place: one rename instead of one per file.
        if !base.exists() && write_new_folder(base, files)? {
            continue;
        }
        make_folders(base, files.keys())?;
        let files: Vec<(&PathBuf, &&str)> = files.iter().collect();
        files.par_iter().try_for_each(|(rel, sql)| {
            let path = base.join(rel);
            let text = crate::redact::redact(sql);
            // An unchanged file is left as it is: a recompile rewrites only what changed
            // (and replacing a file by rename makes the filesystem flush it).
            if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
                return Ok(());
            }
            write_in_place(&path, &text)
        })?;
    }
    Ok(())
}

/// Each folder the files go in, made once: a project of thousands of models spends its
/// compile time on such calls otherwise.
fn make_folders<'a>(base: &Path, files: impl Iterator<Item = &'a PathBuf>) -> Result<()> {
    let folders: std::collections::BTreeSet<PathBuf> = files
        .filter_map(|rel| base.join(rel).parent().map(Path::to_path_buf))
        .collect();
    for folder in folders {
        std::fs::create_dir_all(&folder)
            .map_err(|e| Error::io("LF701", "create folder", &folder, e))?;
    }
    Ok(())
}

/// Writes `files` into a new folder beside `base` and renames it to `base`. False when `base`
/// appeared meanwhile (the caller writes file by file then).
fn write_new_folder(
    base: &Path,
    files: &std::collections::BTreeMap<PathBuf, &str>,
) -> Result<bool> {
    use rayon::prelude::*;
    let (Some(parent), Some(name)) = (base.parent(), base.file_name()) else {
        return Ok(false);
    };
    let name = name.to_string_lossy();
    std::fs::create_dir_all(parent).map_err(|e| Error::io("LF701", "create folder", parent, e))?;
    // What a killed compile left (lakeflow's own names only).
    let leftover = format!(".{name}.lf-tmp-");
    if let Ok(entries) = std::fs::read_dir(parent) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&leftover) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let stage = parent.join(format!("{leftover}{}", std::process::id()));
    make_folders(&stage, files.keys())?;
    let written = files.par_iter().try_for_each(|(rel, sql)| {
        let path = stage.join(rel);
        std::fs::write(&path, crate::redact::redact(sql).as_bytes())
            .map_err(|e| Error::io("LF701", "write", &path, e))
    });
    let placed = written.and_then(|()| {
        std::fs::rename(&stage, base).map_err(|e| Error::io("LF701", "write", base, e))
    });
    match placed {
        Ok(()) => Ok(true),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&stage);
            if base.exists() { Ok(false) } else { Err(e) }
        }
    }
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

/// Writes `target/manifest.json`, compact as dbt writes it.
pub fn write_manifest(project: &Project, nodes: &[Node], invocation_id: &str) -> Result<()> {
    write(
        &project.target_path.join("manifest.json"),
        &manifest_text(project, nodes, invocation_id),
    )
}

/// The manifest of `nodes`, as [`write_manifest`] writes it.
pub fn manifest(project: &Project, nodes: &[Node], invocation_id: &str) -> serde_json::Value {
    serde_json::from_str(&manifest_text(project, nodes, invocation_id)).unwrap_or_default()
}

/// The manifest as JSON text: what the graph holds (nodes, sources, exposures, ...), the
/// macros, docs and unit tests, the parent and child maps, and metadata. Each node is
/// serialized as soon as it is built and then dropped, so a project of 10,000 models never
/// holds the whole manifest as a tree of values.
fn manifest_text(project: &Project, nodes: &[Node], invocation_id: &str) -> String {
    use serde_json::{Map, Value};
    let ids = super::dbt_nodes::Ids::new(project, nodes);
    let mut analyses = super::manifest::analyses(project, &ids);
    let mut out = Text::default();
    out.member(
        "metadata",
        &super::manifest::metadata(project, invocation_id, super::manifest::SCHEMA_VERSION),
    );
    // `nodes`, in unique_id order, the analyses among them.
    let mut order: Vec<(&str, Option<&Node>)> = graph_nodes(nodes)
        .map(|n| (n.unique_id.as_str(), Some(n)))
        .collect();
    let analysis_ids: Vec<String> = analyses.keys().cloned().collect();
    order.extend(analysis_ids.iter().map(|id| (id.as_str(), None)));
    order.sort_by(|a, b| a.0.cmp(b.0));
    order.dedup_by(|later, earlier| later.0 == earlier.0);
    let mut parents: Vec<(String, Vec<String>)> = Vec::with_capacity(order.len());
    out.open("nodes");
    for (id, node) in order {
        let value = match node {
            Some(n) => super::dbt_nodes::node(project, n, &ids),
            None => analyses.remove(id).unwrap_or_default(),
        };
        parents.push((id.to_string(), super::manifest::depends_on_nodes(&value)));
        out.member(id, &value);
    }
    out.close();
    let mut section = |out: &mut Text, key: &str, map: Map<String, Value>, in_maps: bool| {
        if in_maps {
            for (id, v) in &map {
                parents.push((id.clone(), super::manifest::depends_on_nodes(v)));
            }
        }
        out.member(key, &Value::Object(map));
    };
    section(
        &mut out,
        "sources",
        super::dbt_nodes::sources(project),
        true,
    );
    out.member(
        "macros",
        &Value::Object(super::manifest::macros(&ids.macro_blocks, &ids.macros)),
    );
    out.member("docs", &Value::Object(super::manifest::docs(project)));
    let exposures = super::dbt_nodes::exposures(project, &ids);
    section(&mut out, "exposures", exposures, true);
    for (key, map) in super::manifest::listed(project, &ids) {
        section(&mut out, key, map, key != "groups");
    }
    let unit_tests = super::manifest::unit_tests(project, nodes, &ids);
    section(&mut out, "unit_tests", unit_tests, true);
    let (parent_map, child_map) = super::manifest::parent_child_maps(parents);
    out.member("parent_map", &Value::Object(parent_map));
    out.member("child_map", &Value::Object(child_map));
    for key in ["selectors", "disabled", "group_map", "functions"] {
        out.member(key, &json!({}));
    }
    out.finish()
}

/// A JSON object written member by member (compact).
#[derive(Default)]
struct Text {
    buf: Vec<u8>,
    /// Whether the object being written (top level, then a nested one) has a member yet.
    started: Vec<bool>,
}

impl Text {
    fn key(&mut self, key: &str) {
        match self.started.last_mut() {
            None => {
                self.buf.push(b'{');
                self.started.push(true);
            }
            Some(started) => {
                if *started {
                    self.buf.push(b',');
                }
                *started = true;
            }
        }
        // A string always serializes.
        let _ = serde_json::to_writer(&mut self.buf, key);
        self.buf.push(b':');
    }

    /// A member of the innermost open object.
    fn member(&mut self, key: &str, value: &serde_json::Value) {
        self.key(key);
        // A Value always serializes (its map keys are strings).
        let _ = serde_json::to_writer(&mut self.buf, value);
    }

    /// Starts an object as the value of `key`.
    fn open(&mut self, key: &str) {
        self.key(key);
        self.buf.push(b'{');
        self.started.push(false);
    }

    fn close(&mut self) {
        self.buf.push(b'}');
        self.started.pop();
    }

    fn finish(mut self) -> String {
        while !self.started.is_empty() {
            self.close();
        }
        // serde_json writes UTF-8 only.
        String::from_utf8(self.buf).unwrap_or_default()
    }
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
    graph_nodes(nodes)
        .map(|n| (n.unique_id.clone(), super::dbt_nodes::node(project, n, ids)))
        .collect()
}

/// The nodes of the manifest's `nodes` section (unit tests have their own).
fn graph_nodes(nodes: &[Node]) -> impl Iterator<Item = &Node> {
    nodes.iter().filter(|n| {
        !matches!(
            n.materialization,
            crate::model::materialization::Materialization::UnitTest(_)
        )
    })
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
    let mut items = result_entries(nodes, results);
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

/// The run results' entries of `results`, as `run_results.json` lists them.
pub fn result_entries(nodes: &[Node], results: &[RunResult]) -> Vec<serde_json::Value> {
    results
        .iter()
        .map(|r| result_entry(&nodes[r.node], r))
        .collect()
}

/// The entries of the run results the last command wrote to target/ (none when missing).
pub fn last_result_entries(project: &Project) -> Vec<serde_json::Value> {
    match read_json(&project.target_path.join("run_results.json")) {
        serde_json::Value::Object(mut doc) => match doc.remove("results") {
            Some(serde_json::Value::Array(entries)) => entries,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// A JSON file lakeflow wrote, or null when it is missing or unreadable.
pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// The manifest the last command wrote to target/ (null when there is none).
pub fn read_manifest(project: &Project) -> serde_json::Value {
    read_json(&project.target_path.join("manifest.json"))
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
