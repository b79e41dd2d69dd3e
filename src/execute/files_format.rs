//! Plain files (Parquet, CSV, JSON) as a table format: each build writes a new version through
//! `crate::storage` (staged beside the model's path locally, under a version prefix on S3), puts
//! it in place once written, points the catalog view at it, and drops versions beyond the
//! retention.
//!
//! Incremental models are folders of Parquet files, append only: a new version holds the old
//! files (hard links locally, server-side copies on S3) plus the new ones, swapped in like any
//! external write.

use super::format::{TableFormat, Target};
use super::materialize::{Outcome, Version, count_rows, explain_remote, failed, switch_view};
use super::new_rows::new_rows_for_files;
use crate::catalog;
use crate::error::Result;
use crate::model::materialization::{External, FileFormat, Incremental, OnSchemaChange};
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
    let result = (|| -> Result<(u64, Option<Vec<String>>)> {
        let (select, batch, projection) = match new_rows {
            None => (full_sql.to_string(), None, None),
            Some((previous, (batch, plan, select))) => {
                c.storage.carry_over(&staged, previous)?;
                let projection = (inc.on_schema_change == OnSchemaChange::SyncAllColumns)
                    .then(|| plan.columns.iter().map(|(n, _)| n.clone()).collect());
                (select, Some(batch), projection)
            }
        };
        if !staged.remote {
            std::fs::create_dir_all(&staged.write_path)
                .map_err(|e| failed(format!("cannot create {}: {e}", staged.write_path)))?;
        }
        let tag = format!("b-{}", c.build_id);
        // New files beside the old ones: one named by the build, or this build's files in
        // each partition folder.
        let (path, extra) = if ext.partition_by.is_empty() {
            (
                format!("{}/{tag}.parquet", staged.write_path.trim_end_matches('/')),
                Vec::new(),
            )
        } else {
            (
                staged.write_path.clone(),
                vec![
                    "append true".to_string(),
                    format!(
                        "filename_pattern {}",
                        quote_literal(&format!("{tag}-{{uuid}}"))
                    ),
                ],
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
    put_in_place(t, staged, view, rows)
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
