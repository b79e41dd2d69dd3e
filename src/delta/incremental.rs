//! An incremental run on a Delta table: one commit that adds the new rows' files and, for
//! `merge` / `delete+insert` / `insert_overwrite`, removes what they replace. Replacing is
//! copy-on-write at file level: only the files holding a matched key (or a replaced partition)
//! are rewritten, so the data written is proportional to what changed, not to the table. A
//! table with `delta.enableDeletionVectors` replaces keys merge-on-read instead: the matched
//! rows are marked deleted in a deletion vector of their file (see [`super::dv`]) and no
//! existing file is rewritten.

use super::write::{self, CopySpec, ModelWrite};
use super::{AsOf, DataFile, Snapshot, Table, delta_err, delta_error, dv, file_path, types};
use crate::error::Result;
use crate::model::materialization::{External, Incremental, Strategy};
use crate::model::relation::{quote_ident, quote_literal};
use deltalake::kernel::Action;
use deltalake::kernel::transaction::TableReference;
use deltalake::protocol::{DeltaOperation, MergePredicate, SaveMode};
use duckdb::Connection;
use roaring::RoaringTreemap;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};

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
    /// Files whose replaced rows were marked in a deletion vector instead.
    pub files_marked: usize,
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
    let mut config: BTreeMap<String, String> = snap
        .metadata
        .get("configuration")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    config.extend(ext.table_properties.clone());
    let merge_on_read = dv::enabled(&config);
    let mut marked: BTreeMap<String, RoaringTreemap> = BTreeMap::new();
    // The rows a merge-on-read run marks, kept for the new version's list of deleted rows.
    let hits = format!("lf_hits_{}", uuid::Uuid::new_v4().simple());
    let _drop_hits = super::DropTemp(conn, &hits);
    let (replaced, rewritten_sql): (Vec<&DataFile>, Option<String>) = match inc.strategy {
        Strategy::Append => (Vec::new(), None),
        Strategy::Merge | Strategy::DeleteInsert | Strategy::Microbatch if merge_on_read => {
            marked = rows_matching(conn, &table.location, &snap, &hits, rows.batch, keys, inc)?;
            let files: Vec<&DataFile> = snap
                .files
                .iter()
                .filter(|f| marked.contains_key(&f.path))
                .collect();
            if inc.strategy == Strategy::Merge && !files.is_empty() {
                let part = Snapshot {
                    files: files.iter().map(|f| (*f).clone()).collect(),
                    ..snap.clone()
                };
                let old = table.reader(Some(conn), &part)?;
                let names: Vec<String> = cols.delta.iter().map(|(n, _)| n.clone()).collect();
                new_sql = keep_unupdated_columns(&new_sql, &old, inc, &names);
            }
            (files, None)
        }
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
                let old = table.reader(Some(conn), &part)?;
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
                .filter(|f| parts.contains(&snap.partition_key(f)))
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
            files_marked: 0,
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
    // `path()` is already the file's name, as `DataFile::path` (decoding it again would
    // miss every file whose name holds a `%`, e.g. each Hive folder of a timestamp).
    let touched: Vec<_> = state
        .log_data()
        .iter()
        .filter(|f| gone.contains(&*f.path()))
        .collect();
    let marks = if marked.is_empty() {
        Vec::new()
    } else {
        deletion_vectors(table, &replaced, marked)?
    };
    let mut files_removed = touched.len();
    for f in &touched {
        actions.push(Action::Remove(f.remove_action(true)));
    }
    for (path, descriptor) in marks.iter() {
        if let Some(f) = touched.iter().find(|f| &*f.path() == path.as_str()) {
            actions.push(Action::Add(marked_add(f, descriptor.clone())));
            files_removed -= 1;
        }
    }
    let files_added = written.len();
    actions.extend(written.iter().map(|w| Action::Add(w.add.clone())));
    let info = json!({
        "build_id": build_id, "model": model, "rows": new_rows, "files": files_added,
        "incremental_strategy": inc.strategy.name(), "files_removed": files_removed,
        "rows_rewritten": written_rows.saturating_sub(new_rows),
        "files_marked": marks.len(),
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
    if !marks.is_empty() {
        // The new version's list of deleted rows: the old version's plus the rows just
        // marked, written in DuckDB (the catalog view reads it; when this fails, the view
        // writes it from the vectors).
        let _ = dv::extend_list(table, conn, &snap, &snapshot, &hits);
    }
    Ok(Applied {
        write: ModelWrite {
            rows: new_rows,
            snapshot,
        },
        files_removed,
        files_added,
        rows_rewritten: written_rows.saturating_sub(new_rows),
        files_marked: marks.len(),
    })
}

/// The new deletion vectors of the files in `hits` (each the file's old vector and its newly
/// matched rows), written into one file; a file whose rows are all deleted gets none (it is
/// only removed).
fn deletion_vectors(
    table: &Table,
    files: &[&DataFile],
    mut hits: BTreeMap<String, RoaringTreemap>,
) -> Result<Vec<(String, deltalake::kernel::DeletionVectorDescriptor)>> {
    for (path, old) in dv::deleted_rows(table, files.iter().copied())? {
        if let Some(rows) = hits.get_mut(&path) {
            *rows |= old;
        }
    }
    let whole: HashMap<&str, Option<u64>> =
        files.iter().map(|f| (f.path.as_str(), f.rows)).collect();
    let kept: Vec<(String, RoaringTreemap)> = hits
        .into_iter()
        .filter(|(path, rows)| {
            whole
                .get(path.as_str())
                .copied()
                .flatten()
                .is_none_or(|n| rows.len() < n)
        })
        .collect();
    if kept.is_empty() {
        return Ok(Vec::new());
    }
    let vectors: Vec<&RoaringTreemap> = kept.iter().map(|(_, r)| r).collect();
    let descriptors = dv::write(table, &vectors)?;
    Ok(kept.into_iter().map(|(p, _)| p).zip(descriptors).collect())
}

/// The Add that puts a file back with a deletion vector: the same file and statistics, with
/// bounds marked as possibly wider than the rows left.
#[allow(deprecated)]
fn marked_add(
    f: &deltalake::kernel::LogicalFileView,
    descriptor: deltalake::kernel::DeletionVectorDescriptor,
) -> deltalake::kernel::Add {
    let mut add = f.add_action();
    add.data_change = true;
    add.deletion_vector = Some(descriptor);
    add.stats = add.stats.as_deref().and_then(|s| {
        let mut v: Value = serde_json::from_str(s).ok()?;
        v.as_object_mut()?
            .insert("tightBounds".into(), json!(false));
        Some(v.to_string())
    });
    add
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
    let sql = matching_sql(location, snap, batch, keys, inc, false);
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

/// The query behind [`files_matching`] (distinct `lf_file`) and [`rows_matching`] (`lf_file`,
/// `file_row_number` of each matched row).
fn matching_sql(
    location: &str,
    snap: &Snapshot,
    batch: &str,
    keys: &[String],
    inc: &Incremental,
    rows: bool,
) -> String {
    let paths: Vec<String> = snap
        .files
        .iter()
        .map(|f| file_path(location, &f.path))
        .collect();
    let partition_read = snap
        .partition_columns
        .iter()
        .any(|p| keys.contains(p) || inc.predicates.iter().any(|q| q.contains(p.as_str())));
    key_match_sql(&paths, partition_read, batch, inc, rows)
}

/// The data files among `paths` (as `lf_file`; with `rows`, also each matched row's
/// `file_row_number`) holding a row the run replaces: one whose `unique_key` is among the
/// `batch`'s, where the model's `incremental_predicates` hold (all rows where they hold, with
/// no key). DuckDB reads only the columns needed and skips row groups by min/max.
pub fn key_match_sql(
    paths: &[String],
    hive: bool,
    batch: &str,
    inc: &Incremental,
    rows: bool,
) -> String {
    let keys: Vec<String> = inc.unique_key.iter().map(|k| quote_ident(k)).collect();
    let paths: Vec<String> = paths.iter().map(|p| quote_literal(p)).collect();
    let table = format!(
        "(select * from read_parquet([{}], filename = 'lf_file', file_row_number = {rows}, union_by_name = true, hive_partitioning = {hive}) as DBT_INTERNAL_DEST where true{})",
        paths.join(", "),
        inc.predicate_sql()
    );
    let select = if rows {
        "select lf_file, file_row_number"
    } else {
        "select distinct lf_file"
    };
    if keys.is_empty() {
        format!("{select} from {table} as lf_files")
    } else {
        format!(
            "{select} from {table} as lf_files semi join (select distinct {k} from {batch}) as lf_keys using ({k})",
            k = keys.join(", ")
        )
    }
}

/// The rows a merge-on-read run replaces, by file (path relative to the table): as
/// [`files_matching`], with their positions in the file.
fn rows_matching(
    conn: &Connection,
    location: &str,
    snap: &Snapshot,
    hits: &str,
    batch: &str,
    keys: &[String],
    inc: &Incremental,
) -> Result<BTreeMap<String, RoaringTreemap>> {
    let mut out: BTreeMap<String, RoaringTreemap> = BTreeMap::new();
    if snap.files.is_empty() {
        return Ok(out);
    }
    let by_path: HashMap<String, &str> = snap
        .files
        .iter()
        .map(|f| (file_path(location, &f.path), f.path.as_str()))
        .collect();
    let sql = matching_sql(location, snap, batch, keys, inc, true);
    conn.execute_batch(&format!("create or replace temp table {hits} as {sql}"))
        .map_err(delta_err)?;
    // One row per file, its row numbers as one text (far cheaper to fetch than a row each).
    let mut stmt = conn
        .prepare(&format!(
            "select lf_file, string_agg(file_row_number::varchar, ',') from {hits} group by lf_file"
        ))
        .map_err(delta_err)?;
    let mut rows = stmt.query([]).map_err(delta_err)?;
    while let Some(row) = rows.next().map_err(delta_err)? {
        let file: String = row.get(0).map_err(delta_err)?;
        let numbers: String = row.get(1).map_err(delta_err)?;
        if let Some(path) = by_path.get(&file) {
            let set = out.entry(path.to_string()).or_default();
            for n in numbers.split(',') {
                set.insert(n.parse::<u64>().map_err(delta_err)?);
            }
        }
    }
    Ok(out)
}

/// The rows of the rewritten files (`old`) that stay: those whose key is not among the new
/// rows' or for which the predicates do not hold (a microbatch run, with no keys: the rows
/// outside its window).
pub fn kept_rows(old: &str, batch: &str, inc: &Incremental) -> String {
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
pub fn keep_unupdated_columns(
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
