//! Phase 5, execute: runs the selected models, seeds and tests in DAG order, `threads` at a
//! time, one DuckDB connection per worker on the shared catalog. A failed model, or a test
//! that fails at severity error, skips the nodes downstream of it.
//!
//! Each node is built by the implementation of [`Materialize`] for its materialization, one
//! file each: `view.rs`, `table.rs`, `seed.rs`, `external.rs`, `incremental.rs`, `test.rs`,
//! `ephemeral.rs` ([`materialization`] picks it). Models that write files write them through
//! the [`TableFormat`] of their `format` ([`table_format`] picks it): `files_format.rs` for
//! Parquet, CSV and JSON, `delta_format.rs` for Delta tables.

mod contract;
pub mod delta_format;
pub mod ephemeral;
pub mod external;
pub mod files_format;
pub mod format;
pub mod incremental;
pub mod live;
pub mod materialize;
mod microbatch;
pub mod new_rows;
pub mod python;
pub mod seed;
mod snapshot;
pub mod table;
pub mod test;
mod unit_test;
pub mod view;

use crate::error::Result;
use crate::graph::Dag;
use crate::model::materialization::{FileFormat, Materialization};
use crate::project::FileKind;
use crate::render::Node;
use format::TableFormat;
use materialize::{Ctx, Materialize, Outcome, failed, failure_text};
use petgraph::Direction;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Mutex, mpsc};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A model or seed was built.
    Success,
    /// A model, seed or test could not run (SQL error, missing upstream).
    Error,
    Skipped,
    /// A test found no failing rows (or fewer than its thresholds).
    Pass,
    /// A test found failing rows, at severity warn (or below `error_if`).
    Warn,
    /// A test found failing rows at severity error.
    Fail,
}

impl Status {
    /// Whether nodes downstream may run after this one.
    pub fn lets_downstream_run(self) -> bool {
        matches!(self, Status::Success | Status::Pass | Status::Warn)
    }
}

#[derive(Debug, Clone)]
pub struct RunResult {
    pub node: usize,
    pub status: Status,
    pub rows: Option<u64>,
    pub seconds: f64,
    pub message: Option<String>,
    /// Where the model's files now are, when it wrote any.
    pub written: Option<String>,
    /// This build's version of them (what a replica pins).
    pub pinned: Option<String>,
    /// A test's count of failing rows.
    pub failures: Option<u64>,
    /// The SQL a deferred node was rendered to when it ran.
    pub compiled: Option<String>,
    /// A microbatch model's batches (dbt's `batch_results`).
    pub batch_results: Option<serde_json::Value>,
    /// When it started (none: it did not run), and on which worker.
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub thread: usize,
}

impl RunResult {
    fn failed(node: usize, status: Status, seconds: f64, message: String) -> RunResult {
        RunResult {
            node,
            status,
            rows: None,
            seconds,
            message: Some(message),
            written: None,
            pinned: None,
            failures: None,
            compiled: None,
            batch_results: None,
            started_at: None,
            thread: 0,
        }
    }
}

/// What the models that succeeded left behind, for the catalog's state tables.
pub fn records(nodes: &[Node], results: &[RunResult]) -> Vec<crate::catalog::state::ModelRecord> {
    results
        .iter()
        .filter(|r| r.status == Status::Success)
        .map(|r| {
            let n = &nodes[r.node];
            // Incremental Parquet models are folders of files, read like partitioned ones.
            let folder = matches!(
                n.materialization,
                crate::model::materialization::Materialization::Incremental(_)
            );
            let (format, partitioned) = match n.materialization.external() {
                Some(e) => (Some(e.format.name()), !e.partition_by.is_empty() || folder),
                None => (None, false),
            };
            crate::catalog::state::ModelRecord {
                unique_id: n.unique_id.clone(),
                relation: n.relation.clone(),
                materialized: n.materialization.name(),
                format,
                partitioned,
                location: n.location.clone(),
                pinned: r.pinned.clone(),
                rows: r.rows,
            }
        })
        .collect()
}

/// Told about each model as it starts and ends.
pub trait Observer: Sync {
    fn started(&self, node: &Node);
    fn finished(&self, node: &Node, result: &RunResult);
}

