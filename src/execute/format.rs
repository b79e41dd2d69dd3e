//! Table formats: how the files of an external or incremental model are staged, written,
//! committed and read. [`super::table_format`] picks the implementation once per model, from
//! its `format`: plain files (Parquet, CSV, JSON) put in place by `crate::storage`
//! (`files_format.rs`), or a Delta table committed through `crate::delta` (`delta_format.rs`).
//! Nothing else in `execute/` or `publish` asks which format a model has.

use super::materialize::{Ctx, Outcome};
use crate::error::Result;
use crate::model::materialization::{External, FileFormat, Incremental};
use crate::storage::Storage;

/// One model's files: the node being built, its `format`/`partition_by`/options, and where.
pub struct Target<'a> {
    pub c: &'a Ctx<'a>,
    pub ext: &'a External,
    pub location: &'a str,
}

pub trait TableFormat: Sync {
    /// Writes `sql` (the model's whole query) as the model's new version, commits it and points
    /// the model's catalog view at it. Readers see the old version or the new one; a failed
    /// write leaves the old one in place and removes what it wrote.
    fn write(&self, t: &Target, sql: &str) -> Result<Outcome>;

    /// An incremental model's run. `new_sql` (the model's `is_incremental()` rows) is given
    /// when the model was built before and is not rebuilt (`--full-refresh`): the new rows go
    /// into the existing version by `inc.strategy`. Without it, or where the format finds
    /// nothing to add to, `full_sql` is written as the whole table.
    fn write_incremental(
        &self,
        t: &Target,
        inc: &Incremental,
        new_sql: Option<&str>,
        full_sql: &str,
    ) -> Result<Outcome>;

    /// The SQL (a table function call or a subquery) that reads the version `pinned`, as
    /// recorded with a model's view, of files of `format`; for a replica.
    fn pinned_reader(
        &self,
        pinned: &str,
        format: FileFormat,
        partitioned: bool,
        storage: &Storage,
    ) -> Result<String>;
}
