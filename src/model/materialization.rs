//! What a model becomes: one variant per materialization, read from its config.

use crate::model::config::{self, Config};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Parquet,
    Csv,
    Json,
    /// A Delta Lake table: Parquet data files and a transaction log.
    Delta,
}

impl FileFormat {
    pub fn from_name(name: &str) -> Option<FileFormat> {
        match name.to_ascii_lowercase().as_str() {
            "parquet" => Some(FileFormat::Parquet),
            "csv" => Some(FileFormat::Csv),
            "json" | "ndjson" => Some(FileFormat::Json),
            "delta" => Some(FileFormat::Delta),
            _ => None,
        }
    }

    /// The format's name, as configs and `_lakeflow.models` spell it.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Delta => "delta",
            other => other.extension(),
        }
    }

    /// The extension of the data files (a Delta table's are Parquet).
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Parquet | FileFormat::Delta => "parquet",
            FileFormat::Csv => "csv",
            FileFormat::Json => "json",
        }
    }

    /// The DuckDB table function that reads files of this format.
    pub fn reader(self) -> &'static str {
        match self {
            FileFormat::Parquet | FileFormat::Delta => "read_parquet",
            FileFormat::Csv => "read_csv_auto",
            FileFormat::Json => "read_json_auto",
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct External {
    pub format: FileFormat,
    pub partition_by: Vec<String>,
    /// Extra `COPY ... TO` options, e.g. `compression zstd`.
    pub options: Vec<(String, String)>,
    /// Delta only: table properties (`delta.checkpointInterval`, ...).
    pub table_properties: std::collections::BTreeMap<String, String>,
    /// Delta only: the size DuckDB rolls over to a new data file at.
    pub target_file_size: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Materialization {
    View,
    Table,
    Ephemeral,
    External(External),
    /// Built in full the first time (and with `--full-refresh`), then only with what the
    /// model's `is_incremental()` branch selects, merged in by `strategy`.
    Incremental(Incremental),
    /// A data test: its query returns the failing rows; nothing is built unless
    /// `store_failures` keeps them.
    Test,
    /// A snapshot: a catalog table keeping every version of each row (dbt's SCD type 2).
    Snapshot(super::snapshot::Snapshot),
    /// A unit test: the model's SQL on fixed inputs against the rows it should give.
    UnitTest(super::unit_test::UnitTest),
}

pub const SUPPORTED: &str = "view, table, ephemeral, external, incremental";

/// How an incremental run's new rows go into the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Added beside the existing rows.
    Append,
    /// Rows whose `unique_key` is among the new rows are replaced by them; the new rows must
    /// have one row per key.
    Merge,
    /// Rows whose `unique_key` is among the new rows are deleted, then all new rows inserted.
    DeleteInsert,
    /// Partitions (`partition_by`) present in the new rows are replaced by them.
    InsertOverwrite,
    /// Built in time windows on `event_time`, each replacing that window's rows.
    Microbatch,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Append => "append",
            Strategy::Merge => "merge",
            Strategy::DeleteInsert => "delete+insert",
            Strategy::InsertOverwrite => "insert_overwrite",
            Strategy::Microbatch => "microbatch",
        }
    }
}

/// What an incremental run does when the new rows' columns differ from the table's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnSchemaChange {
    /// Keep the table's columns: new columns are dropped, missing ones are null.
    Ignore,
    /// Stop with an error naming the differences.
    Fail,
    /// Add new columns to the table (older rows read them as null).
    AppendNewColumns,
    /// Make the table's columns those of the new rows.
    SyncAllColumns,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Incremental {
    /// Files (Parquet or Delta) and a catalog view; `None`: a table inside the catalog.
    pub external: Option<External>,
    pub strategy: Strategy,
    pub unique_key: Vec<String>,
    pub on_schema_change: OnSchemaChange,
    /// `incremental_predicates`: SQL conditions limiting which existing rows a run may
    /// replace (dbt's aliases: `DBT_INTERNAL_DEST` for the table, `DBT_INTERNAL_SOURCE` for
    /// the new rows in `merge`).
    pub predicates: Vec<String>,
    /// `merge` only: the columns a matched row takes from the new row
    /// (`merge_update_columns`), or all but `merge_exclude_columns`; `None`: every column.
    pub update_columns: Option<Vec<String>>,
    pub exclude_columns: Vec<String>,
    /// The `full_refresh` config: `Some(false)` keeps the table through `--full-refresh`.
    pub full_refresh: Option<bool>,
    pub microbatch: Option<super::microbatch::Microbatch>,
}

