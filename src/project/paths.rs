//! Paths as the filesystem will see them: `.` and `..` resolved, symlinks of the part that
//! exists followed. Every check of the form "is this inside that folder" goes through here,
//! because a string or component prefix test is fooled by `dev/../prod` and by links.

use std::path::{Component, Path, PathBuf};

/// Whether a location is a URL (`s3://...`) rather than a local path.
pub fn is_remote(location: &str) -> bool {
    location.contains("://")
}

/// Removes `.` and `..` components without touching the filesystem.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The real path `path` names: its longest existing ancestor canonicalized (symlinks followed),
/// the rest added lexically. `path` should be absolute.
pub fn resolve(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Some(real) = real_path(&existing) {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return normalize(&out);
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            // `..` or the root itself: resolve what is left lexically.
            _ => {
                let normalized = normalize(path);
                if normalized == *path {
                    return normalized;
                }
                return resolve(&normalized);
            }
        }
    }
}

/// `path` canonicalized, if it exists. Folders are remembered for the rest of the process:
/// a project of thousands of models checks as many locations under the same few folders,
/// and canonicalizing reads every component's link.
fn real_path(path: &Path) -> Option<PathBuf> {
    static FOLDERS: std::sync::LazyLock<
        std::sync::Mutex<std::collections::HashMap<PathBuf, PathBuf>>,
    > = std::sync::LazyLock::new(Default::default);
    if let Some(real) = FOLDERS.lock().ok()?.get(path) {
        return Some(real.clone());
    }
    // A missing path costs one stat, not a walk of its components.
    let meta = std::fs::symlink_metadata(path).ok()?;
    let real = std::fs::canonicalize(path).ok()?;
    if meta.is_dir()
        && let Ok(mut folders) = FOLDERS.lock()
    {
        folders.insert(path.to_path_buf(), real.clone());
    }
    Some(real)
}

/// Whether `path` is `root` or lies below it, once both are resolved.
pub fn is_within(path: &Path, root: &Path) -> bool {
    resolve(path).starts_with(resolve(root))
}

/// Whether `path` lies strictly below `root` (not `root` itself), once both are resolved. A
/// symlink at `path` is judged by where the link itself is, not by where it points.
pub fn is_strictly_inside(path: &Path, root: &Path) -> bool {
    let root = resolve(root);
    let own = match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => resolve(parent).join(name),
        _ => resolve(path),
    };
    let own = normalize(&own);
    own != root && own.starts_with(&root)
}

/// A relative path that cannot leave the folder it is joined to: root, `..` and `.`
/// components are dropped (`/abs/models/x.sql` -> `abs/models/x.sql`).
pub fn contained(path: &Path) -> PathBuf {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part),
            _ => None,
        })
        .collect()
}

/// The parts of a relative path, as text (`models/staging/x.yml` -> models, staging, x.yml).
pub fn components(path: &Path) -> Vec<String> {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_dot_and_links_are_resolved_before_comparing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("proj");
        std::fs::create_dir_all(root.join("target")).unwrap();
        std::fs::create_dir_all(dir.path().join("victim")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("victim"), root.join("link")).unwrap();
        assert!(is_strictly_inside(&root.join("target"), &root));
        assert!(is_strictly_inside(&root.join("not/yet/there"), &root));
        assert!(!is_strictly_inside(&root.join("../victim"), &root));
        assert!(!is_strictly_inside(
            &root.join("target/../../victim"),
            &root
        ));
        assert!(!is_strictly_inside(&root.join("."), &root));
        assert!(!is_strictly_inside(&root.join("link/sub"), &root));
        // The link itself is inside; removing it removes the link, not what it points at.
        assert!(is_strictly_inside(&root.join("link"), &root));
        assert!(!is_within(&root.join("link"), &root));
        assert!(is_within(&root.join("target/x/../y"), &root));
    }

    #[test]
    fn contained_paths_stay_below_their_folder() {
        assert_eq!(
            contained(Path::new("/abs/models/x.sql")),
            Path::new("abs/models/x.sql")
        );
        assert_eq!(contained(Path::new("../../x.sql")), Path::new("x.sql"));
        assert_eq!(
            contained(Path::new("models/./a.sql")),
            Path::new("models/a.sql")
        );
    }
}
