//! dbt features a project may use that lakeflow does not run: each gets one warning line
//! saying which feature, where, and what lakeflow does instead, so nothing is skipped silently.

use super::yaml;
use crate::error::{Result, line_of};
use serde_yaml::Value;
use std::path::Path;

/// Warnings for the project rooted at `root` whose project file is `file` (parsed: `doc`).
pub fn scan(root: &Path, doc: &Value, schema_dirs: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let snapshot_dirs =
        yaml::get_str_list(doc, "snapshot-paths").unwrap_or_else(|| vec!["snapshots".to_string()]);
    for path in super::files::discover(root, &snapshot_dirs, &["sql"])? {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
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
    Ok(out)
}