impl Materialization {
    /// `external_by_default`: whether an incremental model without `format`/`location` writes
    /// files (lakeflow projects) or a catalog table (dbt projects, as dbt-duckdb does).
    pub fn from_config(
        config: &Config,
        external_by_default: bool,
    ) -> Result<Materialization, String> {
        let kind = config::get_str(config, "materialized").unwrap_or("view");
        Ok(match kind {
            "view" => Materialization::View,
            "table" => Materialization::Table,
            "ephemeral" => Materialization::Ephemeral,
            "external" => Materialization::External(External::from_config(config)?),
            "incremental" => {
                Materialization::Incremental(Incremental::from_config(config, external_by_default)?)
            }
            other => {
                return Err(format!(
                    "unknown materialization '{other}' (supported: {SUPPORTED})"
                ));
            }
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Materialization::View => "view",
            Materialization::Table => "table",
            Materialization::Ephemeral => "ephemeral",
            Materialization::External(_) => "external",
            Materialization::Incremental(_) => "incremental",
            Materialization::Test => "test",
            Materialization::Snapshot(_) => "snapshot",
            Materialization::UnitTest(_) => "unit_test",
        }
    }

    /// Where the model's files are described, for external and external incremental models.
    pub fn external(&self) -> Option<&External> {
        match self {
            Materialization::External(e) => Some(e),
            Materialization::Incremental(i) => i.external.as_ref(),
            Materialization::Snapshot(s) => s.external.as_ref(),
            _ => None,
        }
    }
}

impl Incremental {
    /// `incremental_predicates` as SQL to append to a WHERE clause (` and (p1) and (p2)`).
    pub fn predicate_sql(&self) -> String {
        self.predicates
            .iter()
            .map(|p| format!(" and ({p})"))
            .collect()
    }

