//! Local and NAS paths. Every build writes a version beside the model's path, under a hidden
//! name (`.x.parquet.lf-v-<build>`, `.x.lf-v-<build>/`); the model's own path is then swapped
//! to it with `rename(2)`: a hard link for a single file, a symlink for a partitioned folder.
//! Readers of the path see the old version or the new one; published replicas pin a version.
//!
//! The model's path is lakeflow's only when it is absent, a symlink to one of its version
//! folders, or a hard link (or, where links are refused, a copy) of one of its version files.
//! Anything else there belongs to someone else and is refused, never replaced.

use super::Staged;
use crate::error::{Error, Result};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

const TMP_MARK: &str = ".lf-tmp-";
const VERSION_MARK: &str = ".lf-v-";
/// Folders that older lakeflow builds moved aside (`.x.lf-v-0-adopted-<build>`) when a model's
/// location held someone else's files: never garbage-collected, since they hold that data.
const ADOPTED_MARK: &str = "0-adopted-";

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
    refuse_foreign(location, partitioned)?;
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

/// The version the model's path is a symlink to, if it is one that lakeflow made (to a
/// `.name.lf-v-…` sibling).
fn linked_version(location: &str) -> Option<PathBuf> {
    let (parent, name) = split(location).ok()?;
    let target = std::fs::read_link(location).ok()?;
    let file = target.file_name()?.to_string_lossy().into_owned();
    let in_parent = target
        .parent()
        .is_none_or(|p| p.as_os_str().is_empty() || p == parent);
    (in_parent && file.starts_with(&format!(".{name}{VERSION_MARK}"))).then(|| parent.join(file))
}

/// The version folder the partitioned model's path links to now, if lakeflow made the link.
pub fn live_version(location: &str) -> Option<String> {
    linked_version(location)
        .filter(|v| v.is_dir())
        .map(|v| v.to_string_lossy().into_owned())
}

/// Refuses a location that holds something lakeflow did not write (see the module comment):
/// putting a version in place there would replace it, and a later garbage collection would
/// delete it.
fn refuse_foreign(location: &str, partitioned: bool) -> Result<()> {
    let path = Path::new(location);
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let (parent, name) = split(location)?;
    let version_prefix = format!(".{name}{VERSION_MARK}");
    if meta.file_type().is_symlink() {
        if linked_version(location).is_some() {
            return Ok(());
        }
        return Err(Error::new(
            "LF517",
            format!("{location} is a symlink that lakeflow did not make"),
        )
        .hint("remove the symlink (what it points to is not touched), or give the model another `location`"));
    }
    if meta.is_dir() {
        let what = if partitioned {
            "the model's files"
        } else {
            "the model's one file"
        };
        return Err(Error::new(
            "LF517",
            format!(
                "{location} is a folder that lakeflow did not write; putting {what} there would replace it, and what it holds would be lost"
            ),
        )
        .hint("move the folder away, or give the model another `location`"));
    }
    if is_version_of(path, &parent, &version_prefix, &meta) {
        return Ok(());
    }
    Err(Error::new(
        "LF518",
        format!(
            "{location} is a file that lakeflow did not write; building the model would replace it"
        ),
    )
    .hint("move the file away (or delete it if it is an old output), or give the model another `location`"))
}

