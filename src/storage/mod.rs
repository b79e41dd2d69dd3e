//! Where external files are written and how a new version replaces the old one atomically.
//!
//! Local/NAS: DuckDB writes to a hidden temporary name beside the target, which is renamed
//! into place only after the write succeeded. A single file is replaced by `rename(2)`. A
//! partitioned directory is a symlink to a hidden version directory; the symlink is swapped
//! by `rename(2)` too, so readers see the old tree or the new one, never a mix.
//!
//! S3 has no rename: each build writes under a new version prefix
//! (`{location}.versions/{build}`), the catalog view is switched to it only after the write
//! succeeded, and older versions beyond the retention are deleted afterwards.
//!
//! Every object-store request of the process (S3 here, the Delta log in the delta module) runs on
//! one async runtime, started on first use ([`runtime`]).
//!
//! lakeflow deletes only what it wrote: a location that holds files of something else (a
//! folder or file it did not write locally, objects under `{location}.versions/` that are not
//! its versions on S3) is refused before anything is written, never adopted.

pub mod local;
pub mod runtime;
pub mod s3;
pub mod secret;

use crate::error::{Error, Result};
use crate::project::Target;
use crate::project::paths::is_remote;
use s3::{Remote, S3Secret};
use std::collections::HashSet;

/// The storage side of a run: S3 clients when the target uses S3, and what must be kept.
pub struct Storage {
    pub remote: Option<Remote>,
    pub keep_versions: usize,
    /// Version paths that kept replicas pin: never garbage-collected.
    pub protected: HashSet<String>,
}

impl Storage {
    pub fn for_target(target: &Target) -> Result<Storage> {
        let secrets: Vec<S3Secret> = target
            .secrets
            .iter()
            .filter_map(S3Secret::from_profile)
            .collect();
        let remote = if secrets.is_empty() && !is_remote(&target.external_root) {
            None
        } else {
            let mut remote = Remote::new(secrets)?;
            remote.unsafe_delta_commits = target.unsafe_delta_commits;
            Some(remote)
        };
        Ok(Storage {
            remote,
            keep_versions: target.keep_versions.max(1),
            protected: HashSet::new(),
        })
    }

    fn remote(&self, location: &str) -> Result<&Remote> {
        self.remote.as_ref().ok_or_else(|| {
            Error::new(
                "LF523",
                format!("{location} is on S3, but the target has no s3 secret"),
            )
            .hint("add a `secrets:` entry with `type: s3` to the target in profiles.yml")
        })
    }

    pub fn stage(
        &self,
        location: &str,
        partitioned: bool,
        extension: &str,
        build_id: &str,
    ) -> Result<Staged> {
        if is_remote(location) {
            let remote = self.remote(location)?;
            let prefix = versions_prefix(location);
            let versions = refuse_foreign_objects(remote, location, &prefix)?;
            if versions.is_empty() {
                refuse_foreign_current(remote, location, partitioned)?;
            }
            let write_path = if partitioned {
                format!("{prefix}{build_id}")
            } else {
                format!("{prefix}{build_id}.{extension}")
            };
            return Ok(Staged {
                location: location.to_string(),
                view_path: write_path.clone(),
                pinned_path: write_path.clone(),
                write_path,
                partitioned,
                build_id: build_id.to_string(),
                remote: true,
            });
        }
        local::stage(location, partitioned, build_id)
    }

    /// The version of the model at `location` that readers see now, which an appending write
    /// carries over. Locally the version folder the model's path links to (the link is the
    /// switch); on S3 `recorded`, the version recorded with the catalog view (switched in one
    /// transaction with it).
    pub fn live_version(&self, location: &str, recorded: Option<String>) -> Option<String> {
        if is_remote(location) {
            recorded
        } else {
            local::live_version(location)
        }
    }

    /// The files of the version folder at `from` (a pinned path), relative to it.
    pub fn version_files(&self, staged: &Staged, from: &str) -> Result<Vec<String>> {
        if !staged.remote {
            return local::version_files(std::path::Path::new(from));
        }
        let from = from.trim_end_matches('/');
        let keys = self.remote(&staged.location)?.list(&format!("{from}/"))?;
        Ok(keys
            .iter()
            .filter_map(|k| k.strip_prefix(from)?.strip_prefix('/'))
            .map(str::to_string)
            .collect())
    }

    /// Puts `files` of the version at `from` (a pinned path; names from [`Self::version_files`])
    /// into the staged version, so a write that appends adds files beside them: hard links
    /// locally, server-side copies on S3. Returns how many files were carried over.
    pub fn carry_over(&self, staged: &Staged, from: &str, files: &[String]) -> Result<usize> {
        if !staged.remote {
            return local::link_tree(
                std::path::Path::new(from),
                std::path::Path::new(&staged.write_path),
                files,
            );
        }
        let remote = self.remote(&staged.location)?;
        let from = from.trim_end_matches('/');
        for rel in files {
            remote.copy(
                &format!("{from}/{rel}"),
                &format!("{}/{rel}", staged.write_path.trim_end_matches('/')),
            )?;
        }
        Ok(files.len())
    }

    /// Puts the staged version in place: locally by link; on S3 by copying it to the model's
    /// location, so any reader of that location finds this build's data (the catalog view and
    /// replicas keep reading the version itself).
    pub fn commit(&self, staged: &Staged) -> Result<()> {
        if staged.remote {
            publish_current(self.remote(&staged.location)?, staged)
        } else {
            local::commit(staged)
        }
    }

