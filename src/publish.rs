//! Publish: read replicas of the catalog that readers open while the next build runs. What
//! they pin comes from the catalog's state tables (`catalog::state`).
//!
//! A replica is a new, checkpointed .duckdb file: views over the exact file versions of one
//! build (so all its tables agree with each other), copies of the catalog's tables, the view
//! models, and a metadata table. It is put in place atomically (rename, or one S3 upload), and
//! the versions it pins are spared by garbage collection while it is among the `keep` newest.
//!
//! Locally the replica is written as `{to}.versions/{build}.duckdb` (via a temporary name in
//! that folder) and `{to}` becomes a hard link to it (via a temporary link beside `{to}`,
//! renamed over it): the previous replica's inode stays referenced by its own version file,
//! so readers that still have it open (NFS clients too, which would get ESTALE for a
//! deleted inode) keep reading it while it is kept. On S3 each object is one upload (multipart
//! for large files) that appears whole or not at all.

use crate::catalog::state;
use crate::error::{Error, Result};
use crate::model::materialization::FileFormat;
use crate::model::relation::{quote_ident, quote_literal};
use crate::project::Target;
use crate::project::paths::is_remote;
use crate::project::profile::PublishTo;
use crate::storage::Storage;
use duckdb::Connection;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Builds a replica from the catalog `conn` is open on and puts it at `dest.to`.
pub fn publish(
    conn: &Connection,
    target: &Target,
    storage: &Storage,
    dest: &PublishTo,
    project: &str,
    docs: &state::ReplicaDocs,
) -> Result<String> {
    let build_id = crate::model::clock::new_build_id();
    let tmp_dir;
    let tmp: PathBuf = if is_remote(&dest.to) {
        tmp_dir = std::env::temp_dir().join(format!("lakeflow-replica-{build_id}"));
        std::fs::create_dir_all(&tmp_dir).map_err(|e| Error::io("LF531", "create", &tmp_dir, e))?;
        tmp_dir.join("replica.duckdb")
    } else {
        // In the folder of the version file it becomes (renamed within one folder).
        tmp_dir = PathBuf::from(versions_dir(&dest.to));
        std::fs::create_dir_all(&tmp_dir).map_err(|e| Error::io("LF531", "create", &tmp_dir, e))?;
        tmp_dir.join(format!(".{build_id}.duckdb{TMP_MARK}"))
    };
    let result = write_replica(conn, &tmp, target, storage, &build_id, project, docs);
    let pinned = match result {
        Ok(p) => p,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if Path::new(&format!("{}.wal", tmp.display())).exists() {
        return Err(Error::new(
            "LF532",
            "the replica still has a write-ahead log after its checkpoint",
        ));
    }
    let placed = place(&tmp, dest, storage, &build_id);
    if is_remote(&dest.to) {
        let _ = std::fs::remove_dir_all(&tmp_dir);
    } else if placed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    placed?;
    remember(conn, dest, storage, &build_id, &pinned)?;
    Ok(build_id)
}

/// Writes the replica file; returns the version paths it pins.
fn write_replica(
    conn: &Connection,
    tmp: &Path,
    target: &Target,
    storage: &Storage,
    build_id: &str,
    project: &str,
    docs: &state::ReplicaDocs,
) -> Result<Vec<String>> {
    let err = state::db_err("cannot write the replica");
    let catalog_db: String = conn
        .query_row("select current_database()", [], |r| r.get(0))
        .map_err(&err)?;
    let models = state::pinned_models(conn)?;
    let pinned_names: HashSet<(String, String)> = models
        .iter()
        .filter(|m| m.pinned.is_some())
        .map(|m| (m.schema.clone(), m.name.clone()))
        .collect();
    let list = |sql: &str| -> Result<Vec<(String, String, String)>> {
        let mut stmt = conn.prepare(sql).map_err(&err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                ))
            })
            .map_err(&err)?;
        Ok(rows.filter_map(|r| r.ok()).collect())
    };
    let db = quote_literal(&catalog_db);
    let st = quote_literal(state::SCHEMA);
    let tables = list(&format!(
        "select schema_name, table_name, '' from duckdb_tables() where database_name = {db} and schema_name <> {st} and not temporary"
    ))?;
    let views = list(&format!(
        "select schema_name, view_name, sql from duckdb_views() where database_name = {db} and not internal and not temporary and schema_name <> {st}"
    ))?;

    conn.execute_batch(&format!(
        "attach {} as lf_replica",
        quote_literal(&tmp.to_string_lossy())
    ))
    .map_err(&err)?;
    let outcome = (|| -> Result<Vec<String>> {
        let mut schemas: Vec<&str> = tables
            .iter()
            .chain(&views)
            .map(|(s, _, _)| s.as_str())
            .collect();
        schemas.sort();
        schemas.dedup();
        for s in schemas {
            conn.execute_batch(&format!(
                "create schema if not exists lf_replica.{}",
                quote_ident(s)
            ))
            .map_err(&err)?;
        }
        for (s, t, _) in &tables {
            conn.execute_batch(&format!(
                "create table lf_replica.{s}.{t} as select * from {c}.{s}.{t}",
                s = quote_ident(s),
                t = quote_ident(t),
                c = quote_ident(&catalog_db)
            ))
            .map_err(&err)?;
        }
        let mut pinned = Vec::new();
        for m in &models {
            let (Some(path), Some(format)) = (&m.pinned, &m.format) else {
                continue;
            };
            let format = FileFormat::from_name(format).unwrap_or(FileFormat::Parquet);
            let reader = crate::execute::table_format(format)
                .pinned_reader(path, format, m.partitioned, storage)
                .map_err(|e| Error::new("LF534", format!("replica: {}", e.message)))?;
            conn.execute_batch(&format!(
                "create view lf_replica.{}.{} as select * from {}",
                quote_ident(&m.schema),
                quote_ident(&m.name),
                reader
            ))
            .map_err(&err)?;
            pinned.push(path.clone());
        }
        // View models (and external models built before lakeflow kept state) are recreated
        // from their SQL inside the replica; a view may need another, so retry until done.
        conn.execute_batch("use lf_replica").map_err(&err)?;
        let mut pending: Vec<&(String, String, String)> = views
            .iter()
            .filter(|(s, v, _)| !pinned_names.contains(&(s.clone(), v.clone())))
            .collect();
        let mut last_error = None;
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|(_, _, sql)| match conn.execute_batch(sql) {
                Ok(()) => false,
                Err(e) => {
                    last_error = Some(e.to_string());
                    true
                }
            });
            if pending.len() == before {
                break;
            }
        }
        conn.execute_batch(&format!("use {}", quote_ident(&catalog_db)))
            .map_err(&err)?;
        if let Some((s, v, _)) = pending.first() {
            return Err(Error::new(
                "LF533",
                format!(
                    "view {s}.{v} cannot be recreated in the replica: {}",
                    last_error.unwrap_or_default()
                ),
            ));
        }
        state::write_replica_state(conn, "lf_replica", build_id, &target.name, project)?;
        state::write_replica_docs(conn, "lf_replica", docs)?;
        conn.execute_batch("checkpoint lf_replica").map_err(&err)?;
        Ok(pinned)
    })();
    let _ = conn.execute_batch(&format!("use {}", quote_ident(&catalog_db)));
    conn.execute_batch("detach lf_replica").map_err(&err)?;
    let pinned = outcome?;
    let file = std::fs::File::open(tmp).map_err(|e| Error::io("LF531", "open", tmp, e))?;
    file.sync_all()
        .map_err(|e| Error::io("LF531", "sync", tmp, e))?;
    Ok(pinned)
}

