//! dbt features a project may use that lakeflow does not run: each gets one warning line
//! saying which feature, where, and what lakeflow does instead, so nothing is skipped silently.

use crate::error::Result;
use serde_yaml::Value;
use std::path::Path;

/// What the scan found: one warning per unsupported feature used.
#[derive(Debug, Default)]
pub struct Found {
    pub warnings: Vec<String>,
}

/// The unsupported features of the project rooted at `root` (project file parsed: `doc`).
pub fn scan(root: &Path, _doc: &Value, schema_dirs: &[String]) -> Result<Found> {
    let mut out = Vec::new();
    let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    for path in super::files::discover(root, schema_dirs, &["yml", "yaml"])? {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
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
    Ok(Found { warnings: out })
}
