//! `lakeflow compile` and `lakeflow ls`: load, render, select; write or list, run nothing.

use super::plan;
use crate::cli::{Global, LsOutput, Selection};
use crate::error::Result;
use crate::render::Node;
use crate::report::artifacts;
use std::borrow::Cow;

pub fn compile(g: &Global, sel: &Selection) -> Result<bool> {
    compile_planned(g, sel).map(|(_, ok)| ok)
}

/// `lakeflow compile`, giving back the plan (for `docs generate`, which goes on from it) and
/// whether every node compiled.
pub fn compile_planned(g: &Global, sel: &Selection) -> Result<(super::Planned, bool)> {
    let p = plan(g, sel, "compile", false)?;
    let ok = {
        let nodes: Vec<&Node> = p.plan.iter().map(|&i| &p.nodes[i]).collect();
        let nodes = render_deferred(&p, nodes)?;
        let (failed, chosen): (Vec<&Node>, Vec<&Node>) = nodes
            .iter()
            .map(|n| n.as_ref())
            .partition(|n| n.error.is_some());
        artifacts::write_compiled(&p.project, &chosen)?;
        artifacts::write_manifest(&p.project, &p.nodes, &crate::model::clock::new_build_id())?;
        crate::outln!(
            "Compiled {} models into {}",
            chosen.len(),
            p.project.target_path.join("compiled").display()
        );
        // Nodes that do not compile are each an error; the others are written (dbt does the
        // same).
        for n in &failed {
            crate::errln!("{}", n.error.as_deref().unwrap_or_default());
        }
        failed.is_empty()
    };
    Ok((p, ok))
}

/// Nodes whose Jinja reads the database are rendered with a read-only connection to the
/// catalog as it is (an empty database if there is none yet), as `dbt compile` connects; one
/// that fails to render is that node's error.
fn render_deferred<'a>(p: &super::Planned, nodes: Vec<&'a Node>) -> Result<Vec<Cow<'a, Node>>> {
    if !nodes.iter().any(|n| n.deferred) {
        return Ok(nodes.into_iter().map(Cow::Borrowed).collect());
    }
    let target = &p.project.target;
    let catalog = std::path::Path::new(&target.catalog);
    let mut conn = Some(if catalog.exists() {
        crate::catalog::session::open_read_only(target, catalog)?
    } else {
        crate::catalog::session::open_read_only(target, std::path::Path::new(":memory:"))?
    });
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes {
        if !node.deferred {
            out.push(Cow::Borrowed(node));
            continue;
        }
        let Some(c) = conn.take() else {
            out.push(Cow::Owned(Node {
                error: Some("no DuckDB connection left to render it with".into()),
                ..node.clone()
            }));
            continue;
        };
        let (back, fresh) = crate::execute::live::render(p.deferred.as_deref(), node, c);
        conn = back;
        out.push(Cow::Owned(match fresh {
            Ok(n) => n,
            Err(e) => Node {
                error: Some(crate::execute::materialize::failure_text(&e)),
                ..node.clone()
            },
        }));
    }
    Ok(out)
}

/// `lakeflow parse`: the project read and rendered, `target/manifest.json` written.
pub fn parse(g: &Global) -> Result<bool> {
    let p = plan(g, &Selection::default(), "parse", false)?;
    artifacts::write_manifest(&p.project, &p.nodes, &crate::model::clock::new_build_id())?;
    crate::outln!(
        "Parsed {} nodes into {}",
        p.nodes.len(),
        p.project.target_path.join("manifest.json").display()
    );
    Ok(true)
}

/// `lakeflow show`: one model's (or inline SQL's) first rows, compiled as a build would and
/// read from the catalog as it is.
pub fn show(
    g: &Global,
    sel: &Selection,
    inline: Option<&str>,
    limit: usize,
    format: crate::query::QueryFormat,
) -> Result<bool> {
    let mut project = super::load(g)?;
    project.invocation.which = "show".into();
    let mut sel = sel.clone();
    if let Some(sql) = inline {
        // The inline SQL renders as one more model of the project, under a name no file has.
        let name = "__lakeflow_inline".to_string();
        project.models.push(crate::project::SqlFile {
            name: name.clone(),
            path: "inline.sql".into(),
            source: sql.to_string(),
            kind: crate::project::FileKind::Model,
            ..Default::default()
        });
        sel.select = vec![name];
        sel.exclude.clear();
    }
    let p = super::plan_loaded(project, &sel)?;
    let chosen: Vec<Node> = p
        .plan
        .iter()
        .map(|&i| p.nodes[i].clone())
        .filter(|n| !n.is_test())
        .collect();
    let [node] = chosen.as_slice() else {
        return Err(crate::error::Error::new(
            "LF305",
            format!(
                "`show` shows one model; the selection picks {}",
                chosen.len()
            ),
        )
        .hint("select one model with -s NAME, or pass --inline \"SQL\""));
    };
    let node = render_deferred(&p, vec![node])?
        .into_iter()
        .next()
        .ok_or_else(|| crate::error::Error::new("LF305", "nothing to show"))?
        .into_owned();
    if let Some(e) = &node.error {
        return Err(crate::error::Error::new("LF202", e.clone()));
    }
    let sql = crate::render::strip_statement_end(&node.compiled_sql);
    let storage = crate::storage::Storage::for_target(&p.project.target)?;
    crate::query::run(
        &p.project,
        &storage,
        &format!("select * from (\n{sql}\n) as lakeflow_show limit {limit}"),
        format,
        Some(crate::query::QuerySource::Catalog),
    )?;
    Ok(true)
}

pub fn ls(g: &Global, sel: &Selection, output: LsOutput) -> Result<bool> {
    let p = plan(g, sel, "ls", false)?;
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