/// Whether the file `path` is one of lakeflow's version files beside it: the same inode (the
/// hard link lakeflow makes), or, where the share refused links, the same bytes.
fn is_version_of(path: &Path, parent: &Path, prefix: &str, meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(parent) else {
        return false;
    };
    let versions: Vec<(PathBuf, std::fs::Metadata)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|e| Some((e.path(), std::fs::symlink_metadata(e.path()).ok()?)))
        .filter(|(_, m)| m.is_file())
        .collect();
    versions
        .iter()
        .any(|(_, m)| m.dev() == meta.dev() && m.ino() == meta.ino())
        || versions
            .iter()
            .any(|(v, m)| m.len() == meta.len() && same_bytes(v, path))
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (Ok(fa), Ok(fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    let (mut ra, mut rb) = (
        std::io::BufReader::new(fa).bytes(),
        std::io::BufReader::new(fb).bytes(),
    );
    loop {
        match (ra.next(), rb.next()) {
            (None, None) => return true,
            (Some(Ok(x)), Some(Ok(y))) if x == y => {}
            _ => return false,
        }
    }
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
        refuse_foreign(&staged.location, false)?;
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
    // Checked at stage already; again here, since something may have appeared meanwhile.
    refuse_foreign(&staged.location, true)?;
    write_manifest(written, version)?;
    rename(written, version)?;
    let version_name = version
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    std::os::unix::fs::symlink(&version_name, &link_tmp)
        .map_err(|e| Error::io("LF515", "create symlink", &link_tmp, e))?;
    rename(&link_tmp, target)
}

/// Hard-links (or, where the share refuses links, copies) the files lakeflow wrote under
/// `from` (a version folder) into the same place under `to`; returns how many. Files a user put
/// into the folder stay where they are: they are not lakeflow's to carry into a new version.
pub fn link_tree(from: &Path, to: &Path, files: &[String]) -> Result<usize> {
    std::fs::create_dir_all(to).map_err(|e| Error::io("LF512", "create folder", to, e))?;
    for rel in files {
        let (src, dest) = (from.join(rel), to.join(rel));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("LF512", "create folder", parent, e))?;
        }
        if std::fs::hard_link(&src, &dest).is_err() {
            std::fs::copy(&src, &dest).map_err(|e| Error::io("LF515", "copy", &src, e))?;
        }
    }
    Ok(files.len())
}

/// The files of a version folder, relative to it (`/`-separated).
pub fn version_files(dir: &Path) -> Result<Vec<String>> {
    let files = match read_manifest(dir) {
        Some(files) => files,
        None => list_files(dir)?,
    };
    Ok(files
        .iter()
        .map(|f| f.to_string_lossy().replace('\\', "/"))
        .collect())
}

/// The list of files lakeflow wrote into a version folder sits beside it, named after it with
/// this suffix, so the folder itself holds only data.
const MANIFEST_SUFFIX: &str = ".files";

fn manifest_of(version: &Path) -> PathBuf {
    let mut name = version.as_os_str().to_os_string();
    name.push(MANIFEST_SUFFIX);
    PathBuf::from(name)
}

