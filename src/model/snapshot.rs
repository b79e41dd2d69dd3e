//! A snapshot's configuration (dbt's SCD type 2): how a changed row is recognised, by which
//! key, what happens to rows gone from the source, and the names of the columns it keeps.

use super::config::{self, Config};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Snapshot {
    pub strategy: SnapshotStrategy,
    /// The key columns (expressions); `unique_key` as a list keeps them apart.
    pub unique_key: Vec<String>,
    pub key_is_list: bool,
    pub hard_deletes: HardDeletes,
    pub columns: MetaColumns,
    /// `dbt_valid_to_current`: what current rows hold in `dbt_valid_to` (else null).
    pub valid_to_current: Option<String>,
    /// Stored as files (`format: parquet` or `delta`, `location`) instead of a catalog table.
    pub external: Option<super::materialization::External>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotStrategy {
    /// A row changed when its `updated_at` is later than the snapshot's `dbt_valid_from`.
    Timestamp { updated_at: String },
    /// A row changed when one of `cols` (all the query's columns when `None`) differs; the
    /// time is `updated_at` if given, else the snapshot's run time.
    Check {
        cols: Option<Vec<String>>,
        updated_at: Option<String>,
    },
}

/// What a snapshot does with current rows whose key left the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HardDeletes {
    Ignore,
    /// Close them (`dbt_valid_to` set to the run time).
    Invalidate,
    /// Close them and add a row marking the deletion (`dbt_is_deleted` 'True').
    NewRecord,
}

/// The names of the columns dbt adds (`snapshot_meta_column_names`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MetaColumns {
    pub valid_from: String,
    pub valid_to: String,
    pub scd_id: String,
    pub updated_at: String,
    pub is_deleted: String,
}

impl Snapshot {
    pub fn from_config(c: &Config) -> Result<Snapshot, String> {
        let (unique_key, key_is_list) = match c.get("unique_key") {
            Some(Value::String(s)) if !s.trim().is_empty() => (vec![s.trim().to_string()], false),
            Some(Value::Array(items)) if !items.is_empty() => {
                (config::as_string_list(c.get("unique_key")), true)
            }
            _ => {
                return Err("a snapshot needs `unique_key` (a column or a list of columns)".into());
            }
        };
        let strategy = match config::get_str(c, "strategy") {
            Some("timestamp") => SnapshotStrategy::Timestamp {
                updated_at: config::get_str(c, "updated_at")
                    .ok_or("the timestamp strategy needs `updated_at` (the column that says when a row changed)")?
                    .to_string(),
            },
            Some("check") => SnapshotStrategy::Check {
                cols: match c.get("check_cols") {
                    Some(Value::String(s)) if s == "all" => None,
                    Some(Value::Array(_)) => Some(config::as_string_list(c.get("check_cols"))),
                    _ => return Err("the check strategy needs `check_cols`: 'all' or a list of columns".into()),
                },
                updated_at: config::get_str(c, "updated_at").map(str::to_string),
            },
            Some(other) => {
                return Err(format!(
                    "unknown snapshot strategy '{other}' (supported: timestamp, check)"
                ));
            }
            None => return Err("a snapshot needs `strategy`: timestamp or check".into()),
        };
        // `hard_deletes` (dbt 1.9), else the older `invalidate_hard_deletes` flag.
        let hard_deletes = match config::get_str(c, "hard_deletes") {
            Some("invalidate") => HardDeletes::Invalidate,
            Some("new_record") => HardDeletes::NewRecord,
            Some("ignore") => HardDeletes::Ignore,
            Some(other) => {
                return Err(format!(
                    "unknown hard_deletes '{other}' (supported: ignore, invalidate, new_record)"
                ));
            }
            None if config::get_bool(c, "invalidate_hard_deletes") == Some(true) => {
                HardDeletes::Invalidate
            }
            None => HardDeletes::Ignore,
        };
        let names = c.get("snapshot_meta_column_names");
        let name = |key: &str| {
            names
                .and_then(|n| n.get(key))
                .and_then(Value::as_str)
                .unwrap_or(key)
                .to_string()
        };
        Ok(Snapshot {
            strategy,
            unique_key,
            key_is_list,
            hard_deletes,
            columns: MetaColumns {
                valid_from: name("dbt_valid_from"),
                valid_to: name("dbt_valid_to"),
                scd_id: name("dbt_scd_id"),
                updated_at: name("dbt_updated_at"),
                is_deleted: name("dbt_is_deleted"),
            },
            valid_to_current: config::get_str(c, "dbt_valid_to_current").map(str::to_string),
            external: external(c)?,
        })
    }
}

/// A snapshot with `format` or `location` keeps its versions as Parquet or Delta files.
fn external(c: &Config) -> Result<Option<super::materialization::External>, String> {
    if !(c.contains_key("format") || c.contains_key("location")) {
        return Ok(None);
    }
    let ext = super::materialization::External::from_config(c)?;
    use super::materialization::FileFormat;
    if !matches!(ext.format, FileFormat::Parquet | FileFormat::Delta) {
        return Err(format!(
            "a snapshot is stored as parquet or delta, not {}",
            ext.format.name()
        ));
    }
    Ok(Some(ext))
}
