//! `lakeflow delta history | optimize | vacuum`: maintenance of the selected Delta models'
//! tables, under the catalog lock so a build and a maintenance job never interleave.

use super::{load, plan};
use crate::catalog::{Catalog, state};
use crate::cli::{DeltaCommand, Global, Selection};
use crate::error::{Error, Result};
use crate::render::Node;

/// `lakeflow delta ...`: the selected Delta models' tables, under the catalog lock, so a
/// build and a maintenance job never interleave on one catalog.
pub fn delta_command(g: &Global, action: DeltaCommand) -> Result<bool> {
    use crate::delta::{self, maintenance};
    let selection = match &action {
        DeltaCommand::History { model, .. } => Selection {
            select: vec![model.clone()],
            ..Selection::default()
        },
        DeltaCommand::Optimize { selection, .. } | DeltaCommand::Vacuum { selection, .. } => {
            selection.clone()
        }
    };
    if let DeltaCommand::History { model, limit, json } = &action
        && (model.contains('/') || model.contains('\\'))
    {
        let project = load(g)?;
        let storage = crate::storage::Storage::for_target(&project.target)?;
        let location = crate::project::profile::absolutize(model, &project.root);
        let table = delta::Table::open(&location, storage.remote.as_ref())?;
        print_history(&maintenance::history(&table, *limit)?, *json);
        return Ok(true);
    }
    let p = plan(g, &selection, "delta", false)?;
    let models: Vec<&Node> = p
        .plan
        .iter()
        .map(|&i| &p.nodes[i])
        .filter(|n| n.is_delta())
        .collect();
    if models.is_empty() {
        return Err(Error::new("LF541", "no Delta model is selected")
            .hint("Delta models have `format: delta` (materialized external or incremental); pass the same --vars as the build"));
    }
    let target = &p.project.target;
    let storage = crate::storage::Storage::for_target(target)?;
    if let DeltaCommand::History { limit, json, .. } = &action {
        for n in &models {
            let location = n.location.as_deref().unwrap_or_default();
            let table = delta::Table::open(location, storage.remote.as_ref())?;
            print_history(&maintenance::history(&table, *limit)?, *json);
        }
        return Ok(true);
    }
    let target_size = match &action {
        DeltaCommand::Optimize { target_size, .. } => {
            maintenance::parse_size(target_size).map_err(|e| Error::new("LF544", e))?
        }
        _ => 0,
    };
    let catalog = Catalog::open(target, "lakeflow delta")?;
    let conn = &catalog.conn;
    let pins: Vec<(String, i64)> = state::delta_pin_paths(conn)?
        .iter()
        .filter_map(|p| delta::parse_pin(p).map(|(l, v)| (l.to_string(), v)))
        .collect();
    let mut ok = true;
    for n in &models {
        let location = n.location.as_deref().unwrap_or_default();
        if !crate::project::paths::is_remote(location) && !std::path::Path::new(location).is_dir() {
            crate::outln!("{}: not built yet, nothing to do", n.name);
            continue;
        }
        let table = match delta::Table::open(location, storage.remote.as_ref()) {
            Ok(t) => t,
            Err(e) => {
                crate::errln!("error: {}: {}", n.name, e.message);
                ok = false;
                continue;
            }
        };
        if !table.exists()? {
            crate::outln!("{}: not built yet, nothing to do", n.name);
            continue;
        }
        match &action {
            DeltaCommand::Optimize { .. } => {
                let tag = format!("{}-opt", crate::model::clock::new_build_id());
                match maintenance::optimize(conn, &table, target_size, &tag) {
                    Ok(r) => match r.version {
                        Some(v) => {
                            repoint_delta(conn, n, &table, v)?;
                            crate::outln!(
                                "{}: version {v}: {} files -> {} ({} rewritten into {})",
                                n.name,
                                r.files_before,
                                r.files_after,
                                r.files_removed,
                                r.files_added
                            );
                        }
                        None => {
                            crate::outln!(
                                "{}: {} files, nothing to compact",
                                n.name,
                                r.files_before
                            )
                        }
                    },
                    Err(e) => {
                        crate::errln!("error: {}: {}", n.name, e.message);
                        ok = false;
                    }
                }
            }
            DeltaCommand::Vacuum {
                retain_hours,
                dry_run,
                ..
            } => {
                let pinned: Vec<i64> = pins
                    .iter()
                    .filter(|(loc, _)| *loc == table.location)
                    .map(|(_, v)| *v)
                    .collect();
                match maintenance::vacuum(&table, *retain_hours, &pinned, *dry_run) {
                    Ok(r) => {
                        let verb = if *dry_run { "would delete" } else { "deleted" };
                        crate::outln!(
                            "{}: {verb} {} files; kept {} younger than {retain_hours} h and {} pinned by the catalog or replicas",
                            n.name,
                            r.deleted.len(),
                            r.retained,
                            r.pinned
                        );
                        if *dry_run {
                            for f in &r.deleted {
                                crate::outln!("  {f}");
                            }
                        }
                    }
                    Err(e) => {
                        crate::errln!("error: {}: {}", n.name, e.message);
                        ok = false;
                    }
                }
            }
            DeltaCommand::History { .. } => {}
        }
    }
    catalog.finish()?;
    Ok(ok)
}

fn print_history(commits: &[crate::delta::maintenance::Commit], json: bool) {
    if json {
        for c in commits {
            crate::outln!("{}", serde_json::to_string(c).unwrap_or_default());
        }
        return;
    }
    crate::outln!(
        "{:>7}  {:<20}  {:<14}  {:<32}  {:>6}  {:>6}  {:>10}",
        "version",
        "time (UTC)",
        "operation",
        "build",
        "+files",
        "-files",
        "+rows"
    );
    for c in commits {
        let time = c
            .timestamp
            .map(|t| crate::model::clock::rfc3339(t / 1000))
            .unwrap_or_default();
        crate::outln!(
            "{:>7}  {:<20}  {:<14}  {:<32}  {:>6}  {:>6}  {:>10}",
            c.version,
            time,
            c.operation,
            c.build_id.as_deref().unwrap_or("-"),
            c.files_added,
            c.files_removed,
            c.rows_added
                .map(|r| r.to_string())
                .unwrap_or_else(|| "?".into())
        );
    }
}

/// Points a Delta model's catalog view (and its recorded pin) at `version`, e.g. after
/// `lakeflow delta optimize` committed a compaction.
fn repoint_delta(
    conn: &duckdb::Connection,
    node: &Node,
    table: &crate::delta::Table,
    version: i64,
) -> Result<()> {
    let snap = table.snapshot(&crate::delta::AsOf::Version(version))?;
    let reader = table.reader(Some(conn), &snap)?;
    state::repoint(
        conn,
        &node.relation,
        &node.unique_id,
        &reader,
        &crate::delta::pin(&table.location, version),
    )
}
