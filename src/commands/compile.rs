//! `lakeflow compile` and `lakeflow ls`: load, render, select; write or list, run nothing.

use super::plan;
use crate::cli::{Global, LsOutput, Selection};
use crate::error::Result;
use crate::render::Node;
use crate::report::artifacts;

pub fn compile(g: &Global, sel: &Selection) -> Result<bool> {
    let p = plan(g, sel)?;
    let (failed, chosen): (Vec<Node>, Vec<Node>) = p
        .plan
        .iter()
        .map(|&i| p.nodes[i].clone())
        .partition(|n| n.error.is_some());
    artifacts::write_compiled(&p.project, &chosen)?;
    artifacts::write_manifest(&p.project, &p.nodes, &crate::model::clock::new_build_id())?;
    crate::outln!(
        "Compiled {} models into {}",
        chosen.len(),
        p.project.target_path.join("compiled").display()
    );
    // Nodes that do not compile are each an error; the others are written (dbt does the same).
    for n in &failed {
        crate::errln!("{}", n.error.as_deref().unwrap_or_default());
    }
    Ok(failed.is_empty())
}

pub fn ls(g: &Global, sel: &Selection, output: LsOutput) -> Result<bool> {
    let p = plan(g, sel)?;
    for &i in &p.plan {
        let n = &p.nodes[i];
        match output {
            LsOutput::Name => crate::outln!("{}", n.fqn.join(".")),
            LsOutput::Path => crate::outln!("{}", n.path.display()),
            LsOutput::Json => crate::outln!(
                "{}",
                serde_json::json!({
                    "name": n.name, "unique_id": n.unique_id, "fqn": n.fqn, "path": n.path,
                    "materialized": n.materialization.name(), "relation": n.relation.to_string(),
                    "location": n.location, "tags": n.tags, "depends_on": n.refs,
                })
            ),
        }
    }
    Ok(true)
}
