//! The Metadata and Protocol actions lakeflow writes: the table's schema as Delta JSON, and the
//! oldest protocol that can hold it (table features only for `timestamp_ntz`).

use super::now_millis;
use deltalake::kernel::{Metadata, Protocol};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub(super) fn schema_json(columns: &[(String, Value)]) -> Value {
    json!({
        "type": "struct",
        "fields": columns.iter().map(|(n, t)| json!({"name": n, "type": t, "nullable": true, "metadata": {}})).collect::<Vec<_>>()
    })
}

pub(super) fn new_metadata(
    schema_string: &str,
    partition_by: &[String],
    configuration: &BTreeMap<String, String>,
    id: Option<String>,
) -> Result<Metadata, String> {
    serde_json::from_value(json!({
        "id": id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        "name": null,
        "description": null,
        "format": {"provider": "parquet", "options": {}},
        "schemaString": schema_string,
        "partitionColumns": partition_by,
        "configuration": configuration,
        "createdTime": now_millis(),
    }))
    .map_err(|e| format!("cannot build Delta metadata: {e}"))
}

fn uses_timestamp_ntz(t: &Value) -> bool {
    match t {
        Value::String(s) => s == "timestamp_ntz",
        Value::Object(o) => o.values().any(uses_timestamp_ntz),
        Value::Array(a) => a.iter().any(uses_timestamp_ntz),
        _ => false,
    }
}

/// The protocol a new table needs: the oldest one, unless a column is a timestamp without
/// time zone, which needs table features (reader 3, writer 7, `timestampNtz`).
pub(super) fn protocol_for(columns: &[(String, Value)]) -> Result<Protocol, String> {
    let ntz = columns.iter().any(|(_, t)| uses_timestamp_ntz(t));
    let value = if ntz {
        json!({"minReaderVersion": 3, "minWriterVersion": 7,
               "readerFeatures": ["timestampNtz"], "writerFeatures": ["timestampNtz"]})
    } else {
        json!({"minReaderVersion": 1, "minWriterVersion": 2})
    };
    serde_json::from_value(value).map_err(|e| format!("cannot build the Delta protocol: {e}"))
}

/// A Protocol action when the new schema needs `timestampNtz` and the table lacks it.
pub(super) fn protocol_upgrade(
    columns: &[(String, Value)],
    old: &Value,
) -> Result<Option<Protocol>, String> {
    if !columns.iter().any(|(_, t)| uses_timestamp_ntz(t)) {
        return Ok(None);
    }
    let has = |key: &str| {
        old.get(key)
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|f| f == "timestampNtz"))
    };
    if has("readerFeatures") && has("writerFeatures") {
        return Ok(None);
    }
    let mut value = old.clone();
    let reader = old
        .get("minReaderVersion")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let writer = old
        .get("minWriterVersion")
        .and_then(Value::as_i64)
        .unwrap_or(2);
    let mut writer_features: Vec<Value> = old
        .get("writerFeatures")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_else(|| legacy_writer_features(writer));
    let mut reader_features: Vec<Value> = old
        .get("readerFeatures")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_else(|| legacy_reader_features(reader));
    writer_features.push(json!("timestampNtz"));
    reader_features.push(json!("timestampNtz"));
    value["minReaderVersion"] = json!(3);
    value["minWriterVersion"] = json!(7);
    value["readerFeatures"] = json!(reader_features);
    value["writerFeatures"] = json!(writer_features);
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| format!("cannot upgrade the Delta protocol: {e}"))
}

fn legacy_writer_features(writer: i64) -> Vec<Value> {
    let mut f = Vec::new();
    if writer >= 2 {
        f.extend([json!("appendOnly"), json!("invariants")]);
    }
    if writer >= 3 {
        f.push(json!("checkConstraints"));
    }
    if writer >= 4 {
        f.extend([json!("changeDataFeed"), json!("generatedColumns")]);
    }
    if writer >= 5 {
        f.push(json!("columnMapping"));
    }
    if writer >= 6 {
        f.push(json!("identityColumns"));
    }
    f
}

fn legacy_reader_features(reader: i64) -> Vec<Value> {
    if reader >= 2 {
        vec![json!("columnMapping")]
    } else {
        Vec::new()
    }
}
