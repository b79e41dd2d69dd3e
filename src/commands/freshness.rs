//! `lakeflow source freshness`: for each source table with a `freshness` and a
//! `loaded_at_field`, how long ago its newest row was loaded, against `warn_after` and
//! `error_after`, as dbt's command; `target/sources.json` in dbt's v3 shape.

use super::load;
use crate::catalog::Catalog;
use crate::cli::Global;
use crate::error::Result;
use crate::project::files::SourceTable;
use serde_json::{Value, json};
use std::time::Instant;

pub fn freshness(g: &Global, select: &[String], output: Option<&std::path::Path>) -> Result<bool> {
    let project = load(g)?;
    for w in &project.warnings {
        crate::warnln!("{w}");
    }
    let sql_of = crate::render::source_sql(&project);
    let mut checked: Vec<&SourceTable> = project
        .schema
        .sources
        .iter()
        .filter(|s| s.about.loaded_at_field.is_some() && thresholds(&s.about.freshness))
        .filter(|s| selected(s, select))
        .collect();
    // In unique_id order, as dbt reports them.
    checked.sort_by_key(|s| crate::report::dbt_nodes::source_id(&project, s));
    let catalog = Catalog::open(&project.target, "lakeflow source freshness")?;
    let invocation = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    let mut results = Vec::new();
    let mut ok = true;
    for (n, s) in checked.iter().enumerate() {
        let t0 = Instant::now();
        let began = crate::model::clock::now_rfc3339();
        let sql = sql_of
            .get(&(s.source_name.clone(), s.name.clone()))
            .cloned()
            .unwrap_or_default();
        let measured = newest(&catalog.conn, s, &sql);
        let seconds = t0.elapsed().as_secs_f64();
        let id = crate::report::dbt_nodes::source_id(&project, s);
        let criteria = crate::report::dbt_nodes::freshness(&s.about.freshness);
        let name = format!("{}.{}", s.source_name, s.name);
        let timing = json!([{"name": "execute", "started_at": began, "completed_at": crate::model::clock::now_rfc3339()}]);
        let result = match measured {
            Ok((max_loaded_at, now)) => {
                let age = (now - max_loaded_at).num_milliseconds() as f64 / 1000.0;
                let status = status(age, &s.about.freshness);
                ok &= status != "error";
                crate::outln!(
                    "[{}/{}] {:<5} freshness of {name}: newest row loaded {} ago",
                    n + 1,
                    checked.len(),
                    status.to_uppercase(),
                    ago(age)
                );
                json!({
                    "unique_id": id, "status": status,
                    "max_loaded_at": iso(max_loaded_at), "snapshotted_at": iso(now),
                    "max_loaded_at_time_ago_in_s": age, "criteria": criteria,
                    "adapter_response": {}, "timing": timing, "thread_id": "Thread-1 (worker)",
                    "execution_time": seconds,
                })
            }
            Err(e) => {
                ok = false;
                crate::outln!(
                    "[{}/{}] ERROR freshness of {name}: {e}",
                    n + 1,
                    checked.len()
                );
                // dbt's runtime-error entry has exactly these keys.
                json!({"unique_id": id, "status": "runtime error", "error": e})
            }
        };
        results.push(result);
    }
    if checked.is_empty() {
        crate::outln!(
            "no source table has both `freshness` and `loaded_at_field`; nothing to check"
        );
    }
    let doc = json!({
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/sources/v3.json",
            "dbt_version": crate::render::DBT_VERSION,
            "generated_at": crate::model::clock::now_rfc3339(),
            "invocation_id": invocation,
            "invocation_started_at": crate::model::clock::now_rfc3339(),
            "env": {},
        },
        "results": results,
        "elapsed_time": started.elapsed().as_secs_f64(),
    });
    let path = output
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| project.target_path.join("sources.json"));
    crate::report::artifacts::write_json(&path, &doc)?;
    catalog.finish()?;
    Ok(ok)
}

/// `--select`: `source:name`, `source:name.table`, or `name` / `name.table` alone.
fn selected(s: &SourceTable, select: &[String]) -> bool {
    if select.is_empty() {
        return true;
    }
    select.iter().flat_map(|s| s.split_whitespace()).any(|sel| {
        let sel = sel
            .strip_prefix("source:")
            .unwrap_or(sel)
            .trim_end_matches('+');
        match sel.split_once('.') {
            Some((src, table)) => src == s.source_name && (table == "*" || table == s.name),
            None => sel == s.source_name || sel == "*",
        }
    })
}

/// Whether `freshness` sets a threshold (an empty or all-null block checks nothing, as in dbt).
fn thresholds(f: &Value) -> bool {
    ["warn_after", "error_after"]
        .iter()
        .any(|k| limit_seconds(f.get(*k)).is_some())
}

fn limit_seconds(t: Option<&Value>) -> Option<f64> {
    let t = t?;
    let count = t.get("count")?.as_f64()?;
    let unit = match t.get("period")?.as_str()? {
        "minute" => 60.0,
        "hour" => 3600.0,
        "day" => 86_400.0,
        _ => return None,
    };
    Some(count * unit)
}

fn status(age: f64, f: &Value) -> &'static str {
    if limit_seconds(f.get("error_after")).is_some_and(|l| age > l) {
        "error"
    } else if limit_seconds(f.get("warn_after")).is_some_and(|l| age > l) {
        "warn"
    } else {
        "pass"
    }
}

/// The newest `loaded_at_field` (read as UTC) and now.
fn newest(
    conn: &duckdb::Connection,
    s: &SourceTable,
    from: &str,
) -> std::result::Result<(chrono::NaiveDateTime, chrono::NaiveDateTime), String> {
    let field = s.about.loaded_at_field.as_deref().unwrap_or_default();
    let filter = s
        .about
        .freshness
        .get("filter")
        .and_then(Value::as_str)
        .map(|f| format!(" where {f}"))
        .unwrap_or_default();
    let sql = format!(
        "select cast(cast(max({field}) as timestamp) as varchar) from {from} as lf_source{filter}"
    );
    let text: Option<String> = conn
        .query_row(&sql, [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    let text = text.ok_or_else(|| format!("{field} has no values (the table is empty)"))?;
    let max = crate::model::microbatch::parse_time(&text)
        .ok_or_else(|| format!("{field} gave '{text}', not a timestamp"))?;
    Ok((max, chrono::Utc::now().naive_utc()))
}

fn iso(t: chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn ago(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}
