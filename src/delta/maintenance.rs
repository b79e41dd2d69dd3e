//! Keeping Delta tables healthy from cron: history, compaction (`optimize`), and removal of
//! data files no version in reach needs any more (`vacuum`).

use super::{AsOf, DataFile, Snapshot, Table, block_on, delta_err, delta_error, dv, write};
use crate::error::Result;
use deltalake::kernel::Action;
use deltalake::kernel::transaction::TableReference;
use deltalake::protocol::DeltaOperation;
use duckdb::Connection;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Value, json};
use std::collections::HashSet;

/// One commit of the log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Commit {
    pub version: i64,
    pub timestamp: Option<i64>,
    pub operation: String,
    pub build_id: Option<String>,
    pub model: Option<String>,
    pub files_added: usize,
    pub files_removed: usize,
    pub rows_added: Option<u64>,
    pub data_change: bool,
    /// Files that got a deletion vector (rows deleted in place; not counted as added or
    /// removed).
    pub files_marked: usize,
    /// Paths removed by this commit, with their deletion time.
    #[serde(skip)]
    pub removed: Vec<(String, Option<i64>)>,
    /// The deletion vector files the removed files' vectors are in (relative to the table).
    #[serde(skip)]
    pub removed_vectors: Vec<String>,
}

/// Versions with a JSON commit in the log, newest first.
fn log_versions(table: &Table) -> Result<Vec<i64>> {
    let store = table.store().clone();
    let metas: Vec<object_store::ObjectMeta> = block_on(async move {
        store
            .list(Some(&StorePath::from("_delta_log")))
            .try_collect()
            .await
    })?
    .map_err(|e| {
        delta_error(format!(
            "cannot list the Delta log of {}: {e}",
            table.location
        ))
    })?;
    let mut versions: Vec<i64> = metas
        .iter()
        .filter_map(|m| m.location.filename())
        .filter_map(|f| f.strip_suffix(".json"))
        .filter(|v| v.len() == 20)
        .filter_map(|v| v.parse().ok())
        .collect();
    versions.sort_unstable_by(|a, b| b.cmp(a));
    Ok(versions)
}

fn read_commit(table: &Table, version: i64) -> Result<Commit> {
    let store = table.store().clone();
    let path = StorePath::from(format!("_delta_log/{version:020}.json"));
    let bytes = block_on(async move { store.get(&path).await?.bytes().await })?.map_err(|e| {
        delta_error(format!(
            "cannot read version {version} of {}: {e}",
            table.location
        ))
    })?;
    let mut c = Commit {
        version,
        timestamp: None,
        operation: String::new(),
        build_id: None,
        model: None,
        files_added: 0,
        files_removed: 0,
        rows_added: Some(0),
        data_change: false,
        files_marked: 0,
        removed: Vec::new(),
        removed_vectors: Vec::new(),
    };
    let mut marked = Vec::new();
    for line in String::from_utf8_lossy(&bytes).lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let Some(info) = v.get("commitInfo") {
            c.timestamp = info.get("timestamp").and_then(Value::as_i64);
            c.operation = info
                .get("operation")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let lf = info.get("lakeflow");
            c.build_id = lf
                .and_then(|l| l.get("build_id"))
                .and_then(Value::as_str)
                .map(str::to_string);
            c.model = lf
                .and_then(|l| l.get("model"))
                .and_then(Value::as_str)
                .map(str::to_string);
        } else if let Some(add) = v.get("add") {
            // A file put back with a deletion vector: rows deleted in place, none added.
            if add.get("deletionVector").is_some_and(|d| !d.is_null()) {
                if let Some(p) = add.get("path").and_then(Value::as_str) {
                    marked.push(super::decode_log_path(p));
                }
                continue;
            }
            c.files_added += 1;
            c.data_change |= add
                .get("dataChange")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let rows = add
                .get("stats")
                .and_then(Value::as_str)
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
                .and_then(|s| s.get("numRecords").and_then(Value::as_u64));
            c.rows_added = match (c.rows_added, rows) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
        } else if let Some(rm) = v.get("remove") {
            c.files_removed += 1;
            c.data_change |= rm
                .get("dataChange")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            if let Some(p) = rm.get("path").and_then(Value::as_str) {
                c.removed.push((
                    super::decode_log_path(p),
                    rm.get("deletionTimestamp").and_then(Value::as_i64),
                ));
            }
            if let Some(d) = rm
                .get("deletionVector")
                .and_then(|d| serde_json::from_value(d.clone()).ok())
                && let Some(file) = dv::file_of(&d)
            {
                c.removed_vectors.push(file);
            }
        }
    }
    let removed: HashSet<&str> = c.removed.iter().map(|(p, _)| p.as_str()).collect();
    let again = marked
        .iter()
        .filter(|p| removed.contains(p.as_str()))
        .count();
    c.files_removed = c.files_removed.saturating_sub(again);
    c.files_marked = marked.len();
    Ok(c)
}

