//! Delta Lake tables: DuckDB writes the Parquet data files, the `deltalake` crate commits
//! them to the transaction log, and readers get a plain DuckDB view over the data files of one
//! pinned version, so neither lakeflow's catalog nor its replicas need DuckDB's delta extension.
//!
//! The log is written through `object_store` with conditional puts (`PutMode::Create`): a local
//! file system links the commit into place, S3 uses `If-None-Match: *`. Two writers racing for
//! one version never both win; the loser re-checks for conflicts and retries, or fails. S3
//! stores that ignore the condition are found by a probe before the first commit and refused
//! (see [`Table::check_conditional_puts`]).
//!
//! Paths of data files, one rule: a file is known by its *name*, its path relative to the
//! table as it is on disk or in the bucket (DuckDB's Hive folders included, which escape
//! partition values themselves: `ts=2024-01-01%2010%3A00%3A00/part-….parquet`). The log holds
//! the percent-encoded form of that name; deltalake's `Add`/`Remove` structs and
//! `LogicalFileView::path()` hold the name (their serde encodes on write and decodes on read),
//! so names go in and come out of deltalake as they are. Raw log JSON read here is decoded
//! exactly once ([`decode_log_path`]); an object_store path is a name as it is
//! (`Path::parse`/`as_ref`, never `Path::from`, which would encode again).

pub mod dv;
pub mod incremental;
pub mod maintenance;
mod metadata;
pub mod read;
pub mod sources;
pub mod types;
pub mod write;

pub use read::file_path;

/// The file name a path of the raw log JSON stands for (decoded once; see the module comment).
pub fn decode_log_path(raw: &str) -> String {
    read::percent_decode(raw)
}

use metadata::{metadata_changes, new_metadata, protocol_for, schema_json};

use crate::error::{Error, Result};
use crate::storage::runtime::block_on;
use crate::storage::s3::{self, Remote};
use deltalake::DeltaTableError;
use deltalake::kernel::transaction::{
    CommitBuilder, CommitData, CommitProperties, TableReference, TransactionError,
};
use deltalake::kernel::{Action, Add};
use deltalake::logstore::{CommitOrBytes, LogStoreRef, StorageConfig, default_logstore};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, ObjectStore};
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A Delta table operation failed (log read, snapshot, commit): `LF543`, with `message` as
/// the text shown.
fn delta_error(message: impl Into<String>) -> Error {
    Error::new("LF543", message)
}

/// Any failure of the Delta log client or DuckDB inside a Delta operation, as LF543.
fn delta_err(e: impl std::fmt::Display) -> Error {
    delta_error(e.to_string())
}

/// A Delta table at a location (absolute local path or `s3://bucket/prefix`).
pub struct Table {
    pub location: String,
    log_store: LogStoreRef,
    /// The store rooted at the table, for data files and the log.
    store: Arc<dyn ObjectStore>,
    /// On S3: the check that the store honours conditional puts, made before a commit.
    commit_check: Option<s3::CommitCheck>,
}

/// One data file of a version, as the log lists it.
#[derive(Debug, Clone)]
pub struct DataFile {
    /// Relative to the table root, decoded (the name on disk).
    pub path: String,
    pub size: i64,
    pub rows: Option<u64>,
    pub partition_values: HashMap<String, Option<String>>,
    pub modification_time: i64,
    /// The rows of the file that are deleted (merge-on-read), if any.
    pub deletion_vector: Option<deltalake::kernel::DeletionVectorDescriptor>,
}

impl DataFile {
    /// The rows readers see: the file's rows less those its deletion vector deletes.
    pub fn live_rows(&self) -> Option<u64> {
        let deleted = self
            .deletion_vector
            .as_ref()
            .map_or(0, |d| d.cardinality.max(0) as u64);
        self.rows.map(|r| r.saturating_sub(deleted))
    }
}

/// What readers need of one version: its schema and its active files.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub version: i64,
    /// Columns in table order with their Delta types.
    pub columns: Vec<(String, Value)>,
    pub partition_columns: Vec<String>,
    pub files: Vec<DataFile>,
    pub metadata: Value,
    pub protocol: Value,
}

