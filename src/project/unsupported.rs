//! dbt features a project may use that lakeflow does not run: each gets one warning line
//! saying which feature, where, and what lakeflow does instead, so nothing is skipped silently.

use super::yaml;
use crate::error::{Result, line_of};
use serde_yaml::Value;
use std::path::Path;

/// What the scan found: one warning per unsupported feature used, and the names of the
/// project's snapshots (refs to them are the referring node's error, not a load error).
#[derive(Debug, Default)]
pub struct Found {
    pub warnings: Vec<String>,
    pub snapshots: Vec<String>,
}

/// The unsupported features of the project rooted at `root` (project file parsed: `doc`).
pub fn scan(root: &Path, doc: &Value, schema_dirs: &[String]) -> Result<Found> {
    let mut out = Vec::new();
    let mut snapshots = Vec::new();
    let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let snapshot_dirs =
        yaml::get_str_list(doc, "snapshot-paths").unwrap_or_else(|| vec!["snapshots".to_string()]);
    for path in super::files::discover(root, &snapshot_dirs, &["sql"])? {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        snapshots.extend(snapshot_names(&text));
        if let Some(line) = line_of(&text, "snapshot") {
            out.push(format!(
                "{}:{line}: unsupported dbt feature `snapshot`: snapshots are not built",
                rel(&path)
            ));
        }
    }
    for path in super::files::discover(root, schema_dirs, &["yml", "yaml"])? {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .position(|l| l.starts_with("unit_tests:"))
            .map(|i| i + 1)
        {
            out.push(format!(
                "{}:{line}: unsupported dbt feature `unit_tests`: unit tests are not run (data tests are)",
                rel(&path)
            ));
        }
        if let Some(line) = text
            .lines()
            .position(|l| l.trim_start().starts_with("data-tests:"))
            .map(|i| i + 1)
        {
            out.push(format!(
                "{}:{line}: `data-tests:` is not a dbt key, so these tests are not run (nor by dbt); write `data_tests:`",
                rel(&path)
            ));
        }
    }
    Ok(Found {
        warnings: out,
        snapshots,
    })
}

/// The names of the `{% snapshot name %}` blocks in `text`.
fn snapshot_names(text: &str) -> Vec<String> {
    text.split("{%")
        .skip(1)
        .filter_map(|tag| {
            let rest = tag.trim_start_matches(['-', '+']).trim_start();
            let rest = rest.strip_prefix("snapshot")?;
            if !rest.starts_with(char::is_whitespace) {
                return None;
            }
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}
