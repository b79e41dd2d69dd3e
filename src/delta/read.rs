//! Reading one version of a Delta table with plain DuckDB: a SELECT over exactly the data
//! files of that version, in the table's column order, partition values typed from the schema.

use super::{DataFile, Snapshot, delta_error, types};
use crate::error::Result;
use crate::model::relation::{quote_ident, quote_literal};
use std::collections::HashMap;

/// The absolute path of a data file, for DuckDB.
pub fn file_path(location: &str, rel: &str) -> String {
    if rel.contains("://") {
        return rel.strip_prefix("file://").unwrap_or(rel).to_string();
    }
    if rel.starts_with('/') {
        return rel.to_string();
    }
    format!("{}/{}", location.trim_end_matches('/'), rel)
}

/// A SELECT that reads exactly the rows of `snap`, with the table's columns in order and
/// partition columns typed from the schema. Files with a deletion vector are read with their
/// row numbers, less the rows of `deleted` (a relation of `lf_file`, `file_row_number`; see
/// [`super::Table::reader`]).
pub fn reader_sql(location: &str, snap: &Snapshot, deleted: Option<&str>) -> Result<String> {
    let mut select = Vec::new();
    let mut duck_types = HashMap::new();
    for (name, t) in &snap.columns {
        let ty = types::from_delta(t).map_err(|e| {
            delta_error(format!(
                "column {name} of the Delta table {location}: {}",
                e.message
            ))
        })?;
        select.push(quote_ident(name));
        duck_types.insert(name.clone(), ty);
    }
    if snap.files.is_empty() {
        let cols: Vec<String> = snap
            .columns
            .iter()
            .map(|(n, _)| format!("cast(null as {}) as {}", duck_types[n], quote_ident(n)))
            .collect();
        return Ok(format!("select {} where false", cols.join(", ")));
    }
    let (marked, plain): (Vec<&DataFile>, Vec<&DataFile>) = snap.files.iter().partition(|f| {
        f.deletion_vector
            .as_ref()
            .is_some_and(|d| d.cardinality > 0)
    });
    let scan = Scan {
        location,
        snap,
        select: &select,
        duck_types: &duck_types,
    };
    let mut parts = Vec::new();
    if !plain.is_empty() {
        parts.push(scan.files(&plain, None));
    }
    if !marked.is_empty() {
        let deleted = deleted.ok_or_else(|| {
            delta_error(format!(
                "version {} of the Delta table {location} has deleted rows, but no list of them was given to its reader",
                snap.version
            ))
        })?;
        parts.push(scan.files(&marked, Some(deleted)));
    }
    Ok(parts.join(" union all "))
}

/// What reading a set of files of one snapshot needs.
struct Scan<'a> {
    location: &'a str,
    snap: &'a Snapshot,
    select: &'a [String],
    duck_types: &'a HashMap<String, String>,
}