pub struct Run<'a> {
    pub nodes: &'a [Node],
    pub target: &'a crate::project::Target,
    /// Settings each worker connection sets itself (`catalog::session::local_settings`).
    pub local_settings: &'a [(String, String)],
    pub dag: &'a Dag,
    /// Selected nodes in topological order.
    pub plan: &'a [usize],
    pub threads: usize,
    pub build_id: &'a str,
    pub storage: &'a crate::storage::Storage,
    /// Relations present in the catalog before the run, to check unselected upstreams.
    pub existing: &'a HashSet<(String, String)>,
    /// Rebuild incremental models from scratch.
    pub full_refresh: bool,
    /// Renders the nodes whose Jinja reads the database, just before they run.
    pub deferred: Option<&'a crate::render::deferred::Deferred>,
    /// `--fail-fast`: after the first error or failing test, nothing more starts.
    pub fail_fast: bool,
    /// `--event-time-start/end`: the window microbatch models build.
    pub event_time: EventTime,
}

/// `--event-time-start` and `--event-time-end` (UTC).
pub type EventTime = (Option<chrono::NaiveDateTime>, Option<chrono::NaiveDateTime>);

pub fn execute(run: &Run, conn: &duckdb::Connection, observer: &dyn Observer) -> Vec<RunResult> {
    let plan: Vec<usize> = run
        .plan
        .iter()
        .copied()
        .filter(|&i| !run.nodes[i].is_ephemeral())
        .collect();
    let in_plan: HashSet<usize> = plan.iter().copied().collect();
    // Each node waits for every selected model upstream of it, even through unselected ones.
    let mut waiting: HashMap<usize, usize> = HashMap::new();
    let mut dependents: HashMap<usize, Vec<usize>> = HashMap::new();
    // Each node's depth among the planned nodes: of the nodes ready to start, the shallowest
    // start first, ties by unique_id (dbt's queue order, which some projects rely on when a
    // node reads another without ref()).
    let mut depth: HashMap<usize, usize> = HashMap::new();
    for &i in &plan {
        let ups: Vec<usize> = run
            .dag
            .reach(i, Direction::Incoming, None)
            .into_iter()
            .filter(|u| in_plan.contains(u))
            .collect();
        let d = ups
            .iter()
            .filter_map(|u| depth.get(u))
            .max()
            .map_or(0, |d| d + 1);
        depth.insert(i, d);
        waiting.insert(i, ups.len());
        for u in ups {
            dependents.entry(u).or_default().push(i);
        }
    }
    let threads = run.threads.max(1);
    let fail_all = |why: String| -> Vec<RunResult> {
        plan.iter()
            .map(|&i| RunResult::failed(i, Status::Error, 0.0, why.clone()))
            .collect()
    };
    // Each worker's connection carries the settings DuckDB keeps per connection.
    let pool_conns: crate::error::Result<Vec<duckdb::Connection>> = (0..threads)
        .map(|_| {
            let c = conn
                .try_clone()
                .map_err(|e| failed(format!("cannot open a DuckDB connection: {e}")))?;
            crate::catalog::session::apply_local(&c, run.local_settings, run.target)?;
            Ok(c)
        })
        .collect();
    let idle = match pool_conns {
        Ok(conns) => Mutex::new(conns),
        Err(e) => return fail_all(failure_text(&e)),
    };
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(p) => p,
        Err(e) => return fail_all(format!("cannot start worker threads: {e}")),
    };

    let (tx, rx) = mpsc::channel::<RunResult>();
    let mut results: Vec<RunResult> = Vec::with_capacity(plan.len());
    let mut blocked: HashMap<usize, String> = HashMap::new();
    let order = |i: usize| Reverse((depth[&i], run.nodes[i].unique_id.as_str(), i));
    let mut ready: BinaryHeap<_> = plan
        .iter()
        .copied()
        .filter(|i| waiting[i] == 0)
        .map(order)
        .collect();
    let mut in_flight = 0usize;
    // `--fail-fast`: why nothing more starts.
    let mut stopped: Option<String> = None;
    pool.in_place_scope(|scope| {
        loop {
            while in_flight < threads {
                let Some(Reverse((_, _, i))) = ready.pop() else {
                    break;
                };
                let node = &run.nodes[i];
                // Skipped behind a failure, not compilable, or reading what was never built.
                let not_run = stopped
                    .clone()
                    .map(|r| (Status::Skipped, r))
                    .or_else(|| blocked.get(&i).map(|r| (Status::Skipped, r.clone())))
                    .or_else(|| node.error.clone().map(|e| (Status::Error, e)))
                    .or_else(|| missing_upstream(run, i, &in_plan).map(|r| (Status::Error, r)));
                if let Some((status, reason)) = not_run {
                    let result = RunResult::failed(i, status, 0.0, reason);
                    tx.send(result).ok();
                    in_flight += 1;
                    continue;
                }
                let tx = tx.clone();
                let idle = &idle;
                observer.started(node);
                in_flight += 1;
                scope.spawn(move |_| {
                    let conn = idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
                    let start = Instant::now();
                    let started_at = Some(chrono::Utc::now());
                    let thread = rayon::current_thread_index().unwrap_or(0);
                    // A deferred node is rendered with the worker's connection as it runs.
                    let (conn, compiled, outcome) = match conn {
                        Some(c) if node.deferred => {
                            let ran =
                                live::run(run.deferred, node, c, |c, n| build(&ctx(run, c, n)));
                            (ran.conn, ran.compiled, ran.outcome)
                        }
                        // A Python model runs first; it is built from what it returned.
                        Some(c) if node.python.is_some() => {
                            let outcome = python::run(&c, node, run.build_id, run.full_refresh)
                                .and_then(|(fresh, _scratch)| build(&ctx(run, &c, &fresh)));
                            (Some(c), None, outcome)
                        }
                        Some(c) => {
                            let outcome = build(&ctx(run, &c, node));
                            (Some(c), None, outcome)
                        }
                        None => (None, None, Err(failed("no free DuckDB connection"))),
                    };
                    if let Some(c) = conn {
                        idle.lock().unwrap_or_else(|p| p.into_inner()).push(c);
                    }
                    let seconds = start.elapsed().as_secs_f64();
                    let result = match outcome {
                        Ok(o) => RunResult {
                            node: i,
                            status: o.verdict.as_ref().map_or(Status::Success, |v| v.status),
                            rows: o.rows,
                            seconds,
                            message: o
                                .verdict
                                .as_ref()
                                .and_then(|v| v.message.clone())
                                .or(o.note),
                            written: o.written,
                            pinned: o.pinned,
                            failures: o.verdict.map(|v| v.failures),
                            compiled,
                            batch_results: o.batch_results,
                            started_at,
                            thread,
                        },
                        Err(e) => RunResult {
                            compiled,
                            started_at,
                            thread,
                            ..RunResult::failed(i, Status::Error, seconds, failure_text(&e))
                        },
                    };
                    tx.send(result).ok();
                });
            }
            if in_flight == 0 {
                break;
            }
            let Ok(result) = rx.recv() else { break };
            in_flight -= 1;
            let i = result.node;
            observer.finished(&run.nodes[i], &result);
            if run.fail_fast
                && stopped.is_none()
                && matches!(result.status, Status::Error | Status::Fail)
            {
                stopped = Some(format!(
                    "skipped: --fail-fast after '{}' did not succeed",
                    run.nodes[i].name
                ));
            }
            for &d in dependents.get(&i).map(Vec::as_slice).unwrap_or(&[]) {
                if !result.status.lets_downstream_run() {
                    let what = if run.nodes[i].is_test() {
                        "test"
                    } else {
                        "upstream"
                    };
                    blocked.entry(d).or_insert_with(|| {
                        format!("skipped: {what} '{}' did not succeed", run.nodes[i].name)
                    });
                }
                let w = waiting.get_mut(&d).expect("every dependent is planned");
                *w -= 1;
                if *w == 0 {
                    ready.push(order(d));
                }
            }
            results.push(result);
        }
    });
    results
}

