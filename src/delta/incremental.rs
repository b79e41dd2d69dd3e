//! An incremental run on a Delta table: one commit that adds the new rows' files and, for
//! `merge` / `delete+insert` / `insert_overwrite`, removes what they replace. Replacing is
//! copy-on-write at file level: only the files holding a matched key (or a replaced partition)
//! are rewritten, so the data written is proportional to what changed, not to the table.

use super::write::{self, CopySpec, ModelWrite};
use super::{
    AsOf, DataFile, Snapshot, Table, delta_err, delta_error, file_path, reader_sql, types,
};
use crate::error::Result;
use crate::model::materialization::{External, Incremental, Strategy};
use crate::model::relation::{quote_ident, quote_literal};
use deltalake::kernel::Action;
use deltalake::kernel::transaction::TableReference;
use deltalake::protocol::{DeltaOperation, MergePredicate, SaveMode};
use duckdb::Connection;
use serde_json::json;
use std::collections::HashSet;

/// The new rows of one run: `select_sql` yields them in the table's (possibly widened)
/// columns; `batch` is the temporary table they were computed into (for their keys), holding
/// `rows` rows. For `merge` the caller has checked they have one row per key.
pub struct NewRows<'a> {
    pub select_sql: &'a str,
    pub batch: &'a str,
    pub rows: u64,
}

/// What the commit changed, for the run's report.
pub struct Applied {
    pub write: ModelWrite,
    pub files_removed: usize,
    pub files_added: usize,
    pub rows_rewritten: u64,
}

pub fn apply(
    conn: &Connection,
    table: &Table,
    rows: &NewRows,
    inc: &Incremental,
    ext: &External,
    build_id: &str,
    model: &str,
) -> Result<Applied> {
    table.check_conditional_puts()?;
    let loaded = table.load(&AsOf::Latest)?;
    let snap = super::snapshot_of(&loaded, &table.location)?;
    if snap.partition_columns != ext.partition_by {
        return Err(delta_error(format!(
            "the Delta table {} is partitioned by [{}], the model by [{}]; rebuild it with --full-refresh",
            table.location,
            snap.partition_columns.join(", "),
            ext.partition_by.join(", ")
        )));
    }
    let cols = write::columns(conn, rows.select_sql)?;
    let new_sql = format!(
        "select {} from ({}) as lf_new",
        cols.select.join(", "),
        rows.select_sql
    );
    let keys = &inc.unique_key;
    let mut new_sql = new_sql;
    let (replaced, rewritten_sql): (Vec<&DataFile>, Option<String>) = match inc.strategy {
        Strategy::Append => (Vec::new(), None),
        Strategy::Merge | Strategy::DeleteInsert | Strategy::Microbatch => {
            let hit = files_matching(conn, &table.location, &snap, rows.batch, keys, inc)?;
            let files: Vec<&DataFile> = snap
                .files
                .iter()
                .filter(|f| hit.contains(&f.path))
                .collect();
            let kept = if files.is_empty() {
                None
            } else {
                let part = Snapshot {
                    files: files.iter().map(|f| (*f).clone()).collect(),
                    ..snap.clone()
                };
                let old = reader_sql(&table.location, &part)?;
                if inc.strategy == Strategy::Merge {
                    let names: Vec<String> = cols.delta.iter().map(|(n, _)| n.clone()).collect();
                    new_sql = keep_unupdated_columns(&new_sql, &old, inc, &names);
                }
                Some(kept_rows(&old, rows.batch, inc))
            };
            (files, kept)
        }
        Strategy::InsertOverwrite => {
            let parts = partitions_of(conn, rows.batch, &ext.partition_by)?;
            let files = snap
                .files
                .iter()
                .filter(|f| {
                    let key: Vec<Option<String>> = ext
                        .partition_by
                        .iter()
                        .map(|c| f.partition_values.get(c).cloned().flatten())
                        .collect();
                    parts.contains(&key)
                })
                .collect();
            (files, None)
        }
    };
    // The rows to write: the new ones, plus the rows of rewritten files that stay, cast to
    // the table's columns (older files may lack columns added since).
    let select_sql = match &rewritten_sql {
        None => new_sql.clone(),
        Some(kept) => {
            let outer: Vec<String> = cols
                .delta
                .iter()
                .map(|(n, t)| {
                    Ok(format!(
                        "cast({} as {}) as {}",
                        quote_ident(n),
                        types::from_delta(t)?,
                        quote_ident(n)
                    ))
                })
                .collect::<Result<_>>()?;
            // Kept rows first, new rows after, each in about the order they came in: rewritten
            // files keep covering narrow key ranges when the table was clustered by key, so
            // the next merge of a few keys again touches few files (no sort: it would cost
            // more than the rewrite).
            format!(
                "select {} from ({kept} union all by name {new_sql}) as lf_rows",
                outer.join(", ")
            )
        }
    };
    let spec = CopySpec::for_model(&select_sql, &cols.delta, ext, build_id);
    let new_rows = rows.rows;
    if new_rows == 0 && replaced.is_empty() {
        // Nothing new: no files, no version.
        return Ok(Applied {
            write: ModelWrite {
                rows: 0,
                snapshot: snap,
            },
            files_removed: 0,
            files_added: 0,
            rows_rewritten: 0,
        });
    }
    let written = write::copy_files(conn, table, &spec)
        .inspect_err(|_| write::remove_files_of(table, build_id))?;
    // A COPY of no rows still writes one empty file; the table does not need it.
    let (written, empty): (Vec<_>, Vec<_>) = written.into_iter().partition(|w| w.rows > 0);
    write::remove_files(table, empty.iter().map(|w| w.add.path.as_str()));
    let written_rows: u64 = written.iter().map(|w| w.rows).sum();
    let state = loaded.snapshot().map_err(delta_err)?;
    let gone: HashSet<&str> = replaced.iter().map(|f| f.path.as_str()).collect();
    let mut actions =
        super::metadata_changes(state, &cols.delta, &ext.partition_by, &ext.table_properties)?;
    let removes: Vec<Action> = state
        .log_data()
        .iter()
        // `path()` is already the file's name, as `DataFile::path` (decoding it again would
        // miss every file whose name holds a `%`, e.g. each Hive folder of a timestamp).
        .filter(|f| gone.contains(&*f.path()))
        .map(|f| Action::Remove(f.remove_action(true)))
        .collect();
    let (files_removed, files_added) = (removes.len(), written.len());
    actions.extend(removes);
    actions.extend(written.iter().map(|w| Action::Add(w.add.clone())));
    let info = json!({
        "build_id": build_id, "model": model, "rows": new_rows, "files": files_added,
        "incremental_strategy": inc.strategy.name(), "files_removed": files_removed,
        "rows_rewritten": written_rows.saturating_sub(new_rows),
    });
    let version = table
        .commit(
            actions,
            operation(inc, ext, &snap),
            Some(state as &dyn TableReference),
            &info,
        )
        .inspect_err(|_| write::cleanup_unless_committed(table, build_id))?;
    let snapshot = table.snapshot(&AsOf::Version(version))?;
    Ok(Applied {
        write: ModelWrite {
            rows: new_rows,
            snapshot,
        },
        files_removed,
        files_added,
        rows_rewritten: written_rows.saturating_sub(new_rows),
    })
}

