//! Where external files are written and how a new version replaces the old one atomically.
//!
//! Local/NAS: DuckDB writes to a hidden temporary name beside the target, which is renamed
//! into place only after the write succeeded. A single file is replaced by `rename(2)`. A
//! partitioned directory is a symlink to a hidden version directory; the symlink is swapped
//! by `rename(2)` too, so readers see the old tree or the new one, never a mix.

pub mod local;

use crate::error::{Error, Result};
use crate::location::is_remote;

/// A write in progress: DuckDB writes to `write_path`; `commit` publishes it at `location`.
#[derive(Debug)]
pub struct Staged {
    pub location: String,
    pub write_path: String,
    pub partitioned: bool,
    build_id: String,
}

pub fn stage(location: &str, partitioned: bool, build_id: &str) -> Result<Staged> {
    if is_remote(location) {
        return Err(Error::new(
            "LF510",
            format!("writing to {location} is not supported yet"),
        )
        .hint("use a local or mounted path as external_root"));
    }
    local::stage(location, partitioned, build_id)
}

impl Staged {
    pub fn commit(self) -> Result<()> {
        local::commit(&self)
    }

    pub fn abort(self) {
        local::abort(&self);
    }

    /// The path a reader should scan for this location.
    pub fn scan_path(location: &str, partitioned: bool, extension: &str) -> String {
        if partitioned {
            format!("{}/**/*.{extension}", location.trim_end_matches('/'))
        } else {
            location.to_string()
        }
    }
}
