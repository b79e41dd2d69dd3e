//! Opening the catalog database the way the profile asks: settings, the extension directory,
//! extensions. One `Connection` here; workers clone it.

use crate::error::{Error, Result};
use crate::project::Target;
use crate::storage::s3::S3Secret;
use duckdb::{Config, Connection};
use std::path::Path;

/// Built into lakeflow's DuckDB; `LOAD` is not needed for them.
const BUILT_IN: &[&str] = &["parquet", "json", "core_functions"];

/// Opens the catalog for writing.
pub fn open(target: &Target) -> Result<Connection> {
    let config = config(target)?;
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
    apply_local(&conn, &local_settings(target), target)?;
    prepare(&conn, target)?;
    attach(&conn, target)?;
    load_delta_if_used(&conn, target, false)?;
    Ok(conn)
}

/// DuckDB's ICU extension (time zones, `timestamptz` arithmetic and functions), which the
/// Python duckdb that dbt-duckdb runs on has built in, is loaded when it is in the extension
/// directory (from the PyPI wheel `duckdb-extension-icu==1.5.5`). Without it everything else
/// works; a model that needs it fails with DuckDB's binder or autoloading error.
pub fn load_icu_if_available(conn: &Connection) {
    // Absent is not an error: nothing is downloaded, and most projects never need it.
    let _ = conn.execute_batch("LOAD icu");
}

/// A read-only session on the database `file` (the catalog or a replica; `:memory:`, an
/// empty database): the target's configuration, per-connection settings, extensions and S3
/// access; the Delta extension if a view needs it.
pub fn open_read_only(target: &Target, file: &Path) -> Result<Connection> {
    let config = config(target)?;
    let opened = if file == Path::new(":memory:") {
        Connection::open_in_memory_with_flags(config)
    } else {
        let config = config
            .access_mode(duckdb::AccessMode::ReadOnly)
            .map_err(|e| Error::new("LF601", format!("cannot configure DuckDB: {e}")))?;
        Connection::open_with_flags(file, config)
    };
    let conn = opened.map_err(|e| {
        Error::new(
            "LF601",
            format!("cannot open {} read-only: {e}", file.display()),
        )
        .hint("build (and publish) the project first")
    })?;
    apply_local(&conn, &local_settings(target), target)?;
    prepare(&conn, target)?;
    load_delta_if_used(&conn, target, false)?;
    Ok(conn)
}

/// Attaches the profile's `attach:` databases (every connection of the session sees them).
pub fn attach(conn: &Connection, target: &Target) -> Result<()> {
    for a in &target.attach {
        conn.execute_batch(&attach_sql(a)).map_err(|e| {
            Error::new(
                "LF408",
                format!("cannot attach {}: {}", target.redact(&a.path), target.redact(&e.to_string())),
            )
            .in_file(&target.profiles_file)
            .hint("check `path`, `type` and `read_only` of this `attach:` entry; a `type` other than duckdb needs its extension under `extensions:`")
        })?;
    }
    Ok(())
}

/// `ATTACH IF NOT EXISTS 'path' AS alias (TYPE t, READ_ONLY, SECRET s, key value, ...)`.
fn attach_sql(a: &crate::project::profile::Attachment) -> String {
    use crate::model::relation::{quote_ident, quote_literal};
    let mut sql = format!("ATTACH IF NOT EXISTS {}", quote_literal(&a.path));
    if let Some(alias) = &a.alias {
        sql.push_str(&format!(" AS {}", quote_ident(alias)));
    }
    let mut options = Vec::new();
    if let Some(kind) = &a.kind {
        options.push(format!("TYPE {}", quote_ident(kind)));
    }
    if a.read_only {
        options.push("READ_ONLY".to_string());
    }
    if let Some(secret) = &a.secret {
        options.push(format!("SECRET {}", quote_ident(secret)));
    }
    for (k, v) in &a.options {
        let value = match v.as_str() {
            "true" | "false" => v.clone(),
            _ if v.parse::<f64>().is_ok() => v.clone(),
            _ => quote_literal(v),
        };
        options.push(format!("{} {value}", quote_ident(k)));
    }
    if !options.is_empty() {
        sql.push_str(&format!(" ({})", options.join(", ")));
    }
    sql
}