/// How `node` is built: the implementation of its materialization (a seed is loaded into a
/// table of the catalog).
pub fn materialization(node: &Node) -> Box<dyn Materialize + '_> {
    if node.kind == FileKind::Seed {
        return Box::new(seed::Seed);
    }
    match &node.materialization {
        Materialization::View => Box::new(view::View),
        Materialization::Table => Box::new(table::Table),
        Materialization::External(config) => Box::new(external::External { config }),
        Materialization::Incremental(config) => Box::new(incremental::Incremental { config }),
        Materialization::Test => Box::new(test::Test),
        Materialization::Ephemeral => Box::new(ephemeral::Ephemeral),
        Materialization::Snapshot(spec) => Box::new(snapshot::SnapshotTable { spec }),
        Materialization::UnitTest(spec) => Box::new(unit_test::UnitTestRun { spec }),
    }
}

/// The table format of files of `format`: the one place that picks it.
pub fn table_format(format: FileFormat) -> &'static dyn TableFormat {
    match format {
        FileFormat::Delta => &delta_format::DeltaTable,
        FileFormat::Parquet | FileFormat::Csv | FileFormat::Json => &files_format::Files,
    }
}

fn ctx<'a>(run: &'a Run, conn: &'a duckdb::Connection, node: &'a Node) -> Ctx<'a> {
    Ctx {
        conn,
        node,
        storage: run.storage,
        build_id: run.build_id,
        full_refresh: run.full_refresh,
        event_time: run.event_time,
    }
}

