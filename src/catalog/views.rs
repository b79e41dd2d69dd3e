//! The SQL of the catalog's views over external models: which reader, which files.

use crate::model::materialization::{External, FileFormat};
use crate::model::relation::{Relation, quote_ident, quote_literal};

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
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        None => "*".to_string(),
    };
    let reader = format!(
        "(select {select} from read_parquet({}, union_by_name = true{hive}))",
        quote_literal(&scan)
    );
    crate::model::templates::render(
        "external_view",
        &[("relation", relation.to_string()), ("reader", reader)],
    )
}

pub fn external_view_sql(relation: &Relation, path: &str, external: &External) -> String {
    let reader = reader_sql(path, external.format, !external.partition_by.is_empty());
    crate::model::templates::render(
        "external_view",
        &[("relation", relation.to_string()), ("reader", reader)],
    )
}