fn operation(inc: &Incremental, ext: &External, snap: &Snapshot) -> DeltaOperation {
    let on = inc
        .unique_key
        .iter()
        .map(|k| format!("target.{k} = source.{k}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    match inc.strategy {
        Strategy::Append => DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: (!snap.partition_columns.is_empty())
                .then(|| snap.partition_columns.clone()),
            predicate: None,
        },
        Strategy::Merge | Strategy::DeleteInsert => DeltaOperation::Merge {
            predicate: None,
            merge_predicate: Some(on),
            matched_predicates: vec![MergePredicate {
                action_type: if inc.strategy == Strategy::Merge {
                    "update".into()
                } else {
                    "delete".into()
                },
                predicate: None,
            }],
            not_matched_predicates: vec![MergePredicate {
                action_type: "insert".into(),
                predicate: None,
            }],
            not_matched_by_source_predicates: Vec::new(),
        },
        Strategy::Microbatch => DeltaOperation::Write {
            mode: SaveMode::Overwrite,
            partition_by: (!snap.partition_columns.is_empty())
                .then(|| snap.partition_columns.clone()),
            predicate: Some(inc.predicates.join(" and ")),
        },
        Strategy::InsertOverwrite => DeltaOperation::Write {
            mode: SaveMode::Overwrite,
            partition_by: Some(ext.partition_by.clone()),
            predicate: Some(format!(
                "replace the partitions ({}) present in the new rows",
                ext.partition_by.join(", ")
            )),
        },
    }
}

