//! `lakeflow clean`: deletes the project's clean-targets, each checked to lie inside it.

use super::load;
use crate::cli::Global;
use crate::error::{Error, Result};

pub fn clean(g: &Global) -> Result<bool> {
    let project = load(g)?;
    // Every target is checked before anything is deleted.
    if let Some(dir) = project
        .clean_targets
        .iter()
        .find(|d| !crate::project::paths::is_strictly_inside(d, &project.root))
    {
        return Err(Error::new(
            "LF109",
            format!(
                "refusing to delete {}: it is not inside the project {}",
                dir.display(),
                project.root.display()
            ),
        )
        .in_file(&project.file)
        .hint("clean-targets must name folders inside the project (no `..`, no absolute paths or links leading out of it)"));
    }
    for dir in &project.clean_targets {
        if dir.is_symlink() {
            std::fs::remove_file(dir).map_err(|e| Error::io("LF119", "delete", dir, e))?;
            crate::outln!("Deleted {}", dir.display());
        } else if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| Error::io("LF119", "delete", dir, e))?;
            crate::outln!("Deleted {}", dir.display());
        }
    }
    Ok(true)
}
