//! One writer per catalog: an exclusive lock on `<catalog>.lock`, naming its holder.

use crate::error::{Error, Result};
use fs2::FileExt;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

/// Held for the whole run: a second writer of the same catalog is refused, naming this one.
pub struct CatalogLock {
    file: File,
}

impl CatalogLock {
    pub fn acquire(catalog: &str, command: &str) -> Result<Option<CatalogLock>> {
        if catalog == ":memory:" {
            return Ok(None);
        }
        let path = PathBuf::from(format!("{catalog}.lock"));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("LF501", "create folder", parent, e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("LF501", "open lock file", &path, e))?;
        if file.try_lock_exclusive().is_err() {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "another lakeflow process"
            } else {
                holder
            };
            return Err(Error::new("LF502", format!("catalog {catalog} is being written by {holder}"))
                .hint("only one lakeflow run may write a catalog at a time; wait for it to finish (readers: use a published replica)"));
        }
        let info = format!(
            "pid {} ({command}, started {})",
            std::process::id(),
            crate::model::clock::now_rfc3339()
        );
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = file.write_all(info.as_bytes());
        let _ = file.flush();
        Ok(Some(CatalogLock { file }))
    }
}

impl Drop for CatalogLock {
    fn drop(&mut self) {
        // The holder line goes with the holder; the OS releases the lock itself.
        let _ = self.file.set_len(0);
    }
}
