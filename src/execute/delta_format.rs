//! Delta tables as a table format (`crate::delta`): DuckDB writes the data files, one commit
//! to the log makes them the table's new version, and the catalog view reads exactly that
//! version's files (recorded as `location@vN` for replicas).
//!
//! An incremental run is one commit adding the new rows' files and removing the files they
//! replace (copy-on-write of only the files that hold a matched key or partition).

use super::format::{TableFormat, Target};
use super::materialize::{Ctx, Outcome, Version, explain_remote, failed, switch_view};
use super::new_rows::new_rows_for_files;
use crate::delta::{self, AsOf, Table};
use crate::error::Result;
use crate::model::materialization::{FileFormat, Incremental};
use crate::model::templates;
use crate::storage::Storage;

pub struct DeltaTable;

impl TableFormat for DeltaTable {
    fn write(&self, t: &Target, sql: &str) -> Result<Outcome> {
        let explain = |e| explain_remote(t.c.storage, t.location, e);
        let table = open(t).map_err(explain)?;
        write_full(t, &table, sql).map_err(explain)
    }

    fn write_incremental(
        &self,
        t: &Target,
        inc: &Incremental,
        new_sql: Option<&str>,
        full_sql: &str,
    ) -> Result<Outcome> {
        let c = t.c;
        let table = open(t)?;
        let sql = match new_sql {
            Some(sql) if table.exists()? => sql,
            _ => return write_full(t, &table, full_sql),
        };
        catch_up(c, &table)?;
        let (batch, _, select) = new_rows_for_files(c, inc, sql)?;
        let applied = delta::incremental::apply(
            c.conn,
            &table,
            &delta::incremental::NewRows {
                select_sql: &select,
                batch: &batch.name,
                rows: batch.rows()?,
            },
            inc,
            t.ext,
            c.build_id,
            &c.node.name,
        )?;
        drop(batch);
        let mut outcome = point_view(c, &table, &applied.write)?;
        let marked = match applied.files_marked {
            0 => String::new(),
            n => format!(", {n} with rows deleted in place"),
        };
        outcome.note = Some(format!(
            "incremental {}: {} files added, {} replaced ({} unchanged rows rewritten){marked}",
            inc.strategy.name(),
            applied.files_added,
            applied.files_removed,
            applied.rows_rewritten
        ));
        Ok(outcome)
    }

    fn pinned_reader(
        &self,
        pinned: &str,
        _: FileFormat,
        _: bool,
        storage: &Storage,
    ) -> Result<String> {
        let (location, version) = delta::parse_pin(pinned)
            .ok_or_else(|| failed(format!("'{pinned}' is not a Delta version")))?;
        let table = Table::open(location, storage.remote.as_ref())?;
        let snap = table.snapshot(&AsOf::Version(version))?;
        Ok(format!("({})", table.reader(None, &snap)?))
    }
}

/// The model's table (a local folder is created first; the table may not exist yet).
fn open(t: &Target) -> Result<Table> {
    if !crate::project::paths::is_remote(t.location) {
        std::fs::create_dir_all(t.location)
            .map_err(|e| failed(format!("cannot create {}: {e}", t.location)))?;
    }
    Table::open(t.location, t.c.storage.remote.as_ref())
}

/// Writes `sql` as the new version of `table` and points the catalog view at it.
fn write_full(t: &Target, table: &Table, sql: &str) -> Result<Outcome> {
    let c = t.c;
    let written = delta::write::write_model(c.conn, table, sql, t.ext, c.build_id, &c.node.name)?;
    point_view(c, table, &written)
}

/// Points the model's catalog view at the version `written` committed.
fn point_view(c: &Ctx, table: &Table, written: &delta::write::ModelWrite) -> Result<Outcome> {
    let reader = table.reader(Some(c.conn), &written.snapshot)?;
    let view = templates::render(
        "external_view",
        &[
            ("relation", c.node.relation.to_string()),
            ("reader", format!("({reader})")),
        ],
    );
    let version = written.snapshot.version;
    switch_view(
        c,
        Version {
            view,
            written: table.location.clone(),
            pinned: delta::pin(&table.location, version),
            rows: written.rows,
            committed: format!("version {version} of {} was committed", table.location),
        },
    )
}

/// Points the model's view at the table's latest version when it reads an older one: a run
/// killed between a commit and the switch of the view left it behind, and the new rows must
/// be computed against what the table holds (else an append would add that batch again).
fn catch_up(c: &Ctx, table: &Table) -> Result<()> {
    let latest = table.snapshot(&AsOf::Latest)?;
    let viewed = crate::catalog::state::recorded_pin(c.conn, &c.node.unique_id)
        .as_deref()
        .and_then(delta::parse_pin)
        .filter(|(loc, _)| loc.trim_end_matches('/') == table.location)
        .map(|(_, v)| v);
    if viewed == Some(latest.version) {
        return Ok(());
    }
    let write = delta::write::ModelWrite {
        rows: 0,
        snapshot: latest,
    };
    point_view(c, table, &write).map(|_| ())
}