impl Snapshot {
    /// The files that pass `keep`, grouped by their partition values (in partition column
    /// order; one group for an unpartitioned table).
    pub fn files_by_partition(
        &self,
        keep: impl Fn(&DataFile) -> bool,
    ) -> BTreeMap<Vec<Option<String>>, Vec<&DataFile>> {
        let mut groups: BTreeMap<Vec<Option<String>>, Vec<&DataFile>> = BTreeMap::new();
        for f in self.files.iter().filter(|f| keep(f)) {
            groups.entry(self.partition_key(f)).or_default().push(f);
        }
        groups
    }

    /// The file's partition values, in partition column order.
    pub fn partition_key(&self, f: &DataFile) -> Vec<Option<String>> {
        self.partition_columns
            .iter()
            .map(|c| f.partition_values.get(c).cloned().flatten())
            .collect()
    }
}

/// Which version to read.
#[derive(Debug, Clone, PartialEq)]
pub enum AsOf {
    Latest,
    Version(i64),
    /// RFC 3339 or `YYYY-MM-DD[ HH:MM:SS]`.
    Timestamp(String),
}

impl Table {
    /// Opens the table's storage (a local folder must exist); the table itself may not exist
    /// yet.
    pub fn open(location: &str, remote: Option<&Remote>) -> Result<Table> {
        let location = location.trim_end_matches('/').to_string();
        let mut commit_check = None;
        let (root, store, url): (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>, url::Url) =
            if crate::project::paths::is_remote(&location) {
                let remote = remote.ok_or_else(|| {
                    delta_error(format!(
                        "{location} is on S3, but the target has no s3 secret"
                    ))
                })?;
                let (bucket, key) = s3::split_url(&location)
                    .ok_or_else(|| delta_error(format!("'{location}' is not an s3:// URL")))?;
                let root = remote
                    .client(&location)
                    .map_err(|e| delta_error(e.message.clone()))?;
                commit_check = Some(
                    remote
                        .commit_check(&location)
                        .map_err(|e| delta_error(e.message.clone()))?,
                );
                let store: Arc<dyn ObjectStore> =
                    Arc::new(PrefixStore::new(root.clone(), key.to_string()));
                let url = url::Url::parse(&format!("s3://{bucket}/{key}/"))
                    .map_err(|e| delta_error(format!("'{location}' is not a valid URL: {e}")))?;
                (root, store, url)
            } else {
                let path = std::path::Path::new(&location);
                if !path.is_dir() {
                    return Err(delta_error(format!("{location}: no such directory")));
                }
                let store = LocalFileSystem::new_with_prefix(path)
                    .map_err(|e| delta_error(format!("cannot open {location}: {e}")))?;
                let url = url::Url::from_directory_path(path)
                    .map_err(|_| delta_error(format!("'{location}' is not an absolute path")))?;
                (Arc::new(LocalFileSystem::new()), Arc::new(store), url)
            };
        let log_store = default_logstore(store.clone(), root, &url, &StorageConfig::default());
        Ok(Table {
            location,
            log_store,
            store,
            commit_check,
        })
    }

