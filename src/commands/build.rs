//! `lakeflow run | seed | test | build`: the whole pipeline over the selected nodes, under the
//! catalog lock, then the replica (build) and the run's artifacts.

use super::{Planned, plan_with};
use crate::catalog::{self, Catalog};
use crate::cli::{Global, RunArgs};
use crate::error::{Error, Result};
use crate::execute;
use crate::report::{self, Progress, artifacts};
use std::time::Instant;

/// `run` runs models, `seed` loads seeds, `test` runs tests, `build` does all three in DAG
/// order.
pub fn run(g: &Global, args: &RunArgs, command: &str) -> Result<bool> {
    // Flags are checked before anything is loaded or opened.
    let event_time = event_time(args)?;
    let started = Instant::now();
    // load -> render -> graph -> select
    let mut p = plan_with(g, &args.selection, command, args.full_refresh, args.empty)?;
    keep_kind(&mut p, command);
    // `--warn-error`: a test that would warn fails.
    if args.warn_error {
        for n in p.nodes.iter_mut().filter(|n| n.is_test()) {
            n.config.insert("severity".into(), "error".into());
        }
    }
    let build_id = crate::model::clock::new_build_id();
    let target = &p.project.target;
    let catalog = Catalog::open(target, &format!("lakeflow {command}"))?;
    let conn = &catalog.conn;
    // OpenLineage events, when configured: a run for the command, one for each node.
    let lineage = report::openlineage::Lineage::from_env(&p.project)?;
    if let Some(l) = &lineage {
        l.run_started(command);
    }
    artifacts::write_compiled(
        &p.project,
        &p.plan.iter().map(|&i| &p.nodes[i]).collect::<Vec<_>>(),
    )?;
    artifacts::write_manifest(&p.project, &p.nodes, &build_id)?;
    let (storage, existing) = prepare(conn, &mut p)?;
    let target = &p.project.target;
    let threads = args.threads.unwrap_or(target.threads).max(1);
    let runnable = p
        .plan
        .iter()
        .filter(|&&i| !p.nodes[i].is_ephemeral())
        .count();
    if g.log_format == report::LogFormat::Text {
        announce(&p, command, runnable, threads);
    }
    let start_failed = |e: String| {
        Error::new(
            "LF406",
            format!("on-run-start failed: {}", target.redact(&e)),
        )
        .in_file(&p.project.file)
        .hint("fix the statement under on-run-start; nothing was built")
    };
    for sql in &p.hooks.pre {
        conn.execute_batch(sql)
            .map_err(|e| start_failed(e.to_string()))?;
    }
    if let Some(d) = p.deferred.as_deref().filter(|d| d.on_run_start) {
        execute::live::run_hooks(d, conn, true, None).map_err(|e| start_failed(e.to_string()))?;
    }
    // execute
    let progress = Progress::new(g.log_format, runnable);
    // Dropped before the catalog: it holds a connection of its own.
    let observer =
        report::openlineage::Observed::new(&progress, lineage.as_ref(), conn, &p.nodes, &p.project);
    let results = execute::execute(
        &execute::Run {
            nodes: &p.nodes,
            target,
            local_settings: &catalog::session::local_settings(target),
            dag: &p.dag,
            plan: &p.plan,
            threads,
            build_id: &build_id,
            storage: &storage,
            existing: &existing,
            full_refresh: args.full_refresh,
            deferred: p.deferred.as_deref(),
            fail_fast: args.fail_fast,
            event_time,
        },
        conn,
        &observer,
    );
    drop(observer);
    progress.finish();
    // Deferred nodes were rendered as they ran: their SQL joins the artifacts.
    let mut late = Vec::new();
    for r in &results {
        if let Some(sql) = &r.compiled {
            p.nodes[r.node].compiled_sql = sql.clone();
            late.push(r.node);
        }
    }
    let rendered_late: Vec<&crate::render::Node> = late.iter().map(|&i| &p.nodes[i]).collect();
    artifacts::write_compiled(&p.project, &rendered_late)?;
    let results: Vec<execute::RunResult> = results
        .into_iter()
        .map(|mut r| {
            r.message = r.message.map(|m| target.redact(&m));
            r
        })
        .collect();
    catalog::state::record(conn, &execute::records(&p.nodes, &results), &build_id)?;
    // dbt runs on-run-end whatever happened to the models; hooks that read `results` or
    // `graph` (or query) are rendered now.
    let end_failed = on_run_end(&p, conn, &results).err().map(|e| {
        Error::new("LF406", format!("on-run-end failed: {}", target.redact(&e)))
            .in_file(&p.project.file)
    });
    // publish
    let all_ok = end_failed.is_none() && results.iter().all(|r| r.status.lets_downstream_run());
    let published = match (&target.publish, command == "build" && all_ok) {
        (Some(dest), true) => Some(crate::publish::publish(
            conn,
            target,
            &storage,
            dest,
            &p.project.name,
            &catalog::state::ReplicaDocs::new(
                &artifacts::read_manifest(&p.project),
                &artifacts::result_entries(&p.nodes, &results),
            ),
        )?),
        _ => None,
    };
    catalog.finish()?;
    if let (Some(id), Some(dest), report::LogFormat::Text) =
        (&published, &target.publish, g.log_format)
    {
        crate::outln!("Published replica {id} to {}", dest.to);
    }
    // report
    let seconds = started.elapsed().as_secs_f64();
    // Exposures are selected (and listed) by a build of the whole project.
    let exposures =
        command == "build" && args.selection.select.is_empty() && args.selection.exclude.is_empty();
    artifacts::write_run_results(
        &p.project,
        &p.nodes,
        &results,
        seconds,
        &build_id,
        &artifacts::Listed {
            exposures,
            end_failed: end_failed.is_some(),
        },
    )?;
    let ok = report::summary(g.log_format, &p.nodes, &results, seconds);
    if let Some(l) = &lineage {
        l.run_finished(ok && end_failed.is_none());
    }
    if let Some(e) = &end_failed {
        crate::errln!("{e}");
    }
    Ok(ok && end_failed.is_none())
}

