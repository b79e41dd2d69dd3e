//! Writing a model as a Delta table: DuckDB writes the data files (in parallel, Hive-
//! partitioned, rolled over at a target size) and reports each file's statistics; the log
//! then gets one commit that swaps the old files for the new ones.

use super::types;
use super::{Table, Write, delta_err, delta_error};
use crate::error::Result;
use crate::model::materialization::External;
use crate::model::relation::{quote_ident, quote_literal};
use deltalake::kernel::Add;
use duckdb::Connection;
use duckdb::types::Value as DuckValue;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Value, json};
use std::collections::HashMap;

/// DuckDB's data file size before it starts the next file.
pub const DEFAULT_TARGET_FILE_SIZE: &str = "256MB";

/// The Parquet page format of Delta data files unless a model's options say otherwise.
pub const DEFAULT_PARQUET_VERSION: &str = "v2";

/// The columns a query yields, mapped to Delta, and the SELECT list that casts the ones Delta
/// cannot store as they are.
pub struct Columns {
    pub delta: Vec<(String, Value)>,
    pub select: Vec<String>,
}

pub fn columns(conn: &Connection, sql: &str) -> Result<Columns> {
    let mut stmt = conn
        .prepare(&format!("describe select * from ({sql}) as lf_describe"))
        .map_err(delta_err)?;
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(delta_err)?
        .collect::<Result<_, _>>()
        .map_err(delta_err)?;
    let mut delta = Vec::new();
    let mut select = Vec::new();
    for (name, type_name) in rows {
        let parsed = types::parse(&type_name)
            .map_err(|e| delta_error(format!("column {name}: {}", e.message)))?;
        let (delta_type, cast) = types::to_delta(&parsed)
            .map_err(|e| delta_error(format!("column {name}: {}", e.message)))?;
        select.push(if cast == parsed {
            quote_ident(&name)
        } else {
            format!(
                "cast({} as {}) as {}",
                quote_ident(&name),
                types::duck_sql(&cast),
                quote_ident(&name)
            )
        });
        delta.push((name, delta_type));
    }
    Ok(Columns { delta, select })
}

/// One data file DuckDB wrote.
pub struct Written {
    pub add: Add,
    pub rows: u64,
}

/// What to write into a table: the query, its columns (Delta types), partitioning, extra
/// `COPY` options, the size at which files roll over, and the tag file names start with.
pub struct CopySpec<'a> {
    pub select_sql: &'a str,
    pub columns: &'a [(String, Value)],
    pub partition_by: &'a [String],
    pub options: &'a [(String, String)],
    pub target_file_size: &'a str,
    pub tag: &'a str,
    /// False for rearrangements (optimize) that change no row.
    pub data_change: bool,
}

impl<'a> CopySpec<'a> {
    /// A model's write: its partitioning, `COPY` options and file size, new data.
    pub fn for_model(
        select_sql: &'a str,
        columns: &'a [(String, Value)],
        ext: &'a External,
        tag: &'a str,
    ) -> CopySpec<'a> {
        CopySpec {
            select_sql,
            columns,
            partition_by: &ext.partition_by,
            options: &ext.options,
            target_file_size: ext
                .target_file_size
                .as_deref()
                .unwrap_or(DEFAULT_TARGET_FILE_SIZE),
            tag,
            data_change: true,
        }
    }
}