    /// The columns a `merge` updates in a matched row: `merge_update_columns`, or the table's
    /// columns but `merge_exclude_columns`, or all of them.
    pub fn update_columns<'a>(&self, table: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        match &self.update_columns {
            Some(cols) => cols.clone(),
            None => table
                .into_iter()
                .filter(|n| {
                    !self
                        .exclude_columns
                        .iter()
                        .any(|x| x.eq_ignore_ascii_case(n))
                })
                .cloned()
                .collect(),
        }
    }

    fn from_config(config: &Config, external_by_default: bool) -> Result<Incremental, String> {
        let external = external_by_default
            || config.contains_key("format")
            || config.contains_key("location")
            || config
                .get("options")
                .and_then(Value::as_object)
                .is_some_and(|o| o.contains_key("format"));
        let external = if external {
            Some(External::from_config(config)?)
        } else {
            None
        };
        let unique_key = match config.get("unique_key") {
            Some(Value::String(s)) => s.split(',').map(|k| k.trim().to_string()).collect(),
            other => config::as_string_list(other),
        };
        let unique_key: Vec<String> = unique_key.into_iter().filter(|k| !k.is_empty()).collect();
        let strategy = match config::get_str(config, "incremental_strategy") {
            None if unique_key.is_empty() => Strategy::Append,
            None => Strategy::DeleteInsert,
            Some("append") => Strategy::Append,
            Some("merge") => Strategy::Merge,
            Some("delete+insert") | Some("delete_insert") => Strategy::DeleteInsert,
            Some("insert_overwrite") => Strategy::InsertOverwrite,
            Some("microbatch") => Strategy::Microbatch,
            Some(other) => {
                return Err(format!(
                    "unknown incremental_strategy '{other}' (supported: append, merge, delete+insert, insert_overwrite, microbatch)"
                ));
            }
        };
        let on_schema_change = match config::get_str(config, "on_schema_change") {
            None | Some("ignore") => OnSchemaChange::Ignore,
            Some("fail") => OnSchemaChange::Fail,
            Some("append_new_columns") => OnSchemaChange::AppendNewColumns,
            Some("sync_all_columns") => OnSchemaChange::SyncAllColumns,
            Some(other) => {
                return Err(format!(
                    "unknown on_schema_change '{other}' (supported: ignore, fail, append_new_columns, sync_all_columns)"
                ));
            }
        };
        if matches!(strategy, Strategy::Merge | Strategy::DeleteInsert) && unique_key.is_empty() {
            return Err(format!(
                "incremental_strategy '{}' needs a `unique_key` (one column or a list)",
                strategy.name()
            ));
        }
        let microbatch = if strategy == Strategy::Microbatch {
            if !unique_key.is_empty() {
                return Err("incremental_strategy 'microbatch' replaces each batch's rows on `event_time` and takes no `unique_key`; remove it, or use incremental_strategy 'merge'".into());
            }
            Some(super::microbatch::Microbatch::from_config(config)?)
        } else {
            None
        };
        let predicates = match config
            .get("incremental_predicates")
            .or_else(|| config.get("predicates"))
        {
            Some(Value::String(s)) => vec![s.clone()],
            other => config::as_string_list(other),
        };
        let list = |key: &str| match config.get(key) {
            Some(Value::String(s)) => Some(vec![s.clone()]),
            Some(Value::Null) | None => None,
            other => Some(config::as_string_list(other)),
        };
        let update_columns = list("merge_update_columns").filter(|l| !l.is_empty());
        let exclude_columns = list("merge_exclude_columns").unwrap_or_default();
        if update_columns.is_some() && !exclude_columns.is_empty() {
            return Err(
                "merge_update_columns and merge_exclude_columns cannot both be set; keep one"
                    .into(),
            );
        }
        let full_refresh = config.get("full_refresh").and_then(Value::as_bool);
        match &external {
            Some(e)
                if e.format != FileFormat::Delta
                    && matches!(strategy, Strategy::InsertOverwrite | Strategy::Microbatch) =>
            {
                return Err(format!(
                    "incremental_strategy '{}' needs format 'delta'; {} models can append, merge or delete+insert (set `format: delta`, or another incremental_strategy)",
                    strategy.name(),
                    e.format.name()
                ));
            }
            Some(e) if strategy == Strategy::InsertOverwrite && e.partition_by.is_empty() => {
                return Err("incremental_strategy 'insert_overwrite' replaces partitions; set `partition_by`".into());
            }
            None if strategy == Strategy::InsertOverwrite
                && config::as_string_list(config.get("partition_by")).is_empty() =>
            {
                return Err("incremental_strategy 'insert_overwrite' replaces partitions; set `partition_by`".into());
            }
            _ => {}
        }
        Ok(Incremental {
            external,
            strategy,
            unique_key,
            on_schema_change,
            predicates,
            update_columns,
            exclude_columns,
            full_refresh,
            microbatch,
        })
    }
}

