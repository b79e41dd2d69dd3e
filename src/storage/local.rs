//! Local and NAS paths. Every build writes a version beside the model's path, under a hidden
//! name (`.x.parquet.lf-v-<build>`, `.x.lf-v-<build>/`); the model's own path is then swapped
//! to it with `rename(2)`: a hard link for a single file, a symlink for a partitioned folder.
//! Readers of the path see the old version or the new one; published replicas pin a version.

use super::Staged;
use crate::error::{Error, Result};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

const TMP_MARK: &str = ".lf-tmp-";
const VERSION_MARK: &str = ".lf-v-";

fn split(location: &str) -> Result<(PathBuf, String)> {
    let path = Path::new(location);
    let parent = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::new("LF511", format!("location '{location}' has no file name")))?;
    Ok((parent, name))
}

fn version_path(location: &str, build_id: &str) -> Result<PathBuf> {
    let (parent, name) = split(location)?;
    Ok(parent.join(format!(".{name}{VERSION_MARK}{build_id}")))
}

pub fn stage(location: &str, partitioned: bool, build_id: &str) -> Result<Staged> {
    let (parent, name) = split(location)?;
    std::fs::create_dir_all(&parent)
        .map_err(|e| Error::io("LF512", "create folder", &parent, e))?;
    let write_path = parent.join(format!(".{name}{TMP_MARK}{build_id}"));
    Ok(Staged {
        location: location.to_string(),
        write_path: write_path.to_string_lossy().into_owned(),
        view_path: location.to_string(),
        pinned_path: version_path(location, build_id)?
            .to_string_lossy()
            .into_owned(),
        partitioned,
        build_id: build_id.to_string(),
        remote: false,
    })
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| {
        Error::new(
            "LF513",
            format!("cannot move {} to {}: {e}", from.display(), to.display()),
        )
    })
}

pub fn commit(staged: &Staged) -> Result<()> {
    let target = Path::new(&staged.location);
    let written = Path::new(&staged.write_path);
    let version = Path::new(&staged.pinned_path);
    let (parent, name) = split(&staged.location)?;
    let link_tmp = parent.join(format!(".{name}.lf-link-{}", staged.build_id));
    let _ = std::fs::remove_file(&link_tmp);
    if !staged.partitioned {
        if target.is_dir() && !target.is_symlink() {
            return Err(Error::new(
                "LF514",
                format!(
                    "{} is a directory, but the model writes one file",
                    staged.location
                ),
            )
            .hint("remove the directory, or set partition_by so the model writes a directory"));
        }
        rename(written, version)?;
        // Some NAS shares refuse hard links; a copy keeps the same guarantees, at a cost.
        if std::fs::hard_link(version, &link_tmp).is_err() {
            std::fs::copy(version, &link_tmp)
                .map_err(|e| Error::io("LF515", "copy", version, e))?;
        }
        return rename(&link_tmp, target);
    }
    if !written.exists() {
        // A partitioned COPY of zero rows writes no directory at all.
        std::fs::create_dir_all(written)
            .map_err(|e| Error::io("LF512", "create folder", written, e))?;
    }
    rename(written, version)?;
    if target.exists() && !target.is_symlink() {
        // First lakeflow build over a folder written by something else: keep it as a version.
        rename(
            target,
            &parent.join(format!(
                ".{name}{VERSION_MARK}0-adopted-{}",
                staged.build_id
            )),
        )?;
    }
    let version_name = version
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    std::os::unix::fs::symlink(&version_name, &link_tmp)
        .map_err(|e| Error::io("LF515", "create symlink", &link_tmp, e))?;
    rename(&link_tmp, target)
}

/// Hard-links (or, where the share refuses links, copies) every file under `from` into the
/// same place under `to`; returns how many.
pub fn link_tree(from: &Path, to: &Path) -> Result<usize> {
    let mut n = 0;
    let entries = std::fs::read_dir(from).map_err(|e| Error::io("LF516", "list", from, e))?;
    std::fs::create_dir_all(to).map_err(|e| Error::io("LF512", "create folder", to, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("LF516", "list", from, e))?;
        let src = entry.path();
        let dest = to.join(entry.file_name());
        if src.is_dir() {
            n += link_tree(&src, &dest)?;
        } else {
            if std::fs::hard_link(&src, &dest).is_err() {
                std::fs::copy(&src, &dest).map_err(|e| Error::io("LF515", "copy", &src, e))?;
            }
            n += 1;
        }
    }
    Ok(n)
}

