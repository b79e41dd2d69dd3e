//! What a model becomes: one variant per materialization, read from its config.

use crate::project::config::{self, Config};
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
    /// A data test: its query returns the failing rows; nothing is built unless
    /// `store_failures` keeps them.
    Test,
}

pub const SUPPORTED: &str = "view, table, ephemeral, external";

impl Materialization {
    pub fn from_config(config: &Config) -> Result<Materialization, String> {
        let kind = config::get_str(config, "materialized").unwrap_or("view");
        Ok(match kind {
            "view" => Materialization::View,
            "table" => Materialization::Table,
            "ephemeral" => Materialization::Ephemeral,
            "external" => Materialization::External(External::from_config(config)?),
            "incremental" => {
                return Err("materialized='incremental' is not supported yet; use 'external' or 'table' and rebuild fully".into());
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
            Materialization::Test => "test",
        }
    }
}

impl External {
    fn from_config(config: &Config) -> Result<External, String> {
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
                crate::render::relation::quote_literal(delim),
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
                Value::String(s) => crate::render::relation::quote_literal(&s),
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
        let m = Materialization::from_config(&cfg(serde_json::json!({
            "materialized": "external", "partition_by": "a, b",
            "options": {"compression": "zstd", "row_group_size": 1000}
        })))
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
            Materialization::from_config(&Config::new()).unwrap(),
            Materialization::View
        );
        let err =
            Materialization::from_config(&cfg(serde_json::json!({"materialized": "snapshotz"})))
                .unwrap_err();
        assert!(err.contains("supported: view, table"), "{err}");
    }
}