impl External {
    pub fn from_config(config: &Config) -> Result<External, String> {
        let options_map = config
            .get("options")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let format_name = config::get_str(config, "format")
            .or_else(|| options_map.get("format").and_then(Value::as_str))
            .unwrap_or("parquet")
            .to_ascii_lowercase();
        let Some(format) = FileFormat::from_name(&format_name) else {
            return Err(format!(
                "unknown external format '{format_name}' (supported: parquet, delta, csv, json)"
            ));
        };
        let mut partition_by = config::as_string_list(
            config
                .get("partition_by")
                .or(options_map.get("partition_by")),
        );
        if partition_by.len() == 1 && partition_by[0].contains(',') {
            partition_by = partition_by[0]
                .split(',')
                .map(|s| s.trim().to_string())
                .collect();
        }
        let mut options = Vec::new();
        if let Some(delim) = config::get_str(config, "delimiter") {
            options.push((
                "delimiter".to_string(),
                crate::model::relation::quote_literal(delim),
            ));
        }
        for (key, value) in options_map {
            if matches!(key.as_str(), "format" | "partition_by") {
                continue;
            }
            if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("option name '{key}' is not a plain word"));
            }
            let rendered = match value {
                Value::String(s) => crate::model::relation::quote_literal(&s),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => return Err(format!("option '{key}' has an unsupported value {other}")),
            };
            options.push((key, rendered));
        }
        let mut table_properties = std::collections::BTreeMap::new();
        for key in ["table_properties", "tblproperties"] {
            if let Some(map) = config.get(key).and_then(Value::as_object) {
                for (k, v) in map {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    table_properties.insert(k.clone(), v);
                }
            }
        }
        if !table_properties.is_empty() && format != FileFormat::Delta {
            return Err("table_properties apply to format 'delta' only".into());
        }
        let target_file_size = match config.get("target_file_size") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => {
                return Err(format!(
                    "target_file_size {other} is not a size; use e.g. '128MB'"
                ));
            }
        };
        Ok(External {
            format,
            partition_by,
            options,
            table_properties,
            target_file_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: serde_json::Value) -> Config {
        json.as_object().unwrap().clone()
    }

    #[test]
    fn reads_external_options() {
        let m = Materialization::from_config(
            &cfg(serde_json::json!({
                "materialized": "external", "partition_by": "a, b",
                "options": {"compression": "zstd", "row_group_size": 1000}
            })),
            true,
        )
        .unwrap();
        let Materialization::External(e) = m else {
            panic!("not external")
        };
        assert_eq!(e.format, FileFormat::Parquet);
        assert_eq!(e.partition_by, vec!["a", "b"]);
        assert!(e.options.contains(&("compression".into(), "'zstd'".into())));
        assert!(
            e.options
                .contains(&("row_group_size".into(), "1000".into()))
        );
    }

    #[test]
    fn defaults_to_view_and_rejects_unknown() {
        assert_eq!(
            Materialization::from_config(&Config::new(), true).unwrap(),
            Materialization::View
        );
        let err = Materialization::from_config(
            &cfg(serde_json::json!({"materialized": "snapshotz"})),
            true,
        )
        .unwrap_err();
        assert!(err.contains("supported: view, table"), "{err}");
    }

    #[test]
    fn reads_incremental_configs() {
        let m = |j: serde_json::Value, ext: bool| Materialization::from_config(&cfg(j), ext);
        let Ok(Materialization::Incremental(i)) = m(
            serde_json::json!({"materialized": "incremental", "format": "delta", "unique_key": "a, b"}),
            false,
        ) else {
            panic!("not incremental")
        };
        assert_eq!(
            i.strategy,
            Strategy::DeleteInsert,
            "dbt-duckdb's default with a key"
        );
        assert_eq!(i.unique_key, vec!["a", "b"]);
        assert!(i.external.is_some());
        let Ok(Materialization::Incremental(i)) =
            m(serde_json::json!({"materialized": "incremental"}), false)
        else {
            panic!("not incremental")
        };
        assert!(i.external.is_none(), "dbt projects: a catalog table");
        assert_eq!(i.strategy, Strategy::Append);
        let err = m(
            serde_json::json!({"materialized": "incremental", "incremental_strategy": "merge"}),
            true,
        )
        .unwrap_err();
        assert!(
            err.contains("needs format 'delta'") || err.contains("unique_key"),
            "{err}"
        );
        // Parquet folders merge at file granularity; replacing partitions needs Delta.
        assert!(
            m(
                serde_json::json!({"materialized": "incremental", "incremental_strategy": "merge", "unique_key": "id"}),
                true,
            )
            .is_ok()
        );
        let err = m(
            serde_json::json!({"materialized": "incremental", "incremental_strategy": "insert_overwrite", "partition_by": "p"}),
            true,
        )
        .unwrap_err();
        assert!(err.contains("needs format 'delta'"), "{err}");
        let err = m(
            serde_json::json!({"materialized": "incremental", "on_schema_change": "nope"}),
            true,
        )
        .unwrap_err();
        assert!(err.contains("on_schema_change"), "{err}");
    }
}