    /// Refuses to commit to an S3 store that ignores `If-None-Match: *` (probed once per
    /// bucket): there, two writers can both write version N and one's data is silently lost.
    /// The target's `unsafe_delta_commits: true` accepts that (one writer only).
    pub fn check_conditional_puts(&self) -> Result<()> {
        let Some(check) = &self.commit_check else {
            return Ok(());
        };
        let dir = object_store::path::Path::from("_delta_log");
        let supported = block_on(check.supported(self.store.as_ref(), &dir))?.map_err(|e| {
            delta_error(format!(
                "cannot check that {} honours conditional writes before committing to the Delta table {}: {e}",
                check.describe, self.location
            ))
        })?;
        if supported || check.allow_unsafe {
            return Ok(());
        }
        Err(delta_error(format!(
            "the S3 store ({}) ignores conditional writes (If-None-Match: *), so two writers could both commit the same version of the Delta table {} and one would silently lose its data; nothing was committed. Use a store that honours conditional writes (AWS S3, MinIO, recent Garage), or, if only one writer ever writes to these tables, set `unsafe_delta_commits: true` on the target in profiles.yml",
            check.describe, self.location
        )))
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Whether a file under the location is not a Delta data file (`part-*.parquet`, the
    /// names lakeflow and other Delta writers give them, perhaps of a creation in progress).
    pub fn has_other_files(&self) -> Result<bool> {
        use futures::TryStreamExt;
        let store = self.store.clone();
        let metas: Vec<object_store::ObjectMeta> =
            block_on(async move { store.list(None).try_collect().await })?
                .map_err(|e| delta_error(format!("cannot list {}: {e}", self.location)))?;
        Ok(metas.iter().any(|m| {
            !m.location
                .filename()
                .is_some_and(|f| f.starts_with("part-") && f.ends_with(".parquet"))
                && !m.location.as_ref().starts_with("_delta_log")
        }))
    }

    /// Whether a Delta log exists at the location.
    pub fn exists(&self) -> Result<bool> {
        block_on(self.log_store.is_delta_table_location())?.map_err(|e| {
            delta_error(format!(
                "cannot read the Delta log at {}: {e}",
                self.location
            ))
        })
    }

    fn load(&self, as_of: &AsOf) -> Result<DeltaTable> {
        let mut table = DeltaTable::new(self.log_store.clone());
        let loaded = match as_of {
            AsOf::Latest => block_on(table.load())?,
            AsOf::Version(v) => {
                let v = u64::try_from(*v)
                    .map_err(|_| delta_error(format!("version {v} does not exist")))?;
                block_on(table.load_version(v))?
            }
            AsOf::Timestamp(t) => {
                let ts = parse_timestamp(t)?;
                let loaded = block_on(table.load_with_datetime(ts))?;
                // Before the first commit there is nothing to read, not version 0.
                if loaded.is_ok()
                    && let Ok(state) = table.snapshot()
                    && let Some(first) = state.version_timestamp(0)
                    && state.version() == 0
                    && first > ts.timestamp_millis()
                {
                    return Err(delta_error(format!(
                        "the Delta table {} has no version at or before {t}; its first version is from {}",
                        self.location,
                        crate::model::clock::rfc3339(first / 1000)
                    )));
                }
                loaded
            }
        };
        loaded.map_err(|e| {
            let text = e.to_string();
            delta_error(
                if text.contains("Not a Delta table") || text.contains("No files in log segment") {
                    format!("{} is not a Delta table (no _delta_log)", self.location)
                } else {
                    format!("cannot read the Delta table {}: {text}", self.location)
                },
            )
        })?;
        Ok(table)
    }

    /// The schema and active files of a version.
    pub fn snapshot(&self, as_of: &AsOf) -> Result<Snapshot> {
        let table = self.load(as_of)?;
        snapshot_of(&table, &self.location)
    }

    /// A SELECT of exactly the rows of `snap` (see [`read::reader_sql`]), leaving out the rows its
    /// deletion vectors delete. With a connection, the list of deleted rows the SELECT reads
    /// is written when missing (a table lakeflow writes); without one, it is inlined.
    pub fn reader(&self, conn: Option<&duckdb::Connection>, snap: &Snapshot) -> Result<String> {
        let deleted = dv::deleted_relation(self, conn, snap)?;
        read::reader_sql(&self.location, snap, deleted.as_deref())
    }

    /// Replaces the table's content with `files` (written by DuckDB under the table root) as
    /// one new version: Remove of every active file, Add of the new ones, new Metadata when the
    /// schema or partitioning changed. Creates the table when it does not exist.
    ///
    /// A rebuild replaces everything whatever was there, so when another writer committed first
    /// it is retried on top of that writer's version (the last writer wins, the log stays one
    /// line of versions).
    pub fn commit_overwrite(&self, write: &Write) -> Result<i64> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_overwrite(write) {
                Err(CommitError::Lost(_)) if attempt < 10 => {
                    std::thread::sleep(std::time::Duration::from_millis(20 * attempt));
                }
                Err(CommitError::Lost(e) | CommitError::Failed(e)) => return Err(e),
                Ok(v) => return Ok(v),
            }
        }
    }

