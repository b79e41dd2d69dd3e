//! Phase 7, report: what the user sees while a run goes (progress bar, plain lines or JSON
//! lines) and the artifacts it leaves in `target/`.

pub mod artifacts;

use crate::execute::{Observer, RunResult, Status};
use crate::render::Node;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

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

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (proleptic Gregorian), after H. Hinnant's algorithm description.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn now_rfc3339() -> String {
    rfc3339(now_secs())
}

/// A build id that sorts by time: `20260101T120000Z-<pid>`.
pub fn new_build_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let ts = now_rfc3339().replace(['-', ':'], "");
    format!("{ts}-{:06}-{}", nanos / 1000, std::process::id())
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