/// The newest `limit` commits, newest first.
pub fn history(table: &Table, limit: Option<usize>) -> Result<Vec<Commit>> {
    if !table.exists()? {
        return Err(delta_error(format!(
            "{} is not a Delta table (no _delta_log)",
            table.location
        )));
    }
    log_versions(table)?
        .into_iter()
        .take(limit.unwrap_or(usize::MAX))
        .map(|v| read_commit(table, v))
        .collect()
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Optimized {
    pub version: Option<i64>,
    pub files_removed: usize,
    pub files_added: usize,
    pub files_before: usize,
    pub files_after: usize,
}

/// Parses sizes like `128MB`, `1GB`, `500000`: at least one byte, and small enough to be a
/// Delta file size (a signed 64-bit number). A value parser of the command line: clap shows
/// the message in its own error line, so it is plain text.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("'{s}' is not a size; use e.g. 128MB");
    let t = s.trim().to_ascii_uppercase();
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
    let unit = t[digits.len()..].trim();
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KB" | "KIB" => 1 << 10,
        "MB" | "MIB" => 1 << 20,
        "GB" | "GIB" => 1 << 30,
        "TB" | "TIB" => 1 << 40,
        _ => return Err(bad()),
    };
    match n.checked_mul(mult) {
        Some(0) => Err(format!(
            "'{s}' is zero; use a size of at least 1 byte, e.g. 128MB"
        )),
        Some(v) if v <= i64::MAX as u64 => Ok(v),
        _ => Err(format!(
            "'{s}' is too large; use a size below 8 EiB, e.g. 1GB"
        )),
    }
}

/// Parses a retention in hours: a finite number, zero or more (a command-line value parser,
/// as [`parse_size`]).
pub fn parse_hours(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(h) if (0.0..=24.0 * 365.0 * 1000.0).contains(&h) => Ok(h),
        Ok(_) => Err(format!(
            "'{s}' is not a retention; use a number of hours from 0 to 8760000, e.g. 168"
        )),
        Err(_) => Err(format!("'{s}' is not a number of hours; use e.g. 168")),
    }
}