/// Runs `COPY (select) TO table root` and returns an Add action per file written. The files'
/// names start with `part-{tag}-` so that a failed write can be cleaned up.
pub fn copy_files(conn: &Connection, table: &Table, spec: &CopySpec) -> Result<Vec<Written>> {
    let CopySpec {
        select_sql,
        columns,
        partition_by,
        options,
        target_file_size,
        tag,
        data_change,
    } = *spec;
    let mut opts = vec![
        "format parquet".to_string(),
        "return_stats true".to_string(),
        "append true".to_string(),
        format!(
            "filename_pattern {}",
            quote_literal(&format!("part-{tag}-{{uuid}}"))
        ),
    ];
    // DuckDB writes one file per partition; it rolls files over only when not partitioning.
    if partition_by.is_empty() {
        opts.push(format!(
            "file_size_bytes {}",
            quote_literal(target_file_size)
        ));
    } else {
        let cols: Vec<String> = partition_by.iter().map(|c| quote_ident(c)).collect();
        opts.push(format!("partition_by ({})", cols.join(", ")));
    }
    // Data page v2 with DuckDB's newer encodings: about a quarter faster to write and a third
    // smaller than v1 on typical tables, and read by every Delta reader tested here (Python
    // deltalake, DuckDB's delta extension). `options: {parquet_version: v1}` keeps v1.
    if !options
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("parquet_version"))
    {
        opts.push(format!("parquet_version {}", DEFAULT_PARQUET_VERSION));
    }
    for (k, v) in options {
        if !matches!(k.as_str(), "format" | "partition_by" | "per_thread_output") {
            opts.push(format!("{k} {v}"));
        }
    }
    let stmt = format!(
        "copy ({select_sql}) to {} ({})",
        quote_literal(&table.location),
        opts.join(", ")
    );
    let mut prepared = conn.prepare(&stmt).map_err(delta_err)?;
    let mut rows = prepared.query([]).map_err(delta_err)?;
    let mut out = Vec::new();
    let root = format!("{}/", table.location);
    let now = super::now_millis();
    let data_columns: Vec<(String, Value)> = columns
        .iter()
        .filter(|(n, _)| !partition_by.contains(n))
        .cloned()
        .collect();
    while let Some(row) = rows.next().map_err(delta_err)? {
        let filename: String = row.get(0).map_err(delta_err)?;
        let count: i64 = row.get(1).map_err(delta_err)?;
        let size: i64 = row.get(2).map_err(delta_err)?;
        let stats = string_map_of_maps(row.get::<_, DuckValue>(4).ok());
        let partition_keys = string_map(row.get::<_, DuckValue>(5).ok());
        let rel = filename
            .strip_prefix(&root)
            .ok_or_else(|| {
                delta_error(format!(
                    "DuckDB wrote {filename}, outside the table {}",
                    table.location
                ))
            })?
            .to_string();
        let partition_values: HashMap<String, Option<String>> = partition_by
            .iter()
            .map(|c| (c.clone(), partition_keys.get(c).cloned().flatten()))
            .collect();
        let rows_written = count.max(0) as u64;
        out.push(Written {
            rows: rows_written,
            add: Add {
                path: rel,
                partition_values,
                size,
                modification_time: now,
                data_change,
                stats: Some(types::add_stats(rows_written, &data_columns, &stats)),
                ..Default::default()
            },
        });
    }
    Ok(out)
}

fn text(v: &DuckValue) -> Option<String> {
    match v {
        DuckValue::Text(s) => Some(s.clone()),
        DuckValue::Null => None,
        other => Some(format!("{other:?}")),
    }
}

fn string_map(v: Option<DuckValue>) -> HashMap<String, Option<String>> {
    match v {
        Some(DuckValue::Map(m)) => m
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, text(v))))
            .collect(),
        _ => HashMap::new(),
    }
}

fn string_map_of_maps(v: Option<DuckValue>) -> HashMap<String, HashMap<String, String>> {
    match v {
        Some(DuckValue::Map(m)) => m
            .iter()
            .filter_map(|(k, v)| {
                let inner = string_map(Some(v.clone()))
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v?)))
                    .collect();
                Some((text(k)?, inner))
            })
            .collect(),
        _ => HashMap::new(),
    }
}

/// Deletes the given data files (as `copy_files` named them: their file names are unique).
pub fn remove_files<'a>(table: &Table, paths: impl Iterator<Item = &'a str>) {
    let names: std::collections::HashSet<String> = paths
        .filter_map(|p| p.rsplit('/').next().map(str::to_string))
        .collect();
    if names.is_empty() {
        return;
    }
    let store = table.store().clone();
    let _ = super::block_on(async move {
        use futures::TryStreamExt;
        let metas: Vec<object_store::ObjectMeta> =
            store.list(None).try_collect().await.unwrap_or_default();
        for m in metas {
            if m.location.filename().is_some_and(|f| names.contains(f)) {
                let _ = store.delete(&m.location).await;
            }
        }
    });
}