/// Every file below `dir` (not following links), relative to it, without hidden ones.
fn list_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        let entries = std::fs::read_dir(&abs).map_err(|e| Error::io("LF516", "list", &abs, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("LF516", "list", &abs, e))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let kind = entry
                .file_type()
                .map_err(|e| Error::io("LF516", "list", &entry.path(), e))?;
            if kind.is_dir() {
                stack.push(rel.join(entry.file_name()));
            } else {
                out.push(rel.join(entry.file_name()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Records the files of a version folder about to be committed, so that garbage collection
/// later deletes exactly those and nothing a user put beside them.
fn write_manifest(dir: &Path, version: &Path) -> Result<()> {
    let files = list_files(dir)?;
    let text: String = files
        .iter()
        .map(|f| format!("{}\n", f.to_string_lossy()))
        .collect();
    let path = manifest_of(version);
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, text).map_err(|e| Error::io("LF515", "write", &path, e))
}

fn read_manifest(dir: &Path) -> Option<Vec<PathBuf>> {
    let text = std::fs::read_to_string(manifest_of(dir)).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| crate::project::paths::contained(Path::new(l)))
            .collect(),
    )
}

/// Deletes a version lakeflow no longer needs: a single file as it is; a folder by the files its
/// manifest lists, then the folders left empty. A folder that still holds other files (a
/// user's) is kept, with a warning, rather than deleted with them.
fn remove_version(path: &Path) {
    if path.is_symlink() || !path.is_dir() {
        let _ = std::fs::remove_file(path);
        return;
    }
    let Some(files) = read_manifest(path) else {
        // Written before versions had manifests: everything in it is lakeflow's.
        let _ = std::fs::remove_dir_all(path);
        return;
    };
    for rel in &files {
        let _ = std::fs::remove_file(path.join(rel));
    }
    remove_empty_dirs(path);
    if !path.exists() {
        let _ = std::fs::remove_file(manifest_of(path));
    } else {
        // An empty manifest says lakeflow owns nothing here any more, so no later pass takes
        // the folder for one written before manifests existed.
        let _ = std::fs::write(manifest_of(path), "");
        crate::warnln!(
            "kept {}: it holds files lakeflow did not write",
            path.display()
        );
    }
}

fn remove_empty_dirs(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
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
        } else if file.starts_with(&version_prefix) && file.ends_with(MANIFEST_SUFFIX) {
            // The list of a version that a killed run never put in place.
            let version = file.trim_end_matches(MANIFEST_SUFFIX);
            if !parent.join(version).exists() {
                let _ = std::fs::remove_file(parent.join(&file));
            }
        } else if file.starts_with(&version_prefix)
            && Some(&file) != live.as_ref()
            && !file.contains(ADOPTED_MARK)
        {
            versions.push(file);
        }
    }
    versions.sort();
    let drop = versions.len().saturating_sub(keep_previous);
    for file in &versions[..drop] {
        let path = parent.join(file);
        if !protected.contains(path.to_string_lossy().as_ref()) {
            remove_version(&path);
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
            vec![
                ".p.lf-v-b2",
                ".p.lf-v-b2.files",
                ".p.lf-v-b3",
                ".p.lf-v-b3.files",
                "p"
            ]
        );
    }

    #[test]
    fn a_folder_or_file_lakeflow_did_not_write_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mine = dir.path().join("gold/p");
        std::fs::create_dir_all(&mine).unwrap();
        std::fs::write(mine.join("keep.csv"), "precious").unwrap();
        let loc = mine.to_string_lossy().into_owned();
        let err = stage(&loc, true, "b1").unwrap_err();
        assert_eq!(err.code, "LF517", "{err}");
        assert!(err.message.contains(&loc), "{err}");
        // A single file the user keeps there is refused too.
        let file = dir.path().join("gold/x.parquet");
        std::fs::write(&file, "user data").unwrap();
        let err = stage(&file.to_string_lossy(), false, "b1").unwrap_err();
        assert_eq!(err.code, "LF518", "{err}");
        // So is a symlink to something else.
        let link = dir.path().join("gold/l");
        std::os::unix::fs::symlink(&mine, &link).unwrap();
        assert_eq!(
            stage(&link.to_string_lossy(), true, "b1").unwrap_err().code,
            "LF517"
        );
        assert_eq!(
            std::fs::read_to_string(mine.join("keep.csv")).unwrap(),
            "precious"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "user data");
    }

    #[test]
    fn lakeflow_recognises_its_own_links_and_copies() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.parquet");
        let loc = file.to_string_lossy().into_owned();
        let s = stage(&loc, false, "b1").unwrap();
        std::fs::write(&s.write_path, "v1").unwrap();
        commit(&s).unwrap();
        // Its hard link: rebuilt.
        let s = stage(&loc, false, "b2").unwrap();
        std::fs::write(&s.write_path, "v2").unwrap();
        commit(&s).unwrap();
        // A copy of its version (a share that refuses hard links): rebuilt.
        std::fs::remove_file(&file).unwrap();
        std::fs::copy(dir.path().join(".x.parquet.lf-v-b2"), &file).unwrap();
        let s = stage(&loc, false, "b3").unwrap();
        std::fs::write(&s.write_path, "v3").unwrap();
        commit(&s).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "v3");
        // Partitioned: its own symlink is replaced, and names the live version.
        let p = dir.path().join("p").to_string_lossy().into_owned();
        for id in ["b1", "b2"] {
            let s = stage(&p, true, id).unwrap();
            std::fs::create_dir_all(&s.write_path).unwrap();
            commit(&s).unwrap();
            assert_eq!(live_version(&p), Some(s.pinned_path.clone()));
        }
    }

    #[test]
    fn folders_adopted_by_older_builds_are_never_collected() {
        let dir = tempfile::tempdir().unwrap();
        let adopted = dir.path().join(".p.lf-v-0-adopted-b0");
        std::fs::create_dir_all(&adopted).unwrap();
        std::fs::write(adopted.join("keep.csv"), "precious").unwrap();
        let loc = dir.path().join("p").to_string_lossy().into_owned();
        for id in ["b1", "b2", "b3"] {
            let s = stage(&loc, true, id).unwrap();
            std::fs::create_dir_all(&s.write_path).unwrap();
            commit(&s).unwrap();
            collect_garbage(&s, 0, &HashSet::new()).unwrap();
        }
        assert!(adopted.join("keep.csv").exists());
        assert_eq!(
            names(dir.path()),
            vec![
                ".p.lf-v-0-adopted-b0",
                ".p.lf-v-b3",
                ".p.lf-v-b3.files",
                "p"
            ]
        );
    }
}