pub fn abort(staged: &Staged) {
    let p = Path::new(&staged.write_path);
    let _ = if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    };
}

/// One pass over the model's folder after a commit: removes what killed runs left (temporary
/// files and links) and versions beyond the live one and `keep_previous` before it, except
/// `protected` ones (pinned by kept replicas).
pub fn collect_garbage(
    staged: &Staged,
    keep_previous: usize,
    protected: &HashSet<String>,
) -> Result<()> {
    let (parent, name) = split(&staged.location)?;
    let Ok(entries) = std::fs::read_dir(&parent) else {
        return Ok(());
    };
    let version_prefix = format!(".{name}{VERSION_MARK}");
    let leftovers = [format!(".{name}{TMP_MARK}"), format!(".{name}.lf-link-")];
    let live = Path::new(&staged.pinned_path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let mut versions = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let file = entry.file_name().to_string_lossy().into_owned();
        if leftovers.iter().any(|p| file.starts_with(p.as_str())) {
            remove(&parent.join(&file));
        } else if file.starts_with(&version_prefix) && Some(&file) != live.as_ref() {
            versions.push(file);
        }
    }
    versions.sort();
    let drop = versions.len().saturating_sub(keep_previous);
    for file in &versions[..drop] {
        let path = parent.join(file);
        if !protected.contains(path.to_string_lossy().as_ref()) {
            remove(&path);
        }
    }
    Ok(())
}

fn remove(path: &Path) {
    let _ = if path.is_dir() && !path.is_symlink() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn single_file_versions_are_hard_linked_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let silver = dir.path().join("silver");
        let loc = silver.join("x.parquet").to_string_lossy().into_owned();
        std::fs::create_dir_all(&silver).unwrap();
        std::fs::write(silver.join(".x.parquet.lf-tmp-old"), "junk").unwrap();
        let mut pinned = Vec::new();
        for (i, id) in ["b1", "b2", "b3"].iter().enumerate() {
            let s = stage(&loc, false, id).unwrap();
            std::fs::write(&s.write_path, format!("v{i}")).unwrap();
            commit(&s).unwrap();
            let protect: HashSet<String> =
                [format!("{}/.x.parquet.lf-v-b1", silver.display())].into();
            collect_garbage(&s, 0, &protect).unwrap();
            assert_eq!(std::fs::read_to_string(&loc).unwrap(), format!("v{i}"));
            pinned.push(s.pinned_path.clone());
        }
        // b1 is pinned by a replica, b3 is live; b2 is gone, and so is the stale temp file.
        assert_eq!(
            names(&silver),
            vec![".x.parquet.lf-v-b1", ".x.parquet.lf-v-b3", "x.parquet"]
        );
        assert_eq!(std::fs::read_to_string(&pinned[0]).unwrap(), "v0");
    }

    #[test]
    fn partitioned_versions_swap_by_symlink_and_old_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let loc = dir.path().join("gold/p").to_string_lossy().into_owned();
        for (i, id) in ["b1", "b2", "b3"].iter().enumerate() {
            let s = stage(&loc, true, id).unwrap();
            std::fs::create_dir_all(Path::new(&s.write_path).join("k=1")).unwrap();
            std::fs::write(
                Path::new(&s.write_path).join("k=1/d.parquet"),
                format!("{i}"),
            )
            .unwrap();
            commit(&s).unwrap();
            collect_garbage(&s, 1, &HashSet::new()).unwrap();
            assert_eq!(
                std::fs::read_to_string(format!("{loc}/k=1/d.parquet")).unwrap(),
                format!("{i}")
            );
        }
        assert_eq!(
            names(&dir.path().join("gold")),
            vec![".p.lf-v-b2", ".p.lf-v-b3", "p"]
        );
    }
}