/// The data files (paths relative to the table) holding a row the run replaces: one of the
/// batch's keys (where the model's `incremental_predicates` hold), or, for a microbatch run
/// (no keys), a row of its window. Only the columns needed are read, and DuckDB skips row
/// groups whose min/max cannot match.
fn files_matching(
    conn: &Connection,
    location: &str,
    snap: &Snapshot,
    batch: &str,
    keys: &[String],
    inc: &Incremental,
) -> Result<HashSet<String>> {
    if snap.files.is_empty() {
        return Ok(HashSet::new());
    }
    let key_list: Vec<String> = keys.iter().map(|k| quote_ident(k)).collect();
    let paths: Vec<String> = snap
        .files
        .iter()
        .map(|f| quote_literal(&file_path(location, &f.path)))
        .collect();
    let partition_read = snap
        .partition_columns
        .iter()
        .any(|p| keys.contains(p) || inc.predicates.iter().any(|q| q.contains(p.as_str())));
    let hive = if partition_read {
        ", hive_partitioning = true"
    } else {
        ", hive_partitioning = false"
    };
    let rows = format!(
        "(select * from read_parquet([{}], filename = true, union_by_name = true{hive}) as DBT_INTERNAL_DEST where true{})",
        paths.join(", "),
        inc.predicate_sql()
    );
    let sql = if keys.is_empty() {
        format!("select distinct filename from {rows} as lf_files")
    } else {
        format!(
            "select distinct filename from {rows} as lf_files semi join (select distinct {k} from {batch}) as lf_keys using ({k})",
            k = key_list.join(", ")
        )
    };
    let mut stmt = conn.prepare(&sql).map_err(delta_err)?;
    let found: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(delta_err)?
        .collect::<Result<_, _>>()
        .map_err(delta_err)?;
    let found: HashSet<String> = found.into_iter().collect();
    Ok(snap
        .files
        .iter()
        .filter(|f| found.contains(&file_path(location, &f.path)))
        .map(|f| f.path.clone())
        .collect())
}

/// The rows of the rewritten files (`old`) that stay: those whose key is not among the new
/// rows' or for which the predicates do not hold (a microbatch run, with no keys: the rows
/// outside its window).
fn kept_rows(old: &str, batch: &str, inc: &Incremental) -> String {
    let (keys, preds) = (&inc.unique_key, inc.predicate_sql());
    let outside =
        format!("select * from ({old}) as DBT_INTERNAL_DEST where (true{preds}) is not true");
    if keys.is_empty() {
        return outside;
    }
    let k: Vec<String> = keys.iter().map(|k| quote_ident(k)).collect();
    let unmatched = format!(
        "select * from (select * from ({old}) as DBT_INTERNAL_DEST where true{preds}) as lf_old anti join (select distinct {k} from {batch}) as lf_keys using ({k})",
        k = k.join(", ")
    );
    if preds.is_empty() {
        unmatched
    } else {
        format!("{outside} union all by name {unmatched}")
    }
}

/// A `merge` with `merge_update_columns` / `merge_exclude_columns`: a new row that matches an
/// existing one keeps the existing row's other columns.
fn keep_unupdated_columns(
    new_sql: &str,
    old: &str,
    inc: &Incremental,
    columns: &[String],
) -> String {
    if inc.update_columns.is_none() && inc.exclude_columns.is_empty() {
        return new_sql.to_string();
    }
    let updated = inc.update_columns(columns);
    let is = |list: &[String], n: &str| list.iter().any(|x| x.eq_ignore_ascii_case(n));
    let select: Vec<String> = columns
        .iter()
        .map(|n| {
            let q = quote_ident(n);
            if is(&updated, n) || is(&inc.unique_key, n) {
                format!("lf_src.{q}")
            } else {
                format!("case when lf_dest.lf_matched then lf_dest.{q} else lf_src.{q} end as {q}")
            }
        })
        .collect();
    let on: Vec<String> = inc
        .unique_key
        .iter()
        .map(|k| format!("lf_src.{k} = lf_dest.{k}", k = quote_ident(k)))
        .collect();
    format!(
        "select {} from ({new_sql}) as lf_src left join (select *, true as lf_matched from ({old}) as DBT_INTERNAL_DEST where true{}) as lf_dest on {}",
        select.join(", "),
        inc.predicate_sql(),
        on.join(" and ")
    )
}

/// The distinct partition values of the batch, as the log spells them (text, null as None).
fn partitions_of(
    conn: &Connection,
    batch: &str,
    partition_by: &[String],
) -> Result<HashSet<Vec<Option<String>>>> {
    let cols: Vec<String> = partition_by
        .iter()
        .map(|c| format!("cast({} as varchar)", quote_ident(c)))
        .collect();
    let sql = format!("select distinct {} from {batch}", cols.join(", "));
    let mut stmt = conn.prepare(&sql).map_err(delta_err)?;
    let mut rows = stmt.query([]).map_err(delta_err)?;
    let mut out = HashSet::new();
    while let Some(row) = rows.next().map_err(delta_err)? {
        let mut key = Vec::with_capacity(partition_by.len());
        for i in 0..partition_by.len() {
            key.push(row.get::<_, Option<String>>(i).map_err(delta_err)?);
        }
        out.insert(key);
    }
    Ok(out)
}
