//! The catalog .duckdb file: one writer at a time, schemas, and views over external models.

use crate::error::{Error, Result};
use crate::execute::materialization::{External, FileFormat};
use crate::model::relation::{Relation, quote_ident, quote_literal};
use duckdb::Connection;
use fs2::FileExt;
use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

/// Held for the whole run: a second writer of the same catalog is refused, naming this one.
pub struct CatalogLock {
    file: File,
}

impl CatalogLock {
    pub fn acquire(catalog: &str, command: &str) -> Result<Option<CatalogLock>> {
        if catalog == ":memory:" {
            return Ok(None);
        }
        let path = PathBuf::from(format!("{catalog}.lock"));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("LF501", "create folder", parent, e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("LF501", "open lock file", &path, e))?;
        if file.try_lock_exclusive().is_err() {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "another lakeflow process"
            } else {
                holder
            };
            return Err(Error::new("LF502", format!("catalog {catalog} is being written by {holder}"))
                .hint("only one lakeflow run may write a catalog at a time; wait for it to finish (readers: use a published replica)"));
        }
        let info = format!(
            "pid {} ({command}, started {})",
            std::process::id(),
            crate::report::now_rfc3339()
        );
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = file.write_all(info.as_bytes());
        let _ = file.flush();
        Ok(Some(CatalogLock { file }))
    }
}

impl Drop for CatalogLock {
    fn drop(&mut self) {
        // The holder line goes with the holder; the OS releases the lock itself.
        let _ = self.file.set_len(0);
    }
}

pub fn ensure_schemas<'a>(
    conn: &Connection,
    schemas: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    let mut seen = HashSet::new();
    for s in schemas {
        if seen.insert(s) {
            conn.execute_batch(&format!("create schema if not exists {}", quote_ident(s)))
                .map_err(|e| {
                    Error::new(
                        "LF503",
                        format!("cannot create schema {s} in the catalog: {e}"),
                    )
                })?;
        }
    }
    Ok(())
}

/// Relations that exist in the catalog now, as (schema, name).
pub fn existing_relations(conn: &Connection) -> Result<HashSet<(String, String)>> {
    let mut stmt = conn
        .prepare("select table_schema, table_name from information_schema.tables")
        .map_err(|e| Error::new("LF504", format!("cannot read the catalog: {e}")))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(|e| Error::new("LF504", format!("cannot read the catalog: {e}")))?;
    Ok(rows.filter_map(|r| r.ok()).collect())
}

/// The SQL that reads files of `format` at `path` (a model's location, or a version of it).
pub fn reader_sql(path: &str, format: FileFormat, partitioned: bool) -> String {
    let scan = crate::storage::scan_path(path, partitioned, format.extension());
    if partitioned {
        format!(
            "{}({}, hive_partitioning = true, union_by_name = true)",
            format.reader(),
            quote_literal(&scan)
        )
    } else {
        format!("{}({})", format.reader(), quote_literal(&scan))
    }
}

/// The view of an incremental Parquet model: every Parquet file under its folder (Hive-
/// partitioned when `partitioned`), columns matched by name across files; with `columns`, only
/// those (columns dropped by `on_schema_change: sync_all_columns` stay in older files).
pub fn folder_view_sql(
    relation: &Relation,
    path: &str,
    partitioned: bool,
    columns: Option<&[String]>,
) -> String {
    let scan = crate::storage::scan_path(path, true, "parquet");
    let hive = if partitioned {
        ", hive_partitioning = true"
    } else {
        ", hive_partitioning = false"
    };
    let select = match columns {
        Some(cols) => cols
            .iter()
            .map(|c| crate::model::relation::quote_ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        None => "*".to_string(),
    };
    let reader = format!(
        "(select {select} from read_parquet({}, union_by_name = true{hive}))",
        quote_literal(&scan)
    );
    crate::execute::templates::render(
        "external_view",
        &[("relation", relation.to_string()), ("reader", reader)],
    )
}

pub fn external_view_sql(relation: &Relation, path: &str, external: &External) -> String {
    let reader = reader_sql(path, external.format, !external.partition_by.is_empty());
    crate::execute::templates::render(
        "external_view",
        &[("relation", relation.to_string()), ("reader", reader)],
    )
}
