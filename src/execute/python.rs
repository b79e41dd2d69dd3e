//! Python models (`def model(dbt, session)`), run as dbt-duckdb runs them, in the user's own
//! Python: what the model reads is written to Parquet by DuckDB, `templates/python/runner.py`
//! runs the model with a DuckDB session in a subprocess (`LAKEFLOW_PYTHON`, else `python3`,
//! which needs the `duckdb` package), and the frame or relation it returns, written to
//! Parquet, is what the model is built from, by its materialization like any SQL model.
//! lakeflow itself needs no Python unless a project has Python models.

use super::materialize::relation_kind;
use super::materialize::{failed, sql_error};
use crate::error::Result;
use crate::model::materialization::Materialization;
use crate::model::relation::{Relation, quote_ident, quote_literal};
use crate::render::Node;
use duckdb::Connection;
use std::path::{Path, PathBuf};

const RUNNER: &str = include_str!("../../templates/python/runner.py");

/// A folder removed when the model has been built from it.
pub struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the Python model `node`: the node to build (its SQL reads what the model returned)
/// and the scratch folder that holds it until the build is done. An incremental model whose
/// relation exists (and no `--full-refresh`) runs with `dbt.is_incremental()` true, reads
/// its own rows through `dbt.this`, and what it returns is its new rows.
pub fn run(
    conn: &Connection,
    node: &Node,
    build_id: &str,
    full_refresh: bool,
) -> Result<(Node, Scratch)> {
    let Some(inputs) = &node.python else {
        return Err(failed(format!("'{}' is not a Python model", node.name)));
    };
    let dir = std::env::temp_dir().join(format!(
        "lakeflow-python-{}-{build_id}-{}",
        std::process::id(),
        node.name
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
    let scratch = Scratch(dir.clone());
    let export = |i: usize, sql: &str| -> Result<String> {
        let file = dir.join(format!("input_{i}.parquet"));
        let path = file.to_string_lossy().into_owned();
        conn.execute_batch(&format!(
            "copy (select * from {sql}) to {} (format parquet)",
            quote_literal(&path)
        ))
        .map_err(sql_error)?;
        Ok(path)
    };
    let is_incremental = matches!(node.materialization, Materialization::Incremental(_))
        && !full_refresh
        && relation_kind(conn, &node.relation)?.is_some();
    // Each relation read is also a view of the same name in the model's session, as the
    // session is the catalog's connection in dbt-duckdb (`session.sql(f"... {dbt.this}")`).
    let mut refs = serde_json::Map::new();
    let mut views = Vec::new();
    for (i, (name, relation)) in inputs.refs.iter().enumerate() {
        let path = export(i, &relation.to_string())?;
        views.push(view(relation, &path));
        refs.insert(name.clone(), path.into());
    }
    if is_incremental {
        let path = export(inputs.refs.len(), &node.relation.to_string())?;
        views.push(view(&node.relation, &path));
    }
    let mut sources = serde_json::Map::new();
    for (i, (name, sql)) in inputs.sources.iter().enumerate() {
        sources.insert(name.clone(), export(inputs.refs.len() + 1 + i, sql)?.into());
    }
    let output = dir.join("output.parquet").to_string_lossy().into_owned();
    let spec = serde_json::json!({
        "source": node.raw_sql,
        "path": node.path,
        "config": node.config,
        "this": node.relation.to_string(),
        "refs": refs,
        "sources": sources,
        "views": views,
        "is_incremental": is_incremental,
        "output": output,
    });
    let write = |name: &str, text: &str| -> Result<PathBuf> {
        let p = dir.join(name);
        std::fs::write(&p, text)
            .map_err(|e| failed(format!("cannot write {}: {e}", p.display())))?;
        Ok(p)
    };
    let runner = write("runner.py", RUNNER)?;
    let spec = write("inputs.json", &spec.to_string())?;
    python(&runner, &spec, &node.name)?;
    let mut fresh = node.clone();
    fresh.compiled_sql = format!("select * from read_parquet({})", quote_literal(&output));
    // What the model returned is all of it, or (incremental) its new rows.
    fresh.incremental_sql = is_incremental.then(|| Ok(fresh.compiled_sql.clone()));
    Ok((fresh, scratch))
}

/// The statements that make `relation` a view of the Parquet file at `path`.
fn view(relation: &Relation, path: &str) -> String {
    format!(
        "create schema if not exists {}; create or replace view {relation} as select * from read_parquet({})",
        quote_ident(&relation.schema),
        quote_literal(path)
    )
}

/// Runs `runner spec` with the user's Python; its stderr (the traceback) is the error.
fn python(runner: &Path, spec: &Path, model: &str) -> Result<()> {
    let interpreter = std::env::var("LAKEFLOW_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&interpreter)
        .arg(runner)
        .arg(spec)
        .output()
        .map_err(|e| {
            failed(format!(
                "cannot run the Python model '{model}' with {interpreter}: {e}; set LAKEFLOW_PYTHON to a Python that has the duckdb package"
            ))
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(failed(format!(
        "the Python model '{model}' failed ({interpreter}):\n{}",
        tail.join("\n")
    )))
}
