//! Plain files (Parquet, CSV, JSON) as a table format: each build writes a new version through
//! `crate::storage` (staged beside the model's path locally, under a version prefix on S3), puts
//! it in place once written, points the catalog view at it, and drops versions beyond the
//! retention.
//!
//! Incremental models are folders of Parquet files: a new version holds the old files (hard
//! links locally, server-side copies on S3) plus the new ones, swapped in like any external
//! write. `merge` and `delete+insert` replace at file granularity: the files holding one of the
//! new rows' keys are left out of the new version and their other rows written again beside
//! the new ones.

use super::format::{TableFormat, Target};
use super::materialize::{Outcome, Version, count_rows, explain_remote, failed, switch_view};
use super::new_rows::new_rows_for_files;
use crate::catalog;
use crate::error::Result;
use crate::model::materialization::{External, FileFormat, Incremental, OnSchemaChange, Strategy};
use crate::model::relation::{quote_ident, quote_literal};
use crate::model::templates;
use crate::storage::{Staged, Storage};

pub struct Files;

impl TableFormat for Files {
    fn write(&self, t: &Target, sql: &str) -> Result<Outcome> {
        let c = t.c;
        let staged = c.storage.stage(
            t.location,
            !t.ext.partition_by.is_empty(),
            t.ext.format.extension(),
            c.build_id,
        )?;
        let stmt = templates::render(
            "external_copy",
            &[
                ("sql", sql.to_string()),
                ("path", quote_literal(&staged.write_path)),
                (
                    "options",
                    copy_options(t.ext.format.extension(), t.ext, &[]),
                ),
            ],
        );
        let rows = match count_rows(c.conn, &stmt) {
            Ok(rows) => rows,
            Err(e) => {
                c.storage.abort(&staged);
                return Err(explain_remote(c.storage, t.location, e));
            }
        };
        let view = catalog::external_view_sql(&c.node.relation, &staged.view_path, t.ext);
        put_in_place(t, staged, view, rows).map_err(|e| explain_remote(c.storage, t.location, e))
    }

    fn write_incremental(
        &self,
        t: &Target,
        inc: &Incremental,
        new_sql: Option<&str>,
        full_sql: &str,
    ) -> Result<Outcome> {
        let c = t.c;
        // The version readers see now is the one the new files are added to.
        let previous = match new_sql {
            Some(_) => c.storage.live_version(
                t.location,
                catalog::state::recorded_pin(c.conn, &c.node.unique_id),
            ),
            None => None,
        };
        folder(t, inc, previous.as_deref().zip(new_sql), full_sql)
    }

    fn pinned_reader(
        &self,
        pinned: &str,
        format: FileFormat,
        partitioned: bool,
        _: &Storage,
    ) -> Result<String> {
        Ok(catalog::reader_sql(pinned, format, partitioned))
    }
}