/// Rewrites groups of files smaller than `target` (within one partition) into files of about
/// `target` bytes with DuckDB, committed as a rearrangement (`dataChange: false`): readers of
/// the table see the same rows before and after.
pub fn optimize(conn: &Connection, table: &Table, target: u64, tag: &str) -> Result<Optimized> {
    let loaded = table.load(&AsOf::Latest)?;
    let snap = super::snapshot_of(&loaded, &table.location)?;
    // Small files, and files with deleted rows: compaction folds deletion vectors back in.
    let groups =
        snap.files_by_partition(|f| (f.size as u64) < target || f.deletion_vector.is_some());
    let mut bins: Vec<Vec<&DataFile>> = Vec::new();
    for (_, mut files) in groups {
        files.sort_by_key(|f| f.size);
        let mut bin: Vec<&DataFile> = Vec::new();
        let mut size = 0u64;
        for f in files {
            if size + f.size as u64 > target && bin.len() > 1 {
                bins.push(std::mem::take(&mut bin));
                size = 0;
            }
            size += f.size as u64;
            bin.push(f);
        }
        bins.push(bin);
    }
    bins.retain(|b| b.len() > 1 || b.iter().any(|f| f.deletion_vector.is_some()));
    let mut result = Optimized {
        files_before: snap.files.len(),
        files_after: snap.files.len(),
        ..Default::default()
    };
    if bins.is_empty() {
        return Ok(result);
    }
    let mut adds = Vec::new();
    let mut rewritten: HashSet<String> = HashSet::new();
    let size_text = format!("{}KiB", (target / 1024).max(1));
    for bin in &bins {
        let part = Snapshot {
            files: bin.iter().map(|f| (*f).clone()).collect(),
            ..snap.clone()
        };
        let select = table.reader(Some(conn), &part)?;
        let spec = write::CopySpec {
            select_sql: &select,
            columns: &snap.columns,
            partition_by: &snap.partition_columns,
            options: &[],
            target_file_size: &size_text,
            tag,
            data_change: false,
        };
        let written = write::copy_files(conn, table, &spec)
            .inspect_err(|_| write::remove_files_of(table, tag))?;
        let before: u64 = bin.iter().filter_map(|f| f.live_rows()).sum();
        let after: u64 = written.iter().map(|w| w.rows).sum();
        if bin.iter().all(|f| f.rows.is_some()) && before != after {
            write::remove_files_of(table, tag);
            return Err(delta_error(format!(
                "compaction read {after} rows where the log says {before}; nothing was committed"
            )));
        }
        rewritten.extend(bin.iter().map(|f| f.path.clone()));
        adds.extend(written.into_iter().map(|w| w.add));
    }
    let state = loaded.snapshot().map_err(delta_err)?;
    let mut actions: Vec<Action> = state
        .log_data()
        .iter()
        .filter(|f| rewritten.contains(&*f.path()))
        .map(|f| Action::Remove(f.remove_action(false)))
        .collect();
    result.files_removed = actions.len();
    result.files_added = adds.len();
    actions.extend(adds.into_iter().map(Action::Add));
    let version = table
        .commit(
            actions,
            DeltaOperation::Optimize {
                predicate: None,
                target_size: target as i64,
            },
            Some(state as &dyn TableReference),
            &json!({"build_id": tag, "operation": "optimize"}),
        )
        .inspect_err(|_| write::remove_files_of(table, tag))?;
    result.version = Some(version);
    result.files_after = result.files_before - result.files_removed + result.files_added;
    Ok(result)
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Vacuumed {
    pub deleted: Vec<String>,
    /// Unreferenced files kept because they are younger than the retention.
    pub retained: usize,
    /// Files kept because a pinned version (catalog or replica) still reads them.
    pub pinned: usize,
    pub dry_run: bool,
}

/// Deletes data files (`part-*.parquet`) that neither the latest version, nor a version removed
/// within `retain_hours`, nor any of the `pinned` versions (what the catalog and kept replicas
/// read) references. Files younger than the retention are kept too: they may belong to a
/// write in progress. Other files in the folder are never touched.
pub fn vacuum(table: &Table, retain_hours: f64, pinned: &[i64], dry_run: bool) -> Result<Vacuumed> {
    let latest = table.snapshot(&AsOf::Latest)?;
    let cutoff = super::now_millis() - (retain_hours * 3_600_000.0) as i64;
    let mut keep: HashSet<String> = latest.files.iter().map(|f| f.path.clone()).collect();
    keep.extend(dv::files_of(&latest));
    let mut pinned_files = HashSet::new();
    for &v in pinned {
        if v == latest.version {
            continue;
        }
        let snap = table.snapshot(&AsOf::Version(v)).map_err(|e| {
            delta_error(format!(
                "version {v} is pinned by the catalog or a kept replica but cannot be read ({}); nothing was deleted",
                e.message
            ))
        })?;
        pinned_files.extend(dv::files_of(&snap));
        pinned_files.extend(snap.files.into_iter().map(|f| f.path));
    }
    // Files removed within the retention keep time travel to those versions working.
    for v in log_versions(table)? {
        let c = read_commit(table, v)?;
        if c.timestamp.is_some_and(|t| t < cutoff) {
            break;
        }
        for (path, deleted) in c.removed {
            if deleted.is_none_or(|d| d >= cutoff) {
                keep.insert(path);
            }
        }
        keep.extend(c.removed_vectors);
    }
    let store = table.store().clone();
    let metas: Vec<object_store::ObjectMeta> =
        block_on(async move { store.list(None).try_collect().await })?
            .map_err(|e| delta_error(format!("cannot list {}: {e}", table.location)))?;
    let mut out = Vacuumed {
        dry_run,
        ..Default::default()
    };
    let mut doomed = Vec::new();
    for m in metas {
        // A listed path is the file's name as it is (no decoding; see the module comment of
        // `delta`), the form `keep` and `pinned_files` hold too.
        let name = m.location.as_ref().to_string();
        let hidden = name
            .split('/')
            .any(|seg| (seg.starts_with('_') || seg.starts_with('.')) && !seg.contains('='));
        // Only data files are lakeflow's to delete (`part-*.parquet`, the names lakeflow and
        // other Delta writers give them); anything else a user put in the folder stays.
        let data_file = m
            .location
            .filename()
            .is_some_and(|f| f.starts_with("part-") && f.ends_with(".parquet"));
        // Deletion vectors and lakeflow's lists of deleted rows go the same way.
        if (hidden || !data_file) && !dv::is_own_file(&name) {
            continue;
        }
        if keep.contains(&name) {
            continue;
        }
        if pinned_files.contains(&name) {
            out.pinned += 1;
            continue;
        }
        if m.last_modified.timestamp_millis() >= cutoff {
            out.retained += 1;
            continue;
        }
        doomed.push(m.location.clone());
        out.deleted.push(name);
    }
    if !dry_run && !doomed.is_empty() {
        let store = table.store().clone();
        block_on(async move {
            for p in doomed {
                match store.delete(&p).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(delta_error(format!("cannot delete {p}: {e}"))),
                }
            }
            Ok(())
        })??;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("128MB").unwrap(), 128 << 20);
        assert_eq!(parse_size("500").unwrap(), 500);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("99999999999999999999GB").is_err());
        assert!(parse_size("9000000000GB").is_err());
        assert_eq!(parse_hours("0").unwrap(), 0.0);
        for bad in ["-1", "NaN", "inf", "-inf", "1e300", "x"] {
            assert!(parse_hours(bad).is_err(), "{bad}");
        }
    }
}
