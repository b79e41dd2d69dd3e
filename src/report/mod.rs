//! Phase 7, report: what the user sees while a run goes (progress bar, plain lines or JSON
//! lines) and the artifacts it leaves in `target/`.

pub mod artifacts;
pub mod dbt_nodes;
pub mod manifest;
pub mod openlineage;

use crate::execute::{Observer, RunResult, Status};
use crate::render::Node;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub struct Progress {
    format: LogFormat,
    total: usize,
    done: AtomicUsize,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(format: LogFormat, total: usize) -> Progress {
        let bar = (format == LogFormat::Text && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total as u64);
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} [{pos}/{len}] {elapsed_precise} {wide_msg}")
            {
                bar.set_style(style);
            }
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Progress {
            format,
            total,
            done: AtomicUsize::new(0),
            bar,
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// A line above the progress bar, masked like every other line lakeflow prints.
    fn line(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.println(crate::redact::redact(&text)),
            None => crate::outln!("{text}"),
        }
    }
}

impl Observer for Progress {
    fn started(&self, node: &Node) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("running {}", display_name(node)));
        }
    }

    fn finished(&self, node: &Node, r: &RunResult) {
        let n = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        match self.format {
            LogFormat::Json => {
                let event = serde_json::json!({
                    "event": "node_finished",
                    "unique_id": node.unique_id,
                    "name": node.name,
                    "status": r.status,
                    "materialized": node.materialization.name(),
                    "rows": r.rows,
                    "failures": r.failures,
                    "seconds": round3(r.seconds),
                    "location": r.written.as_deref().or(node.location.as_deref()),
                    "message": r.message,
                    "index": n,
                    "total": self.total,
                });
                crate::outln!("{event}");
            }
            LogFormat::Text => {
                let width = self.total.to_string().len();
                let (tag, detail) = match r.status {
                    Status::Success => {
                        let rows = r.rows.map(|n| format!(", {n} rows")).unwrap_or_default();
                        let loc = r
                            .written
                            .as_deref()
                            .or(node.location.as_deref())
                            .map(|l| format!(" -> {l}"))
                            .unwrap_or_default();
                        (
                            "OK   ",
                            format!(
                                "({}{rows}, {:.2}s){loc}",
                                node.materialization.name(),
                                r.seconds
                            ),
                        )
                    }
                    Status::Error => (
                        "ERROR",
                        format!("({}, {:.2}s)", node.materialization.name(), r.seconds),
                    ),
                    Status::Skipped => ("SKIP ", String::new()),
                    Status::Pass => ("PASS ", format!("({:.2}s)", r.seconds)),
                    Status::Warn | Status::Fail => (
                        if r.status == Status::Warn {
                            "WARN "
                        } else {
                            "FAIL "
                        },
                        format!("({} failing, {:.2}s)", r.failures.unwrap_or(0), r.seconds),
                    ),
                };
                let mut text = format!(
                    "[{n:>width$}/{}] {tag} {} {detail}",
                    self.total,
                    display_name(node)
                );
                if let Some(msg) = &r.message {
                    for l in msg.lines() {
                        text.push_str("\n        ");
                        text.push_str(l);
                    }
                }
                self.line(text);
            }
        }
    }
}

/// A model by its relation (`silver.events`), a test by its name.
pub fn display_name(node: &Node) -> String {
    if node.is_test() {
        return format!("test {}", node.name);
    }
    format!("{}.{}", node.relation.schema, node.relation.identifier)
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Prints the end-of-run summary; returns whether everything succeeded (warnings do not
/// count against it, as in dbt).
pub fn summary(format: LogFormat, nodes: &[Node], results: &[RunResult], seconds: f64) -> bool {
    let (tests, built): (Vec<&RunResult>, Vec<&RunResult>) =
        results.iter().partition(|r| nodes[r.node].is_test());
    let count = |set: &[&RunResult], s: Status| set.iter().filter(|r| r.status == s).count();
    let (ok, err, skip) = (
        count(&built, Status::Success),
        count(&built, Status::Error),
        count(&built, Status::Skipped),
    );
    let (pass, warn, fail, test_err, test_skip) = (
        count(&tests, Status::Pass),
        count(&tests, Status::Warn),
        count(&tests, Status::Fail),
        count(&tests, Status::Error),
        count(&tests, Status::Skipped),
    );
    match format {
        LogFormat::Json => crate::outln!(
            "{}",
            serde_json::json!({
                "event": "run_finished", "success": ok, "error": err + test_err, "skipped": skip + test_skip,
                "pass": pass, "warn": warn, "fail": fail, "seconds": round3(seconds),
            })
        ),
        LogFormat::Text => {
            if !built.is_empty() || tests.is_empty() {
                crate::outln!(
                    "\nFinished {} models in {seconds:.2}s: {ok} succeeded, {err} failed, {skip} skipped.",
                    built.len()
                );
            } else {
                crate::outln!();
            }
            if !tests.is_empty() {
                crate::outln!(
                    "Tests: {pass} passed, {warn} warned, {} failed, {test_skip} skipped ({} tests{}).",
                    fail + test_err,
                    tests.len(),
                    if built.is_empty() {
                        format!(" in {seconds:.2}s")
                    } else {
                        String::new()
                    }
                );
            }
            let problems = results
                .iter()
                .filter(|r| matches!(r.status, Status::Error | Status::Fail | Status::Warn));
            for r in problems {
                let node = &nodes[r.node];
                let what = if r.status == Status::Warn {
                    "Warning in"
                } else {
                    "Failure in"
                };
                crate::outln!("\n{what} {} ({})", display_name(node), node.path.display());
                if let Some(m) = &r.message {
                    crate::outln!("  {}", m.replace('\n', "\n  "));
                }
            }
        }
    }
    err + skip + fail + test_err + test_skip == 0
}
