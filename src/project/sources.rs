//! How render gets a Delta source's SQL without reading storage itself: the phase that may do
//! I/O (the delta module's `sources::Reader`) implements [`SourceReader`], render calls it only for
//! the Delta sources an enabled model uses.

use crate::error::Result;
use crate::project::files::SourceTable;

/// Reads what a Delta source stands for.
pub trait SourceReader: Sync {
    /// A query (without surrounding parentheses) over the files of the version of `source`
    /// it asks for (`as_of_version`, `as_of_timestamp`, else the latest). `location` is the
    /// source's `external_location`, made absolute against the project root (or remote).
    fn read_delta(&self, source: &SourceTable, location: &str) -> Result<String>;
}