/// Builds one node, with its pre-hooks before and post-hooks after (a failing hook fails the
/// node; post-hooks run only when the build succeeded).
fn build(c: &Ctx) -> Result<Outcome> {
    if let Some(columns) = &c.node.contract {
        contract::check(c, columns)?;
    }
    run_hooks(c.conn, "pre-hook", &c.node.hooks.pre)?;
    let mut outcome = materialization(c.node).run(c)?;
    run_hooks(c.conn, "post-hook", &c.node.hooks.post)?;
    // Constraints hold only where DuckDB checks them: on catalog tables (as dbt warns).
    let table = matches!(c.node.materialization, Materialization::Table)
        || matches!(&c.node.materialization, Materialization::Incremental(i) if i.external.is_none());
    if c.node.constraints.is_some() && !table {
        let note = format!(
            "warning: the contract's constraints are not enforced on a {} model; DuckDB checks them on tables only",
            c.node.materialization.name()
        );
        outcome.note = Some(match outcome.note.take() {
            Some(n) => format!("{n}\n{note}"),
            None => note,
        });
    }
    Ok(outcome)
}

fn run_hooks(conn: &duckdb::Connection, which: &str, hooks: &[String]) -> Result<()> {
    for sql in hooks {
        conn.execute_batch(sql)
            .map_err(|e| failed(format!("{which} failed: {e}\n  {which}: {sql}")))?;
    }
    Ok(())
}

/// A directly ref'd model that is neither in this run nor in the catalog cannot be read.
fn missing_upstream(run: &Run, i: usize, in_plan: &HashSet<usize>) -> Option<String> {
    unbuilt_parent(run.nodes, run.dag, run.existing, i, in_plan).map(|p| {
        format!(
            "upstream model '{}' is not selected and has never been built into the catalog; select it too (e.g. --select +{})",
            run.nodes[p].name, run.nodes[i].name
        )
    })
}

fn unbuilt_parent(
    nodes: &[Node],
    dag: &Dag,
    existing: &HashSet<(String, String)>,
    i: usize,
    in_plan: &HashSet<usize>,
) -> Option<usize> {
    dag.parents(i).into_iter().find(|&p| {
        let parent = &nodes[p];
        let key = (
            parent.relation.schema.clone(),
            parent.relation.identifier.clone(),
        );
        !(in_plan.contains(&p)
            || parent.is_ephemeral()
            || parent.is_test()
            || existing.contains(&key))
    })
}

/// Takes out of `plan` the tests that read a model neither in the plan nor ever built (a
/// relationships test of an unselected model, say), returning each with that model's name.
/// dbt would run and fail them; `build --select +x` should not fail on other models' tests.
pub fn drop_unrunnable_tests(
    nodes: &[Node],
    dag: &Dag,
    plan: &mut Vec<usize>,
    existing: &HashSet<(String, String)>,
) -> Vec<(usize, usize)> {
    let in_plan: HashSet<usize> = plan.iter().copied().collect();
    let dropped: Vec<(usize, usize)> = plan
        .iter()
        .filter(|&&i| nodes[i].is_test())
        .filter_map(|&i| unbuilt_parent(nodes, dag, existing, i, &in_plan).map(|p| (i, p)))
        .collect();
    plan.retain(|i| !dropped.iter().any(|(t, _)| t == i));
    dropped
}
