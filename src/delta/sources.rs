//! Delta sources: the files of the version a source asks for, read from the table's log for
//! render (which does no I/O itself and calls this through [`SourceReader`]).

use super::{AsOf, Table};
use crate::error::{Error, Result};
use crate::project::Target;
use crate::project::files::SourceTable;
use crate::project::sources::SourceReader;
use crate::storage::s3::{Remote, S3Secret};
use std::sync::OnceLock;

/// Reads Delta sources without DuckDB's delta extension. The S3 client is made once, from the
/// target's secrets, when the first remote source is read.
pub struct Reader {
    secrets: Vec<S3Secret>,
    remote: OnceLock<Result<Remote>>,
}

impl Reader {
    pub fn new(target: &Target) -> Reader {
        Reader {
            secrets: target
                .secrets
                .iter()
                .filter_map(S3Secret::from_profile)
                .collect(),
            remote: OnceLock::new(),
        }
    }

    fn remote(&self) -> Result<&Remote> {
        self.remote
            .get_or_init(|| Remote::new(self.secrets.clone()))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl SourceReader for Reader {
    /// The files of the version asked for (`as_of_version`, `as_of_timestamp`, else the
    /// latest) of the table at `location` (absolute, or remote).
    fn read_delta(&self, s: &SourceTable, location: &str) -> Result<String> {
        let fail = |msg: String| {
            Error::new(
                "LF131",
                format!("source {}.{}: {msg}", s.source_name, s.name),
            )
            .in_file(&s.file)
            .hint("check external_location, as_of_version and as_of_timestamp of this source")
        };
        let remote = if crate::project::paths::is_remote(location) {
            Some(self.remote()?)
        } else {
            None
        };
        let as_of = match (
            s.config.get("as_of_version"),
            crate::project::config::get_str(&s.config, "as_of_timestamp"),
        ) {
            (Some(v), None) => AsOf::Version(
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|t| t.parse().ok()))
                    .ok_or_else(|| fail(format!("as_of_version {v} is not a version number")))?,
            ),
            (None, Some(t)) => AsOf::Timestamp(t.to_string()),
            (None, None) => AsOf::Latest,
            (Some(_), Some(_)) => {
                return Err(fail(
                    "as_of_version and as_of_timestamp are both set; keep one".into(),
                ));
            }
        };
        // The Delta error's text, under this source's code, file and hint.
        let failed = |e: Error| fail(e.message.clone());
        let table = Table::open(location, remote).map_err(failed)?;
        let snap = table.snapshot(&as_of).map_err(failed)?;
        table.reader(None, &snap).map_err(failed)
    }
}