    /// Removes what a failed write left behind.
    pub fn abort(&self, staged: &Staged) {
        if staged.remote {
            if let Some(r) = &self.remote {
                let _ = r.delete_prefix(&staged.write_path);
            }
        } else {
            local::abort(staged);
        }
    }

    /// After the catalog points at the new version: delete versions beyond the retention.
    pub fn collect_garbage(&self, staged: &Staged) -> Result<()> {
        if !staged.remote {
            return local::collect_garbage(staged, self.keep_versions - 1, &self.protected);
        }
        let remote = self.remote(&staged.location)?;
        let prefix = versions_prefix(&staged.location);
        let mut versions: Vec<String> = remote
            .list(&prefix)?
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .filter(|v| is_version_name(v))
            .collect();
        versions.sort();
        versions.dedup();
        let live = staged
            .write_path
            .strip_prefix(&prefix)
            .unwrap_or_default()
            .to_string();
        versions.retain(|v| *v != live);
        let drop = versions.len().saturating_sub(self.keep_versions - 1);
        for v in &versions[..drop] {
            let path = format!("{prefix}{v}");
            if !self.protected.contains(&path) {
                remote.delete_prefix(&path)?;
            }
        }
        Ok(())
    }
}

/// Before lakeflow's first version of a model on S3: objects already at its location are not
/// lakeflow's, and copying the build there would replace them.
fn refuse_foreign_current(remote: &Remote, location: &str, partitioned: bool) -> Result<()> {
    let location = location.trim_end_matches('/');
    let found = if partitioned {
        remote.list(&format!("{location}/"))?.into_iter().next()
    } else {
        remote.exists(location)?.then(|| location.to_string())
    };
    match found {
        None => Ok(()),
        Some(key) => Err(Error::new(
            "LF526",
            format!(
                "{key} is at the model's location {location}, and lakeflow did not write it; the build's copy there would replace it"
            ),
        )
        .hint("move those objects away, or give the model another `location`")),
    }
}

/// Copies the version `staged` wrote to the model's location: a single file as one
/// server-side copy (readers see the old object or the new one, whole); a folder object by
/// object, then the objects the previous version put there and this one does not are deleted.
/// Objects lakeflow never put there are left alone.
fn publish_current(remote: &Remote, staged: &Staged) -> Result<()> {
    let version = staged.write_path.trim_end_matches('/');
    let location = staged.location.trim_end_matches('/');
    if !staged.partitioned {
        return remote.copy(version, location);
    }
    let prefix = versions_prefix(location);
    let this = version.strip_prefix(&prefix).unwrap_or(version);
    let previous = remote
        .list(&prefix)?
        .iter()
        .filter_map(|k| k.strip_prefix(&prefix))
        .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
        .filter(|v| is_version_name(v) && v.as_str() != this)
        .max();
    let relative = |root: &str| -> Result<std::collections::BTreeSet<String>> {
        Ok(remote
            .list(&format!("{root}/"))?
            .iter()
            .filter_map(|k| k.strip_prefix(root).map(str::to_string))
            .collect())
    };
    let fresh = relative(version)?;
    for rel in &fresh {
        remote.copy(&format!("{version}{rel}"), &format!("{location}{rel}"))?;
    }
    if let Some(previous) = previous {
        for rel in relative(&format!("{prefix}{previous}"))?.difference(&fresh) {
            remote.delete(&format!("{location}{rel}"))?;
        }
    }
    Ok(())
}

fn versions_prefix(location: &str) -> String {
    format!("{}.versions/", location.trim_end_matches('/'))
}

/// Whether `name` (a folder or file directly under `{location}.versions/`) is a version
/// lakeflow wrote: a build id (`20260131T120000Z-123456-42`), with an extension for a file.
pub fn is_version_name(name: &str) -> bool {
    let id = name.split_once('.').map_or(name, |(id, _)| id);
    id.len() >= 16
        && id.starts_with(|c: char| c.is_ascii_digit())
        && id.contains('T')
        && id
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, 'T' | 'Z' | '-'))
}

/// Objects under `{location}.versions/` that are not versions would be deleted by the
/// garbage collection of this model: refuse to write there instead. Returns the keys there.
fn refuse_foreign_objects(remote: &Remote, location: &str, prefix: &str) -> Result<Vec<String>> {
    let keys = remote.list(prefix)?;
    let foreign = keys.iter().find(|k| {
        let rest = k.strip_prefix(prefix).unwrap_or(k);
        !is_version_name(rest.split('/').next().unwrap_or(rest))
    });
    match foreign {
        None => Ok(keys),
        Some(key) => Err(Error::new(
            "LF526",
            format!(
                "{prefix} holds {key}, which lakeflow did not write; the model at {location} keeps its versions there and would delete it"
            ),
        )
        .hint("move those objects away, or give the model another `location`")),
    }
}

/// A write in progress: DuckDB writes to `write_path`; once committed, the catalog view scans
/// `view_path` (locally the model's stable path, on S3 the version) and a published replica
/// pins `pinned_path` (this build's version).
#[derive(Debug)]
pub struct Staged {
    pub location: String,
    pub write_path: String,
    pub view_path: String,
    pub pinned_path: String,
    pub partitioned: bool,
    pub build_id: String,
    pub remote: bool,
}

/// The path a reader scans for files written at `path`.
pub fn scan_path(path: &str, partitioned: bool, extension: &str) -> String {
    if partitioned {
        format!("{}/**/*.{extension}", path.trim_end_matches('/'))
    } else {
        path.to_string()
    }
}