    fn try_overwrite(&self, write: &Write) -> Result<i64, CommitError> {
        let failed = CommitError::Failed;
        let current = if self.exists().map_err(failed)? {
            Some(self.load(&AsOf::Latest).map_err(failed)?)
        } else {
            None
        };
        let schema_string = schema_json(&write.columns).to_string();
        let mut actions = Vec::new();
        let state = match &current {
            Some(t) => Some(t.snapshot().map_err(|e| failed(delta_err(e)))?),
            None => None,
        };
        let operation = match &state {
            None => {
                let protocol = protocol_for(&write.columns, &write.properties).map_err(failed)?;
                let metadata =
                    new_metadata(&schema_string, &write.partition_by, &write.properties, None)
                        .map_err(failed)?;
                actions.push(Action::Protocol(protocol.clone()));
                actions.push(Action::Metadata(metadata.clone()));
                let operation = DeltaOperation::Create {
                    mode: SaveMode::ErrorIfExists,
                    location: self.log_store.root_url().clone(),
                    protocol,
                    metadata,
                };
                actions.extend(write.files.iter().cloned().map(Action::Add));
                return self.create(actions, operation, &write.info);
            }
            Some(state) => {
                actions.extend(
                    metadata_changes(
                        state,
                        &write.columns,
                        &write.partition_by,
                        &write.properties,
                    )
                    .map_err(failed)?,
                );
                for f in state.log_data().iter() {
                    actions.push(Action::Remove(f.remove_action(true)));
                }
                DeltaOperation::Write {
                    mode: SaveMode::Overwrite,
                    partition_by: (!write.partition_by.is_empty())
                        .then(|| write.partition_by.clone()),
                    predicate: None,
                }
            }
        };
        actions.extend(write.files.iter().cloned().map(Action::Add));
        let base = state.map(|s| s as &dyn TableReference);
        self.try_commit(actions, operation, base, &write.info)
    }

    /// Version 0, written only if nobody else wrote it (deltalake would otherwise stack a racing
    /// creator's files on top of the winner's as version 1).
    fn create(
        &self,
        actions: Vec<Action>,
        operation: DeltaOperation,
        info: &Value,
    ) -> Result<i64, CommitError> {
        self.check_conditional_puts().map_err(CommitError::Failed)?;
        let data = CommitData::new(
            actions,
            operation,
            HashMap::from([("lakeflow".to_string(), info.clone())]),
            Vec::new(),
        );
        let bytes = data.get_bytes().map_err(|e| {
            CommitError::Failed(delta_error(format!("cannot encode the commit: {e}")))
        })?;
        let written = block_on(self.log_store.write_commit_entry(
            0,
            CommitOrBytes::LogBytes(bytes),
            uuid::Uuid::new_v4(),
        ))
        .map_err(CommitError::Failed)?;
        match written {
            Ok(()) => Ok(0),
            Err(TransactionError::VersionAlreadyExists(_)) => {
                Err(CommitError::Lost(delta_error(format!(
                    "another writer created the Delta table {} at the same time",
                    self.location
                ))))
            }
            Err(e) => Err(CommitError::Failed(delta_error(format!(
                "cannot commit to the Delta table {}: {e}",
                self.location
            )))),
        }
    }

    /// Commits `actions` on top of `base`, with deltalake's conflict checks and checkpoints.
    pub fn commit(
        &self,
        actions: Vec<Action>,
        operation: DeltaOperation,
        base: Option<&dyn TableReference>,
        info: &Value,
    ) -> Result<i64> {
        self.try_commit(actions, operation, base, info)
            .map_err(|(CommitError::Lost(e) | CommitError::Failed(e))| e)
    }

