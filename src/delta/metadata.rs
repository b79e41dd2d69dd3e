//! The Metadata and Protocol actions lakeflow writes: the table's schema as Delta JSON, and the
//! oldest protocol that can hold it (table features only for `timestamp_ntz` and for deletion
//! vectors).

use super::{delta_err, delta_error, now_millis};
use crate::error::Result;
use deltalake::kernel::transaction::TableReference;
use deltalake::kernel::{Action, Metadata, Protocol};
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
) -> Result<Metadata> {
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
    .map_err(|e| delta_error(format!("cannot build Delta metadata: {e}")))
}

/// The Protocol and Metadata actions that take `state` to `columns`, `partition_by` and the
/// table `properties` (none when nothing changes).
pub(super) fn metadata_changes(
    state: &deltalake::table::state::DeltaTableState,
    columns: &[(String, Value)],
    partition_by: &[String],
    properties: &BTreeMap<String, String>,
) -> Result<Vec<Action>> {
    let old = serde_json::to_value(TableReference::metadata(state)).map_err(delta_err)?;
    let old_protocol = serde_json::to_value(TableReference::protocol(state)).map_err(delta_err)?;
    let mut config: BTreeMap<String, String> = old
        .get("configuration")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let config_before = config.clone();
    config.extend(properties.clone());
    let same_schema = old
        .get("schemaString")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        == Some(schema_json(columns));
    let same_partitions = old.get("partitionColumns") == Some(&json!(partition_by));
    let mut actions = Vec::new();
    let schema_before = old
        .get("schemaString")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some(p) = protocol_upgrade(&features(columns, &config), &old_protocol, schema_before)? {
        actions.push(Action::Protocol(p));
    }
    if !same_schema || !same_partitions || config != config_before {
        let id = old.get("id").and_then(Value::as_str).map(str::to_string);
        let schema_string = schema_json(columns).to_string();
        actions.push(Action::Metadata(new_metadata(
            &schema_string,
            partition_by,
            &config,
            id,
        )?));
    }
    Ok(actions)
}

fn uses_timestamp_ntz(t: &Value) -> bool {
    match t {
        Value::String(s) => s == "timestamp_ntz",
        Value::Object(o) => o.values().any(uses_timestamp_ntz),
        Value::Array(a) => a.iter().any(uses_timestamp_ntz),
        _ => false,
    }
}

/// The table features `columns` and the table `properties` need: `timestampNtz` for a
/// timestamp without time zone, `deletionVectors` when the table allows deletion vectors.
fn features(
    columns: &[(String, Value)],
    properties: &BTreeMap<String, String>,
) -> Vec<&'static str> {
    let mut out = Vec::new();
    if columns.iter().any(|(_, t)| uses_timestamp_ntz(t)) {
        out.push("timestampNtz");
    }
    if super::dv::enabled(properties) {
        out.push("deletionVectors");
    }
    out
}

/// The protocol a new table needs: the oldest one, unless it needs table features (reader 3,
/// writer 7, only the features it uses).
pub(super) fn protocol_for(
    columns: &[(String, Value)],
    properties: &BTreeMap<String, String>,
) -> Result<Protocol> {
    let needed = features(columns, properties);
    let value = if needed.is_empty() {
        json!({"minReaderVersion": 1, "minWriterVersion": 2})
    } else {
        json!({"minReaderVersion": 3, "minWriterVersion": 7,
               "readerFeatures": needed, "writerFeatures": needed})
    };
    serde_json::from_value(value)
        .map_err(|e| delta_error(format!("cannot build the Delta protocol: {e}")))
}

/// A Protocol action when the table lacks one of the `needed` features. A table on a legacy
/// protocol moves to table features listing what its old versions allowed, less `invariants`
/// unless its schema uses them (lakeflow writes none, and the Delta writer refuses tables that
/// list it).
fn protocol_upgrade(needed: &[&str], old: &Value, schema: &str) -> Result<Option<Protocol>> {
    let has = |key: &str, feature: &str| {
        old.get(key)
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|f| f == feature))
    };
    if needed
        .iter()
        .all(|f| has("readerFeatures", f) && has("writerFeatures", f))
    {
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
        .unwrap_or_else(|| legacy_writer_features(writer, schema.contains("delta.invariants")));
    let mut reader_features: Vec<Value> = old
        .get("readerFeatures")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_else(|| legacy_reader_features(reader));
    for feature in needed {
        if !writer_features.iter().any(|f| f == feature) {
            writer_features.push(json!(feature));
        }
        if !reader_features.iter().any(|f| f == feature) {
            reader_features.push(json!(feature));
        }
    }
    value["minReaderVersion"] = json!(3);
    value["minWriterVersion"] = json!(7);
    value["readerFeatures"] = json!(reader_features);
    value["writerFeatures"] = json!(writer_features);
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| delta_error(format!("cannot upgrade the Delta protocol: {e}")))
}

fn legacy_writer_features(writer: i64, invariants: bool) -> Vec<Value> {
    let mut f = Vec::new();
    if writer >= 2 {
        f.push(json!("appendOnly"));
        if invariants {
            f.push(json!("invariants"));
        }
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
