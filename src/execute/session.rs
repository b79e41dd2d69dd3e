//! Opening the catalog database the way the profile asks: settings, the extension directory,
//! extensions. One `Connection` here; workers clone it.

use crate::error::{Error, Result};
use crate::project::Target;
use duckdb::{Config, Connection};
use std::path::Path;

/// Built into lakeflow's DuckDB; `LOAD` is not needed for them.
const BUILT_IN: &[&str] = &["parquet", "json", "core_functions"];

pub fn open(target: &Target, project_root: &Path) -> Result<Connection> {
    let mut config = Config::default();
    let set = |c: Config, k: &str, v: &str| {
        c.with(k, v).map_err(|e| {
            Error::new("LF401", format!("invalid DuckDB setting {k} = '{v}': {e}"))
                .in_file(&target.profiles_file)
                .hint("check the name and value under `settings:` of this target")
        })
    };
    config = set(config, "file_search_path", &project_root.to_string_lossy())?;
    // No machine running lakeflow is assumed to reach the internet.
    config = set(config, "autoinstall_known_extensions", "false")?;
    if let Some(dir) = &target.extension_directory {
        config = set(config, "extension_directory", dir)?;
    }
    for (k, v) in &target.settings {
        if k != "extension_directory" {
            config = set(config, k, v)?;
        }
    }
    let conn = if target.catalog == ":memory:" {
        Connection::open_in_memory_with_flags(config)
    } else {
        let path = Path::new(&target.catalog);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("LF402", "create the catalog folder", parent, e))?;
        }
        Connection::open_with_flags(path, config)
    }
    .map_err(|e| {
        let msg = e.to_string();
        let hint = if msg.contains("lock") {
            "another program holds the catalog open (a SQL client?); close it, and point readers at a published replica instead"
        } else {
            "check `path:` of this target in profiles.yml"
        };
        Error::new("LF402", format!("cannot open catalog {}: {msg}", target.catalog)).hint(hint)
    })?;
    for ext in &target.extensions {
        if BUILT_IN.contains(&ext.as_str()) {
            continue;
        }
        conn.execute_batch(&format!(
            "LOAD {}",
            crate::render::relation::quote_ident(ext)
        ))
        .map_err(|e| extension_error(ext, target, &e.to_string()))?;
    }
    Ok(conn)
}

pub fn extension_error(ext: &str, target: &Target, detail: &str) -> Error {
    let dir = target
        .extension_directory
        .clone()
        .unwrap_or_else(|| "~/.duckdb/extensions".into());
    Error::new("LF403", format!("DuckDB extension '{ext}' cannot be loaded: {}", detail.lines().next().unwrap_or(detail)))
        .hint(format!(
            "lakeflow never downloads extensions. Put {ext}.duckdb_extension (from the PyPI wheel duckdb-extension-{ext}==1.5.5) into {dir}/v1.5.5/linux_amd64/ and set LAKEFLOW_EXTENSION_DIR or `extension_directory:` in the profile"
        ))
}