/// An incremental model's folder of Parquet files: the first run writes the whole table,
/// later runs append (`append`: the version to add to and the new rows' query).
fn folder(
    t: &Target,
    inc: &Incremental,
    append: Option<(&str, &str)>,
    full_sql: &str,
) -> Result<Outcome> {
    let (c, ext, location) = (t.c, t.ext, t.location);
    let new_rows = match append {
        Some((previous, sql)) => Some((previous, new_rows_for_files(c, inc, sql)?)),
        None => None,
    };
    if let Some((previous, (batch, _, _))) = &new_rows
        && batch.rows()? == 0
    {
        // Nothing new: no files, no version; the catalog keeps reading what it reads.
        let current = if crate::project::paths::is_remote(location) {
            previous.to_string()
        } else {
            location.to_string()
        };
        return Ok(Outcome {
            written: Some(current),
            pinned: Some(previous.to_string()),
            ..Outcome::rows(Some(0))
        });
    }
    let staged = c.storage.stage(location, true, "parquet", c.build_id)?;
    // With replaced files: (files replaced, new rows), for the run's note.
    let mut replacing: Option<(usize, u64)> = None;
    let result = (|| -> Result<(u64, Option<Vec<String>>)> {
        let (select, batch, projection) = match new_rows {
            None => (full_sql.to_string(), None, None),
            Some((previous, (batch, plan, select))) => {
                let partitioned = !ext.partition_by.is_empty();
                let files = c.storage.version_files(&staged, previous)?;
                let replaced = match inc.strategy {
                    Strategy::Merge | Strategy::DeleteInsert => {
                        replaced_files(t, previous, &files, &batch.name, inc)?
                    }
                    _ => Vec::new(),
                };
                let kept: Vec<String> = files
                    .into_iter()
                    .filter(|f| !replaced.contains(f))
                    .collect();
                c.storage.carry_over(&staged, previous, &kept)?;
                let projection = (inc.on_schema_change == OnSchemaChange::SyncAllColumns)
                    .then(|| plan.columns.iter().map(|(n, _)| n.clone()).collect());
                if replaced.is_empty() {
                    (select, Some(batch), projection)
                } else {
                    replacing = Some((replaced.len(), batch.rows()?));
                    let base = previous.trim_end_matches('/');
                    let paths: Vec<String> = replaced
                        .iter()
                        .map(|r| quote_literal(&format!("{base}/{r}")))
                        .collect();
                    let old = format!(
                        "select * from read_parquet([{}], union_by_name = true, hive_partitioning = {partitioned})",
                        paths.join(", ")
                    );
                    let new_sql = if inc.strategy == Strategy::Merge {
                        let names: Vec<String> =
                            plan.columns.iter().map(|(n, _)| n.clone()).collect();
                        crate::delta::incremental::keep_unupdated_columns(
                            &select, &old, inc, &names,
                        )
                    } else {
                        select
                    };
                    let kept = crate::delta::incremental::kept_rows(&old, &batch.name, inc);
                    let all = format!("{kept} union all by name {new_sql}");
                    (all, Some(batch), projection)
                }
            }
        };
        if !staged.remote {
            std::fs::create_dir_all(&staged.write_path)
                .map_err(|e| failed(format!("cannot create {}: {e}", staged.write_path)))?;
        }
        let tag = format!("b-{}", c.build_id);
        // New files beside the old ones: one named by the build, or this build's files in
        // each partition folder, or (with `target_file_size`) files of about that size, so a
        // later merge rewrites only the files its keys are in.
        let (path, extra) = if ext.partition_by.is_empty() && ext.target_file_size.is_none() {
            (
                format!("{}/{tag}.parquet", staged.write_path.trim_end_matches('/')),
                Vec::new(),
            )
        } else {
            (
                staged.write_path.clone(),
                [
                    Some("append true".to_string()),
                    Some(format!(
                        "filename_pattern {}",
                        quote_literal(&format!("{tag}-{{uuid}}"))
                    )),
                    ext.target_file_size
                        .as_ref()
                        .filter(|_| ext.partition_by.is_empty())
                        .map(|size| format!("file_size_bytes {}", quote_literal(size))),
                ]
                .into_iter()
                .flatten()
                .collect(),
            )
        };
        let rows = count_rows(
            c.conn,
            &format!(
                "copy ({select}) to {} ({})",
                quote_literal(&path),
                copy_options("parquet", ext, &extra)
            ),
        )?;
        drop(batch);
        Ok((rows, projection))
    })();
    let (rows, projection) = match result {
        Ok(r) => r,
        Err(e) => {
            c.storage.abort(&staged);
            return Err(e);
        }
    };
    let view = catalog::folder_view_sql(
        &c.node.relation,
        &staged.view_path,
        !ext.partition_by.is_empty(),
        projection.as_deref(),
    );
    let Some((files, new)) = replacing else {
        return put_in_place(t, staged, view, rows);
    };
    let mut outcome = put_in_place(t, staged, view, new)?;
    outcome.note = Some(format!(
        "incremental {}: {files} files replaced ({} unchanged rows rewritten)",
        inc.strategy.name(),
        rows.saturating_sub(new)
    ));
    Ok(outcome)
}

/// The Parquet files among `files` of the version at `previous` (relative to it) that hold a
/// row the new rows replace.
fn replaced_files(
    t: &Target,
    previous: &str,
    files: &[String],
    batch: &str,
    inc: &Incremental,
) -> Result<Vec<String>> {
    let files: Vec<&String> = files.iter().filter(|f| f.ends_with(".parquet")).collect();
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let base = previous.trim_end_matches('/');
    let paths: Vec<String> = files.iter().map(|f| format!("{base}/{f}")).collect();
    let sql = crate::delta::incremental::key_match_sql(
        &paths,
        !t.ext.partition_by.is_empty(),
        batch,
        inc,
        false,
    );
    let mut stmt = t.c.conn.prepare(&sql).map_err(|e| failed(e.to_string()))?;
    let found = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<std::collections::HashSet<String>, _>>())
        .map_err(|e| failed(e.to_string()))?;
    Ok(files
        .into_iter()
        .zip(paths)
        .filter(|(_, p)| found.contains(p))
        .map(|(f, _)| f.clone())
        .collect())
}

/// After a staged write succeeded: puts the new version in place, points the model's catalog
/// view at it (`view` is the view's SQL), then drops versions beyond the retention.
fn put_in_place(t: &Target, staged: Staged, view: String, rows: u64) -> Result<Outcome> {
    let c = t.c;
    c.storage.commit(&staged)?;
    let outcome = switch_view(
        c,
        Version {
            view,
            written: staged.view_path.clone(),
            pinned: staged.pinned_path.clone(),
            rows,
            committed: format!("files written to {}", staged.view_path),
        },
    )?;
    // Old versions go only once nothing live points at them; a failure here loses no data.
    if let Err(e) = c.storage.collect_garbage(&staged) {
        crate::warnln!(
            "{}: old versions were not removed: {}",
            c.node.name,
            e.message
        );
    }
    Ok(outcome)
}

/// The options of a model's `COPY ... TO`: its format, partition columns, `extra`, then the
/// model's own `options`.
fn copy_options(format: &str, ext: &External, extra: &[String]) -> String {
    let mut opts = vec![format!("format {format}")];
    if !ext.partition_by.is_empty() {
        let cols: Vec<String> = ext.partition_by.iter().map(|c| quote_ident(c)).collect();
        opts.push(format!("partition_by ({})", cols.join(", ")));
    }
    opts.extend(extra.iter().cloned());
    opts.extend(ext.options.iter().map(|(k, v)| format!("{k} {v}")));
    opts.join(", ")
}
