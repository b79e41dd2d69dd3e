//! The reader's session: the database file opened `READ_ONLY`, file access limited to the
//! folders the catalog's views read (the lake root, model locations, source files) and any
//! given more, the memory limit set, and `lock_configuration` keeping it all so.

use super::parse;
use crate::catalog::session;
use crate::error::{Error, Result};
use crate::model::relation::quote_literal;
use crate::project::Project;
use duckdb::Connection;
use std::path::Path;

/// The reader's session: `file` read-only, the target's extensions and S3 access, then file
/// access cut down to what the views read (and `limits.read_dirs`), the memory limit set
/// when given, and the configuration locked.
pub fn open(project: &Project, file: &Path, limits: &SessionLimits) -> Result<Connection> {
    let conn = session::open_read_only(&project.target, file)?;
    let mut roots = read_roots(&conn, project)?;
    for dir in &limits.read_dirs {
        roots.push(format!(
            "{}/",
            absolute(dir, &project.root).trim_end_matches('/')
        ));
    }
    lock_down(&conn, &roots, limits.memory_limit.as_deref())?;
    Ok(conn)
}

/// What a reader's session gets besides the replica and the folders its views read.
#[derive(Debug, Clone, Default)]
pub struct SessionLimits {
    /// DuckDB's `memory_limit` (e.g. `2GB`); None keeps DuckDB's own.
    pub memory_limit: Option<String>,
    /// More folders queries may read files under.
    pub read_dirs: Vec<String>,
}

/// From here on the session reads only under `roots` and cannot change that.
fn lock_down(conn: &Connection, roots: &[String], memory_limit: Option<&str>) -> Result<()> {
    if let Some(limit) = memory_limit {
        conn.execute_batch(&format!("SET memory_limit = {}", quote_literal(limit)))
            .map_err(|e| {
                Error::new(
                    "LF605",
                    format!("memory limit '{limit}' is not one DuckDB takes: {e}"),
                )
                .hint("give a size such as 512MB or 2GB")
            })?;
    }
    let list: Vec<String> = roots.iter().map(|r| quote_literal(r)).collect();
    conn.execute_batch(&format!(
        "SET allowed_directories = [{}];
         SET enable_external_access = false;
         SET allow_unredacted_secrets = false;
         SET lock_configuration = true;",
        list.join(", ")
    ))
    .map_err(|e| {
        Error::new(
            "LF605",
            format!("cannot make the query session read-only: {e}"),
        )
        .hint("remove enable_external_access, allowed_directories and lock_configuration from the target's `settings:`")
    })
}

/// The folders the catalog's views read: the lake root, the folder of every model location
/// the catalog records (a model may be written outside the root), and those of the sources'
/// external locations (views of view models read them).
fn read_roots(conn: &Connection, project: &Project) -> Result<Vec<String>> {
    let mut paths = vec![format!(
        "{}/",
        project.target.external_root.trim_end_matches('/')
    )];
    // The catalog records `location` and `pinned_path`, a replica the location it pins.
    let recorded = crate::catalog::state::recorded_paths(conn)
        .map_err(|e| Error::new("LF601", e.message.clone()))?;
    for p in recorded {
        paths.extend(folder_of(&p));
    }
    for source in &project.schema.sources {
        if let Some(location) = &source.external_location {
            for p in paths_in(conn, location) {
                paths.extend(folder_of(&absolute(&p, &project.root)));
            }
        }
    }
    paths.sort();
    paths.dedup();
    // A folder under another allowed one adds nothing.
    let roots = paths
        .iter()
        .filter(|p| !paths.iter().any(|q| q != *p && p.starts_with(q.as_str())))
        .cloned()
        .collect();
    Ok(roots)
}

fn absolute(path: &str, root: &Path) -> String {
    if path.contains("://") || Path::new(path).is_absolute() {
        path.to_string()
    } else {
        root.join(path).to_string_lossy().into_owned()
    }
}

/// The folder holding `path` (a file, a folder or a glob), with a trailing `/`.
fn folder_of(path: &str) -> Option<String> {
    let fixed = match path.find(['*', '?', '[', '{']) {
        Some(i) => &path[..i],
        None => path,
    };
    let end = fixed.rfind('/')?;
    Some(fixed[..=end].to_string())
}

/// The paths an external location reads: itself when it is a path, else the string
/// arguments and replacement-scan names DuckDB's parser finds in `select * from <location>`.
fn paths_in(conn: &Connection, location: &str) -> Vec<String> {
    if !location.contains('(') {
        return vec![location.to_string()];
    }
    let Ok(tree) = parse(conn, &format!("select * from {location}")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    collect_strings(&tree, &mut out);
    out.retain(|s| s.contains('/') || s.contains('.'));
    out
}

fn collect_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            let is = |k: &str, val: &str| map.get(k).and_then(|x| x.as_str()) == Some(val);
            if is("class", "CONSTANT")
                && let Some(value) = map.get("value")
                && value.pointer("/type/id").and_then(|x| x.as_str()) == Some("VARCHAR")
                && let Some(s) = value.get("value").and_then(|x| x.as_str())
            {
                out.push(s.to_string());
            }
            if is("type", "BASE_TABLE")
                && let Some(s) = map.get("table_name").and_then(|x| x.as_str())
            {
                out.push(s.to_string());
            }
            map.values().for_each(|x| collect_strings(x, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn folder_of_files_folders_globs_and_urls() {
        assert_eq!(
            folder_of("/lake/dev/a.parquet").as_deref(),
            Some("/lake/dev/")
        );
        assert_eq!(folder_of("/lake/dev/t").as_deref(), Some("/lake/dev/"));
        assert_eq!(
            folder_of("/land/events/*/*.json").as_deref(),
            Some("/land/events/")
        );
        assert_eq!(
            folder_of("s3://b/lake/x.parquet").as_deref(),
            Some("s3://b/lake/")
        );
        assert_eq!(folder_of("relative.csv"), None);
    }

    #[test]
    fn paths_in_table_functions_and_replacement_scans() {
        let conn = Connection::open_in_memory().unwrap();
        let mut found = paths_in(
            &conn,
            "read_csv(['landing/a.csv', '/abs/b.csv'], header = true, delim = ',')",
        );
        found.sort();
        assert_eq!(found, ["/abs/b.csv", "landing/a.csv"]);
        assert_eq!(paths_in(&conn, "landing/x.parquet"), ["landing/x.parquet"]);
    }
}