impl Scan<'_> {
    /// `select <columns> from read_parquet(...)` over `files` (a union of one scan per
    /// partition when their paths do not spell the partition values), less `deleted`.
    fn files(&self, files: &[&DataFile], deleted: Option<&str>) -> String {
        let snap = self.snap;
        let list = |files: &[&DataFile]| -> String {
            let paths: Vec<String> = files
                .iter()
                .map(|f| quote_literal(&file_path(self.location, &f.path)))
                .collect();
            format!("[{}]", paths.join(", "))
        };
        let (extra, tail) = match deleted {
            None => (String::new(), String::new()),
            Some(rel) => (
                ", filename = 'lf_file', file_row_number = true".to_string(),
                format!(
                    " as lf_data anti join {rel} as lf_deleted using (lf_file, file_row_number)"
                ),
            ),
        };
        if snap.partition_columns.is_empty() {
            return format!(
                "select {} from read_parquet({}, union_by_name = true{extra}){tail}",
                self.select.join(", "),
                list(files)
            );
        }
        if files
            .iter()
            .all(|f| hive_consistent(f, &snap.partition_columns))
        {
            let types: Vec<String> = snap
                .partition_columns
                .iter()
                .map(|c| {
                    format!(
                        "{}: {}",
                        quote_literal(c),
                        self.duck_types
                            .get(c)
                            .map(String::as_str)
                            .unwrap_or("VARCHAR")
                    )
                })
                .collect();
            return format!(
                "select {} from read_parquet({}, hive_partitioning = true, hive_types = {{{}}}, union_by_name = true{extra}){tail}",
                self.select.join(", "),
                list(files),
                types.join(", ")
            );
        }
        // Paths that do not spell their partition values: one scan per partition, values as
        // constants.
        let mut groups: std::collections::BTreeMap<Vec<Option<String>>, Vec<&DataFile>> =
            Default::default();
        for f in files {
            groups.entry(snap.partition_key(f)).or_default().push(f);
        }
        let mut parts = Vec::new();
        for (values, files) in groups {
            let cols: Vec<String> = snap
                .columns
                .iter()
                .map(
                    |(n, _)| match snap.partition_columns.iter().position(|c| c == n) {
                        Some(i) => format!(
                            "cast({} as {}) as {}",
                            values[i]
                                .as_deref()
                                .map(quote_literal)
                                .unwrap_or_else(|| "null".into()),
                            self.duck_types[n],
                            quote_ident(n)
                        ),
                        None => quote_ident(n),
                    },
                )
                .collect();
            parts.push(format!(
                "select {} from read_parquet({}, hive_partitioning = false, union_by_name = true{extra}){tail}",
                cols.join(", "),
                list(&files)
            ));
        }
        parts.join(" union all ")
    }
}

/// Whether the file's path has a `col=value` folder for every partition column whose value,
/// unescaped as DuckDB's hive partitioning unescapes folder names, is the one in the log (so
/// DuckDB reads the right values). The name is not a log path: this is Hive's escaping of
/// the value inside the folder name, not the log's encoding of the name.
fn hive_consistent(f: &DataFile, partition_columns: &[String]) -> bool {
    partition_columns.iter().all(|c| {
        let expected = f.partition_values.get(c).cloned().flatten();
        f.path.split('/').any(|seg| {
            seg.split_once('=').is_some_and(|(k, v)| {
                let v = percent_decode(v);
                k == c
                    && match &expected {
                        Some(e) => *e == v && v != "__HIVE_DEFAULT_PARTITION__",
                        None => v == "__HIVE_DEFAULT_PARTITION__",
                    }
            })
        })
    })
}

/// `%XX` sequences to bytes: Hive's escaping of partition values in folder names, and the
/// log's encoding of file names ([`super::decode_log_path`]).
pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn file(path: &str, p: Option<&str>) -> DataFile {
        DataFile {
            path: path.into(),
            size: 1,
            rows: Some(1),
            partition_values: HashMap::from([("p".to_string(), p.map(str::to_string))]),
            modification_time: 0,
            deletion_vector: None,
        }
    }

    #[test]
    fn hive_paths_are_checked_against_the_log() {
        let cols = vec!["p".to_string()];
        assert!(hive_consistent(
            &file("p=a%20b/x.parquet", Some("a b")),
            &cols
        ));
        assert!(hive_consistent(
            &file("p=__HIVE_DEFAULT_PARTITION__/x.parquet", None),
            &cols
        ));
        assert!(!hive_consistent(&file("x.parquet", Some("a")), &cols));
        assert!(!hive_consistent(&file("p=b/x.parquet", Some("a")), &cols));
    }

    #[test]
    fn reader_sql_falls_back_to_constants() {
        let snap = Snapshot {
            version: 3,
            columns: vec![("x".into(), json!("long")), ("p".into(), json!("date"))],
            partition_columns: vec!["p".into()],
            files: vec![
                file("a.parquet", Some("2024-01-01")),
                file("b.parquet", None),
            ],
            metadata: Value::Null,
            protocol: Value::Null,
        };
        let sql = reader_sql("/t", &snap, None).unwrap();
        assert!(sql.contains("cast('2024-01-01' as DATE) as \"p\""), "{sql}");
        assert!(sql.contains("cast(null as DATE)"), "{sql}");
        assert!(sql.contains("'/t/a.parquet'"), "{sql}");
    }
}