    fn try_commit(
        &self,
        actions: Vec<Action>,
        operation: DeltaOperation,
        base: Option<&dyn TableReference>,
        info: &Value,
    ) -> Result<i64, CommitError> {
        self.check_conditional_puts().map_err(CommitError::Failed)?;
        let props = CommitProperties::default()
            .with_metadata([("lakeflow".to_string(), info.clone())])
            .with_max_retries(5);
        let builder: CommitBuilder = props.into();
        let done = block_on(async {
            builder
                .with_actions(actions)
                .build(base, self.log_store.clone(), operation)
                .await
        })
        .map_err(CommitError::Failed)?;
        match done {
            Ok(done) => Ok(done.version() as i64),
            Err(DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(c),
            }) => Err(CommitError::Lost(delta_error(format!(
                "another writer committed to the Delta table {} at the same time, and the two changes conflict ({c}); nothing of this run was committed — rerun it",
                self.location
            )))),
            Err(e) => Err(CommitError::Failed(delta_error(format!(
                "cannot commit to the Delta table {}: {e}",
                self.location
            )))),
        }
    }
}

/// Why a commit did not happen: another writer won the version (worth a retry for a full
/// rewrite), or anything else.
#[derive(Debug)]
enum CommitError {
    Lost(Error),
    Failed(Error),
}

/// Drops a temporary table when dropped.
pub(super) struct DropTemp<'a>(pub &'a duckdb::Connection, pub &'a str);

impl Drop for DropTemp<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .execute_batch(&format!("drop table if exists temp.main.{}", self.1));
    }
}

/// What a model write hands to the log.
pub struct Write {
    pub columns: Vec<(String, Value)>,
    pub partition_by: Vec<String>,
    pub files: Vec<Add>,
    pub properties: BTreeMap<String, String>,
    pub info: Value,
}

fn snapshot_of(table: &DeltaTable, location: &str) -> Result<Snapshot> {
    let state = table.snapshot().map_err(delta_err)?;
    let metadata = serde_json::to_value(TableReference::metadata(state)).map_err(delta_err)?;
    let protocol = serde_json::to_value(TableReference::protocol(state)).map_err(delta_err)?;
    for feature in protocol
        .get("readerFeatures")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if matches!(feature, "columnMapping" | "v2Checkpoint") {
            let used = match feature {
                "columnMapping" => metadata
                    .pointer("/configuration/delta.columnMapping.mode")
                    .and_then(Value::as_str)
                    .is_some_and(|m| m != "none"),
                _ => false,
            };
            if used {
                return Err(delta_error(format!(
                    "the Delta table {location} uses the reader feature '{feature}', which lakeflow cannot read without DuckDB's delta extension; read it with external_location: \"delta_scan('{location}')\" instead"
                )));
            }
        }
    }
    let schema: Value = metadata
        .get("schemaString")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| delta_error(format!("the Delta table {location} has no readable schema")))?;
    let columns = schema
        .get("fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                f.get("type").cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    let partition_columns = metadata
        .get("partitionColumns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let files = state
        .log_data()
        .iter()
        .map(|f| DataFile {
            path: f.path().to_string(),
            size: f.size(),
            rows: f.num_records().map(|n| n as u64),
            partition_values: f.partition_values_map(),
            modification_time: f.modification_time(),
            deletion_vector: f.deletion_vector_descriptor(),
        })
        .collect();
    Ok(Snapshot {
        version: state.version() as i64,
        columns,
        partition_columns,
        files,
        metadata,
        protocol,
    })
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn parse_timestamp(t: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    let t = t.trim();
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&chrono::Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(n.and_utc());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(delta_error(format!(
        "as_of_timestamp '{t}' is not a timestamp; use e.g. '2026-01-31T12:00:00Z' or '2026-01-31 12:00:00' (UTC)"
    )))
}

/// `location@version`: how a model's pinned Delta version is recorded.
pub fn pin(location: &str, version: i64) -> String {
    format!("{location}@v{version}")
}

pub fn parse_pin(pinned: &str) -> Option<(&str, i64)> {
    let (loc, v) = pinned.rsplit_once("@v")?;
    Some((loc, v.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_round_trip() {
        assert_eq!(parse_pin(&pin("s3://b/t@x", 12)), Some(("s3://b/t@x", 12)));
        assert_eq!(parse_pin("/lake/t.parquet"), None);
    }
}
