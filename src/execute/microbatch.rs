//! A microbatch model's run: its batches one after another, each in its own transaction
//! (catalog table) or commit (Delta), so a failed batch leaves the batches before it in place.
//! Each batch reads its inputs' rows of its window (refs and sources with an `event_time`,
//! filtered at render time on placeholders this file fills in) and replaces the table's rows
//! of that window. As in dbt: when the first batch fails, the others are skipped; a later
//! batch's failure does not stop the batches after it, and the model reports the failed ones.

use super::materialize::{Ctx, Outcome, failed, failure_text};
use crate::error::Result;
use crate::model::materialization::Incremental;
use crate::model::microbatch::{self, Microbatch, Window};

pub fn run(
    c: &Ctx,
    inc: &Incremental,
    mb: &Microbatch,
    incremental_sql: Option<&str>,
    full_sql: &str,
) -> Result<Outcome> {
    let now = chrono::Utc::now().naive_utc();
    let (start, end) = c.event_time;
    let windows = mb
        .batches(incremental_sql.is_some(), now, start, end)
        .map_err(failed)?;
    let size = mb.batch_size;
    let mut rows = 0u64;
    let mut last: Option<Outcome> = None;
    let mut errors: Vec<String> = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        let result = match incremental_sql {
            // The first batch of a new table (or a full refresh) creates it, as dbt does.
            None if i == 0 => {
                super::incremental::write(c, inc, None, &microbatch::for_window(full_sql, size, w))
            }
            _ => {
                let sql = microbatch::for_window(incremental_sql.unwrap_or(full_sql), size, w);
                one_batch(c, inc, mb, w, &sql)
            }
        };
        match result {
            Ok(o) => {
                rows += o.rows.unwrap_or(0);
                last = Some(o);
            }
            Err(e) if i == 0 => {
                return Err(failed(format!(
                    "batch {} of {} failed, so the others were skipped: {}",
                    describe(w),
                    windows.len(),
                    failure_text(&e)
                )));
            }
            Err(e) => errors.push(format!("batch {}: {}", describe(w), failure_text(&e))),
        }
    }
    if !errors.is_empty() {
        return Err(failed(format!(
            "{} of {} batches failed (the others were built):\n{}",
            errors.len(),
            windows.len(),
            errors.join("\n")
        )));
    }
    let mut outcome = last.unwrap_or_else(|| Outcome::rows(None));
    outcome.rows = Some(rows);
    let iso = |t: chrono::NaiveDateTime| format!("{}+00:00", t.format("%Y-%m-%dT%H:%M:%S"));
    let done: Vec<[String; 2]> = windows.iter().map(|w| [iso(w.0), iso(w.1)]).collect();
    outcome.batch_results = Some(serde_json::json!({"successful": done, "failed": []}));
    let span = match (windows.first(), windows.last()) {
        (Some(a), Some(b)) => format!(" from {} to {}", a.0, b.1),
        _ => String::new(),
    };
    outcome.note = Some(format!(
        "microbatch: {} batch{}{span}",
        windows.len(),
        if windows.len() == 1 { "" } else { "es" }
    ));
    Ok(outcome)
}

/// One batch into an existing table: the window's rows replaced by the batch's rows of the
/// window (dbt's delete+insert on `event_time`, with the model's predicates).
fn one_batch(
    c: &Ctx,
    inc: &Incremental,
    mb: &Microbatch,
    w: &Window,
    sql: &str,
) -> Result<Outcome> {
    let window = format!(
        "{et} >= '{}' and {et} < '{}'",
        microbatch::literal(w.0),
        microbatch::literal(w.1),
        et = mb.event_time
    );
    let mut batch = inc.clone();
    batch.predicates = std::iter::once(window.clone())
        .chain(inc.predicates.iter().cloned())
        .collect();
    let rows = format!("select * from ({sql}) as lf_batch where {window}");
    super::incremental::write(c, &batch, Some(&rows), "")
}

fn describe(w: &Window) -> String {
    format!("[{}, {})", w.0, w.1)
}
