//! Local and NAS paths: temporary names, rename into place, symlinked partition versions.

use super::Staged;
use crate::error::{Error, Result};
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

pub fn stage(location: &str, partitioned: bool, build_id: &str) -> Result<Staged> {
    let (parent, name) = split(location)?;
    std::fs::create_dir_all(&parent)
        .map_err(|e| Error::io("LF512", "create folder", &parent, e))?;
    remove_matching(&parent, &format!(".{name}{TMP_MARK}"), None);
    let write_path = parent.join(format!(".{name}{TMP_MARK}{build_id}"));
    Ok(Staged {
        location: location.to_string(),
        write_path: write_path.to_string_lossy().into_owned(),
        read_path: location.to_string(),
        partitioned,
        build_id: build_id.to_string(),
        remote: false,
    })
}

pub fn commit(staged: &Staged) -> Result<()> {
    let target = Path::new(&staged.location);
    let written = Path::new(&staged.write_path);
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|e| {
            Error::new(
                "LF513",
                format!("cannot move {} to {}: {e}", from.display(), to.display()),
            )
        })
    };
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
        return rename(written, target);
    }
    if !written.exists() {
        // A partitioned COPY of zero rows writes no directory at all.
        std::fs::create_dir_all(written)
            .map_err(|e| Error::io("LF512", "create folder", written, e))?;
    }
    let (parent, name) = split(&staged.location)?;
    let version_name = format!(".{name}{VERSION_MARK}{}", staged.build_id);
    rename(written, &parent.join(&version_name))?;
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
    let link_tmp = parent.join(format!(".{name}.lf-link-{}", staged.build_id));
    let _ = std::fs::remove_file(&link_tmp);
    std::os::unix::fs::symlink(&version_name, &link_tmp)
        .map_err(|e| Error::io("LF515", "create symlink", &link_tmp, e))?;
    rename(&link_tmp, target)
}

/// Removes partition versions beyond the live one and `keep_previous` before it.
pub fn collect_garbage(staged: &Staged, keep_previous: usize) -> Result<()> {
    if !staged.partitioned {
        return Ok(());
    }
    let (parent, name) = split(&staged.location)?;
    let live = format!(".{name}{VERSION_MARK}{}", staged.build_id);
    remove_matching(
        &parent,
        &format!(".{name}{VERSION_MARK}"),
        Some((&live, keep_previous)),
    );
    Ok(())
}

pub fn abort(staged: &Staged) {
    let p = Path::new(&staged.write_path);
    let _ = if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    };
}

/// Removes entries of `dir` starting with `prefix`. With `keep = (live, n)`, keeps `live` and
/// the `n` newest others (names sort by build id, which sorts by time).
fn remove_matching(dir: &Path, prefix: &str, keep: Option<(&str, usize)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    if let Some((live, n)) = keep {
        names.retain(|x| x != live);
        let drop = names.len().saturating_sub(n);
        names.truncate(drop);
    }
    for n in names {
        let p = dir.join(n);
        let _ = if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_file_is_renamed_into_place_and_stale_tmp_removed() {
        let dir = tempfile::tempdir().unwrap();
        let loc = dir
            .path()
            .join("silver/x.parquet")
            .to_string_lossy()
            .into_owned();
        std::fs::create_dir_all(dir.path().join("silver")).unwrap();
        std::fs::write(dir.path().join("silver/.x.parquet.lf-tmp-old"), "junk").unwrap();
        let s = stage(&loc, false, "b1").unwrap();
        assert!(!dir.path().join("silver/.x.parquet.lf-tmp-old").exists());
        std::fs::write(&s.write_path, "new").unwrap();
        commit(&s).unwrap();
        assert_eq!(std::fs::read_to_string(&loc).unwrap(), "new");
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
            collect_garbage(&s, 1).unwrap();
            assert_eq!(
                std::fs::read_to_string(format!("{loc}/k=1/d.parquet")).unwrap(),
                format!("{i}")
            );
        }
        let mut left: Vec<String> = std::fs::read_dir(dir.path().join("gold"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec![".p.lf-v-b2", ".p.lf-v-b3", "p"]);
    }
}