const TMP_MARK: &str = ".lf-tmp";

fn versions_dir(to: &str) -> String {
    format!("{to}.versions")
}

fn versioned_path(to: &str, build_id: &str) -> String {
    format!("{}/{build_id}.duckdb", versions_dir(to))
}

/// Puts the finished replica at its destination. Locally: renamed to its version file, then
/// hard-linked (a copy where the share refuses links) to a temporary name beside `dest.to`
/// and renamed over it. On S3: uploaded as the version object and as `dest.to`.
fn place(tmp: &Path, dest: &PublishTo, storage: &Storage, build_id: &str) -> Result<()> {
    let versioned = versioned_path(&dest.to, build_id);
    if is_remote(&dest.to) {
        let remote = storage.remote.as_ref().ok_or_else(|| {
            Error::new(
                "LF523",
                format!("{} is on S3, but the target has no s3 secret", dest.to),
            )
        })?;
        remote.put_file(tmp, &versioned)?;
        return remote.put_file(tmp, &dest.to);
    }
    let to = Path::new(&dest.to);
    let versioned = Path::new(&versioned);
    std::fs::rename(tmp, versioned)
        .map_err(|e| Error::io("LF531", "move the replica to", versioned, e))?;
    let parent = to.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(|e| Error::io("LF531", "create", parent, e))?;
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let link = parent.join(format!(".{name}.lf-link-{build_id}"));
    let _ = std::fs::remove_file(&link);
    if std::fs::hard_link(versioned, &link).is_err() {
        std::fs::copy(versioned, &link).map_err(|e| Error::io("LF531", "copy", versioned, e))?;
    }
    std::fs::rename(&link, to).map_err(|e| {
        let _ = std::fs::remove_file(&link);
        Error::io("LF531", "move the replica to", to, e)
    })?;
    // Temporary names that killed publishes left.
    let leftover = |dir: &Path, prefix: &str, mark: &str| {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let f = e.file_name().to_string_lossy().into_owned();
            if f.starts_with(prefix) && f.contains(mark) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    };
    leftover(parent, &format!(".{name}.lf-link-"), ".lf-link-");
    if let Some(vdir) = versioned.parent() {
        leftover(vdir, ".", TMP_MARK);
    }
    Ok(())
}

/// Records the replica and forgets (and deletes) replicas beyond `keep`.
fn remember(
    conn: &Connection,
    dest: &PublishTo,
    storage: &Storage,
    build_id: &str,
    pinned: &[String],
) -> Result<()> {
    state::add_replica(conn, &dest.to, build_id, pinned)?;
    let ids = state::replicas(conn, &dest.to)?;
    for old in ids.iter().skip(dest.keep.max(1)) {
        let versioned = versioned_path(&dest.to, old);
        if is_remote(&versioned) {
            if let Some(r) = &storage.remote {
                let _ = r.delete_prefix(&versioned);
            }
        } else {
            let _ = std::fs::remove_file(&versioned);
        }
        state::forget_replica(conn, &dest.to, old)?;
    }
    Ok(())
}

/// `lakeflow catalog pull`: the replica at `from` (on S3) into the local file `to`, atomically.
pub fn pull(storage: &Storage, from: &str, to: &Path) -> Result<()> {
    let remote = storage.remote.as_ref().ok_or_else(|| {
        Error::new(
            "LF523",
            format!("{from} is on S3, but the target has no s3 secret"),
        )
    })?;
    let parent = to.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(|e| Error::io("LF536", "create", parent, e))?;
    let tmp = parent.join(format!(
        ".{}.lf-tmp-{}",
        to.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let fetched = remote
        .get_file(from, &tmp)
        .and_then(|()| std::fs::rename(&tmp, to).map_err(|e| Error::io("LF536", "write", to, e)));
    if fetched.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    fetched
}