/// Deletes the data files a failed write of `tag` left under the table root.
pub fn remove_files_of(table: &Table, tag: &str) {
    let marker = format!("part-{tag}-");
    let store = table.store().clone();
    let _ = super::block_on(async move {
        use futures::TryStreamExt;
        let metas: Vec<object_store::ObjectMeta> =
            store.list(None).try_collect().await.unwrap_or_default();
        for m in metas {
            if m.location
                .filename()
                .is_some_and(|f| f.starts_with(&marker))
            {
                let _ = store.delete(&m.location).await;
            }
        }
    });
}

/// After a failed commit: deletes the files written with `tag`, unless the commit landed and
/// failed only afterwards (e.g. writing a checkpoint), in which case the table owns them.
pub fn cleanup_unless_committed(table: &Table, tag: &str) {
    let marker = format!("part-{tag}-");
    let landed = table.snapshot(&super::AsOf::Latest).is_ok_and(|s| {
        s.files.iter().any(|f| {
            f.path
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with(&marker))
        })
    });
    if !landed {
        remove_files_of(table, tag);
    }
}

/// What writing a model produced.
pub struct ModelWrite {
    pub rows: u64,
    pub snapshot: super::Snapshot,
}

/// Writes the query `sql` as the new version of the Delta table at `location`.
pub fn write_model(
    conn: &Connection,
    table: &Table,
    sql: &str,
    ext: &External,
    build_id: &str,
    model: &str,
) -> Result<ModelWrite> {
    table.check_conditional_puts()?;
    // Files of another format (an earlier build of this model as Parquet?) would sit in the
    // table's folder unreferenced, and a later vacuum would delete them: refuse instead.
    if !table.exists()? && table.has_other_files()? {
        return Err(delta_error(format!(
            "{} already holds files but no Delta table (_delta_log); move them away or give the model another `location`",
            table.location
        )));
    }
    let cols = columns(conn, sql)?;
    for p in &ext.partition_by {
        match cols.delta.iter().find(|(n, _)| n == p) {
            None => {
                return Err(delta_error(format!(
                    "partition column {p} is not a column of the model"
                )));
            }
            Some((_, t)) if !t.is_string() => {
                return Err(delta_error(format!(
                    "partition column {p} has a nested type; Delta partitions by simple columns only"
                )));
            }
            _ => {}
        }
    }
    let select_sql = format!("select {} from ({sql}) as lf_model", cols.select.join(", "));
    let spec = CopySpec::for_model(&select_sql, &cols.delta, ext, build_id);
    let written = match copy_files(conn, table, &spec) {
        Ok(w) => w,
        Err(e) => {
            remove_files_of(table, build_id);
            return Err(e);
        }
    };
    let rows: u64 = written.iter().map(|w| w.rows).sum();
    let files = written.len();
    let write = Write {
        columns: cols.delta.clone(),
        partition_by: ext.partition_by.clone(),
        files: written.into_iter().map(|w| w.add).collect(),
        properties: ext.table_properties.clone(),
        info: json!({"build_id": build_id, "model": model, "rows": rows, "files": files}),
    };
    let version = table
        .commit_overwrite(&write)
        .inspect_err(|_| cleanup_unless_committed(table, build_id))?;
    let snapshot = super::Snapshot {
        version,
        columns: write.columns,
        partition_columns: write.partition_by,
        files: write
            .files
            .iter()
            .map(|a| super::DataFile {
                path: a.path.clone(),
                size: a.size,
                rows: None,
                partition_values: a.partition_values.clone(),
                deletion_vector: None,
                modification_time: a.modification_time,
            })
            .collect(),
        metadata: Value::Null,
        protocol: Value::Null,
    };
    Ok(ModelWrite { rows, snapshot })
}