/// Loads DuckDB's delta extension when a view of the catalog reads with `delta_scan(...)`, or
/// `needed` says a model about to run does. Nothing else in lakeflow needs it.
pub fn load_delta_if_used(conn: &Connection, target: &Target, needed: bool) -> Result<()> {
    let used = needed
        || conn
            .query_row(
                "select count(*) from duckdb_views() where not internal and sql ilike '%delta_scan(%'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap_or(0)
            > 0;
    if used && !target.extensions.iter().any(|e| e == "delta") {
        conn.execute_batch("LOAD delta")
            .map_err(|e| extension_error("delta", target, &e.to_string()))?;
    }
    Ok(())
}

/// The DuckDB configuration of the target's sessions (writer and `lakeflow query`).
pub fn config(target: &Target) -> Result<Config> {
    let mut config = Config::default();
    let set = |c: Config, k: &str, v: &str| {
        c.with(k, v)
            .map_err(|e| setting_error(target, k, v, &e.to_string()))
    };
    // Relative paths in models and sources resolve where the target says (the project, or
    // for a dbt project the working directory, as dbt-duckdb does).
    config = set(
        config,
        "file_search_path",
        &target.paths_base.to_string_lossy(),
    )?;
    // No machine running lakeflow is assumed to reach the internet.
    config = set(config, "autoinstall_known_extensions", "false")?;
    if let Some(dir) = &target.extension_directory {
        config = set(config, "extension_directory", dir)?;
    }
    let local = local_settings(target);
    for (k, v) in &target.settings {
        if k != "extension_directory" && !local.iter().any(|(l, _)| l == k) {
            config = set(config, k, v)?;
        }
    }
    Ok(config)
}

/// The target's settings DuckDB takes only per connection (`enable_profiling`,
/// `profile_output`, ...): the database configuration refuses them, so every connection of the
/// session sets them itself ([`apply_local`]), as dbt-duckdb does.
pub fn local_settings(target: &Target) -> Vec<(String, String)> {
    target
        .settings
        .iter()
        .filter(|(k, v)| {
            k.as_str() != "extension_directory" && Config::default().with(k, v).is_err()
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Sets `settings` (from [`local_settings`]) on one connection; a setting DuckDB does not
/// know or a value it refuses is error LF401 naming the profile.
pub fn apply_local(
    conn: &Connection,
    settings: &[(String, String)],
    target: &Target,
) -> Result<()> {
    for (k, v) in settings {
        conn.execute_batch(&format!(
            "SET {} = {}",
            crate::model::relation::quote_ident(k),
            crate::model::relation::quote_literal(v)
        ))
        .map_err(|e| setting_error(target, k, v, &e.to_string()))?;
    }
    Ok(())
}

/// A setting DuckDB does not know, or a value it refuses, as error LF401 naming the profile.
fn setting_error(target: &Target, key: &str, value: &str, why: &str) -> Error {
    Error::new(
        "LF401",
        format!("invalid DuckDB setting {key} = '{value}': {why}"),
    )
    .in_file(&target.profiles_file)
    .hint("check the name and value under `settings:` of this target")
}

/// Extensions the target needs (and ICU when it is there), and S3 access when it uses S3.
pub fn prepare(conn: &Connection, target: &Target) -> Result<()> {
    load_icu_if_available(conn);
    let mut extensions: Vec<&str> = target.extensions.iter().map(String::as_str).collect();
    if target.uses_s3() && !extensions.contains(&"httpfs") {
        extensions.push("httpfs");
    }
    for ext in extensions {
        if BUILT_IN.contains(&ext) {
            continue;
        }
        conn.execute_batch(&format!(
            "LOAD {}",
            crate::model::relation::quote_ident(ext)
        ))
        .map_err(|e| extension_error(ext, target, &e.to_string()))?;
    }
    if target.uses_s3() {
        configure_s3(conn, target)?;
    }
    Ok(())
}

/// Temporary secrets (they live in this process only, never in the catalog file) and retries
/// with backoff for transient HTTP errors, unless the profile's settings say otherwise.
fn configure_s3(conn: &Connection, target: &Target) -> Result<()> {
    for (key, value) in [
        ("http_retries", "5"),
        ("http_retry_wait_ms", "200"),
        ("http_retry_backoff", "2"),
    ] {
        if !target.settings.contains_key(key) {
            conn.execute_batch(&format!("SET {key} = {value}"))
                .map_err(|e| Error::new("LF404", format!("cannot set {key}: {e}")))?;
        }
    }
    let secrets = target.secrets.iter().filter_map(S3Secret::from_profile);
    for (i, secret) in secrets.enumerate() {
        conn.execute_batch(&secret.duckdb_sql(&format!("lakeflow_s3_{i}"))).map_err(|e| {
            Error::new("LF405", format!("the s3 secret #{} is not accepted by DuckDB: {}", i + 1, target.redact(&e.to_string())))
                .in_file(&target.profiles_file)
                .hint("check the keys of this entry under `secrets:`: type, key_id, secret, endpoint, url_style, use_ssl, region, scope")
        })?;
    }
    Ok(())
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
