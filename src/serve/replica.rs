//! The replica `lakeflow serve` serves: where it comes from, the one served now, and the
//! watcher's step that opens a newly published one and switches to it once it answers.

use super::serve_error;
use crate::error::{Error, Result};
use crate::project::Project;
use duckdb::Connection;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One opened replica: the session every query on it starts from.
pub(super) struct Replica {
    pub(super) conn: Mutex<Connection>,
    pub(super) build_id: String,
    /// The replica as it was when opened: the file's device, inode and time, or the S3
    /// object's ETag.
    identity: String,
    /// The local copy of an S3 replica, removed once this replica is dropped (DuckDB keeps
    /// its own handle while a query still reads it).
    copy: Option<PathBuf>,
}

/// The replica new queries get.
pub(super) struct Current {
    pub(super) replica: Mutex<Option<Arc<Replica>>>,
    /// A replica that could not be opened, not tried again until it changes.
    pub(super) refused: Mutex<Option<String>>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(copy) = &self.copy {
            let _ = std::fs::remove_file(copy);
        }
    }
}

/// Where replicas come from: a local file the build publishes to, or an S3 object pulled
/// into a local folder on each change.
pub(super) enum Source {
    Local(PathBuf),
    Remote {
        url: String,
        storage: crate::storage::Storage,
        cache: PathBuf,
    },
}

impl Source {
    pub(super) fn describe(&self) -> String {
        match self {
            Source::Local(p) => p.display().to_string(),
            Source::Remote { url, .. } => url.clone(),
        }
    }

    pub(super) fn poll_every(&self) -> Duration {
        match self {
            Source::Local(_) => Duration::from_millis(500),
            Source::Remote { .. } => Duration::from_secs(5),
        }
    }
}

impl Current {
    pub(super) fn get(&self) -> Option<Arc<Replica>> {
        self.replica.lock().ok().and_then(|r| r.clone())
    }
}

/// Where the target publishes its replica.
pub(super) fn replica_source(project: &Project) -> Result<Source> {
    let target = &project.target;
    let publish = target.publish.as_ref().ok_or_else(|| {
        serve_error(format!("target '{}' publishes no replica", target.name))
            .hint("add `publish: {to: ...}` to the target in profiles.yml and run `lakeflow build` (or `lakeflow catalog publish`)")
    })?;
    if !crate::project::paths::is_remote(&publish.to) {
        return Ok(Source::Local(PathBuf::from(&publish.to)));
    }
    let cache = project.target_path.join("serve");
    std::fs::create_dir_all(&cache).map_err(|e| Error::io("LF606", "create", &cache, e))?;
    Ok(Source::Remote {
        url: publish.to.clone(),
        storage: crate::storage::Storage::for_target(target)?,
        cache,
    })
}

/// What the replica is now: the local file's device, inode and time, or the S3 object's
/// ETag; None when there is none (yet), or S3 cannot be reached (the current replica stays).
pub(super) fn identity(source: &Source) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    match source {
        Source::Local(file) => {
            let m = std::fs::metadata(file).ok()?;
            Some(format!("{}:{}:{}", m.dev(), m.ino(), m.mtime()))
        }
        Source::Remote { url, storage, .. } => storage.remote.as_ref()?.version(url).ok()?,
    }
}

/// Opens the replica when it is not the one served, and switches to it once it answers; a
/// replica that cannot be opened leaves the current one in place.
pub(super) fn refresh(
    project: &Project,
    source: &Source,
    current: &Current,
    session: &crate::query::SessionLimits,
) {
    let Some(id) = identity(source) else {
        return;
    };
    if current.get().is_some_and(|r| r.identity == id)
        || current
            .refused
            .lock()
            .is_ok_and(|r| r.as_ref() == Some(&id))
    {
        return;
    }
    let (file, copy) = match source {
        Source::Local(file) => (file.clone(), None),
        Source::Remote {
            url,
            storage,
            cache,
        } => {
            let copy = cache.join(format!("replica-{}.duckdb", uuid::Uuid::new_v4().simple()));
            if let Err(e) = crate::publish::pull(storage, url, &copy) {
                crate::warnln!("lakeflow serve: cannot pull {url}: {}", e.message);
                return;
            }
            (copy.clone(), Some(copy))
        }
    };
    let opened = crate::query::open(project, &file, session).and_then(|conn| {
        let build_id: String = conn
            .query_row("select build_id from _lakeflow.replica", [], |r| r.get(0))
            .map_err(|e| {
                serve_error(format!(
                    "{} is not a lakeflow replica: {e}",
                    source.describe()
                ))
            })?;
        Ok(Replica {
            conn: Mutex::new(conn),
            build_id,
            identity: id.clone(),
            copy: copy.clone(),
        })
    });
    match opened {
        Ok(replica) => {
            // The same build again (a replica pulled anew) is switched to without a word.
            if current.get().is_none_or(|r| r.build_id != replica.build_id) {
                crate::errln!("lakeflow serve: serving build {}", replica.build_id);
            }
            if let Ok(mut r) = current.replica.lock() {
                *r = Some(Arc::new(replica));
            }
        }
        Err(e) => {
            crate::warnln!(
                "lakeflow serve: the replica {} was not switched to: {}",
                source.describe(),
                e.message
            );
            if let Some(copy) = copy {
                let _ = std::fs::remove_file(copy);
            }
            if let Ok(mut r) = current.refused.lock() {
                *r = Some(id);
            }
        }
    }
}