/// Renders (when it reads the run) and runs the project's on-run-end hooks; the first
/// failure's message.
fn on_run_end(
    p: &Planned,
    conn: &duckdb::Connection,
    results: &[execute::RunResult],
) -> std::result::Result<(), String> {
    for sql in &p.hooks.post {
        conn.execute_batch(sql).map_err(|e| e.to_string())?;
    }
    if let Some(d) = p.deferred.as_deref().filter(|d| d.on_run_end) {
        let results = artifacts::hook_results(&p.project, &p.nodes, results);
        execute::live::run_hooks(d, conn, false, Some(&results)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `run` keeps models, `seed` seeds, `test` tests, `snapshot` snapshots; `build` keeps all.
fn keep_kind(p: &mut Planned, command: &str) {
    use crate::project::FileKind;
    let nodes = &p.nodes;
    p.plan.retain(|&i| match command {
        "run" => nodes[i].kind == FileKind::Model,
        "seed" => nodes[i].kind == FileKind::Seed,
        "snapshot" => nodes[i].kind == FileKind::Snapshot,
        "test" => nodes[i].kind == FileKind::Test,
        _ => true,
    });
}

/// What the run needs from the open catalog before anything is built: the delta extension if a
/// model reads with it, the schemas, the relations there now (tests of models neither selected
/// nor built are left out), and the storage with the files kept replicas pin.
fn prepare(
    conn: &duckdb::Connection,
    p: &mut Planned,
) -> Result<(
    crate::storage::Storage,
    std::collections::HashSet<(String, String)>,
)> {
    let target = &p.project.target;
    // `open` loaded it already if a catalog view needs it; a model about to run may too.
    if p.plan
        .iter()
        .any(|&i| p.nodes[i].compiled_sql.contains("delta_scan("))
    {
        catalog::session::load_delta_if_used(conn, target, true)?;
    }
    catalog::ensure_schemas(
        conn,
        p.plan
            .iter()
            .map(|&i| &p.nodes[i])
            .filter(|n| !n.is_ephemeral() && !n.is_test())
            .map(|n| n.relation.schema.as_str()),
    )?;
    let mut existing = catalog::existing_relations(conn)?;
    // `--defer`red models are read where the state's run built them.
    for n in p
        .nodes
        .iter()
        .filter(|n| p.project.invocation.defer.contains_key(&n.name))
    {
        existing.insert((n.relation.schema.clone(), n.relation.identifier.clone()));
    }
    for (test, model) in execute::drop_unrunnable_tests(&p.nodes, &p.dag, &mut p.plan, &existing) {
        crate::noteln!(
            "test '{}' is left out: it reads '{}', which is neither selected nor built",
            p.nodes[test].name,
            p.nodes[model].name
        );
    }
    let mut storage = crate::storage::Storage::for_target(target)?;
    storage.protected = catalog::state::protected_paths(conn)?;
    check_buckets(&storage, p)?;
    Ok((storage, existing))
}

fn announce(p: &Planned, command: &str, runnable: usize, threads: usize) {
    let tests = p.plan.iter().filter(|&&i| p.nodes[i].is_test()).count();
    let what = match (runnable - tests, tests) {
        (_, 0) => format!("{runnable} models"),
        (0, t) => format!("{t} tests"),
        (m, t) => format!("{m} models and {t} tests"),
    };
    crate::outln!(
        "lakeflow {command}: {what}, target '{}', {threads} threads, catalog {}",
        p.project.target.name,
        p.project.target.catalog
    );
}

/// Before anything is written: every bucket the selected models write to answers, with the
/// profile's credentials. A wrong key or a missing bucket is one line, not a failed model each.
fn check_buckets(storage: &crate::storage::Storage, p: &Planned) -> Result<()> {
    let Some(remote) = &storage.remote else {
        return Ok(());
    };
    remote.check_locations(
        p.plan
            .iter()
            .filter_map(|&i| p.nodes[i].location.as_deref()),
    )?;
    Ok(())
}

/// `--event-time-start/end`, read as UTC times.
fn event_time(args: &RunArgs) -> Result<execute::EventTime> {
    let read = |flag: &str, v: &Option<String>| -> Result<Option<chrono::NaiveDateTime>> {
        v.as_deref()
            .map(|s| {
                crate::model::microbatch::parse_time(s).ok_or_else(|| {
                    Error::new(
                        "LF307",
                        format!("--{flag} '{s}' is not a date or timestamp"),
                    )
                    .hint("give a date (2024-09-01) or a UTC timestamp (2024-09-01 06:00:00)")
                })
            })
            .transpose()
    };
    let start = read("event-time-start", &args.event_time_start)?;
    let end = read("event-time-end", &args.event_time_end)?;
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        return Err(Error::new(
            "LF307",
            format!("--event-time-end {e} is not after --event-time-start {s}"),
        ));
    }
    Ok((start, end))
}
