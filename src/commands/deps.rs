//! `lakeflow deps`: installs what packages.yml / dependencies.yml declare into the project's
//! `packages-install-path` (dbt_packages/): local packages as a link to their folder, git
//! packages cloned at their `revision` (a `subdirectory` of the clone when given). Hub
//! packages need dbt's package hub; they are named with what to write instead.

use crate::cli::Global;
use crate::error::{Error, Result};
use crate::project::packages::{self, Declared};
use crate::project::yaml;
use std::path::{Path, PathBuf};

pub fn deps(g: &Global) -> Result<bool> {
    let dir = g.project_dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let root =
        std::fs::canonicalize(&dir).map_err(|e| Error::io("LF105", "open project dir", &dir, e))?;
    let (file, _) = crate::project::find_project_file(&root)?;
    let (doc, text) = yaml::read(&file)?;
    let keys = yaml::Keys {
        file: &file,
        text: &text,
    };
    let install = keys
        .str(&doc, "packages-install-path")?
        .unwrap_or_else(|| "dbt_packages".into());
    if !crate::project::paths::is_strictly_inside(&root.join(&install), &root) {
        return Err(Error::new(
            "LF126",
            format!("packages-install-path '{install}' is not inside the project"),
        )
        .in_file(&file)
        .hint("give a folder inside the project, e.g. `packages-install-path: dbt_packages`"));
    }
    let Some((declared_in, declared)) = packages::declared(&root)? else {
        crate::outln!("No packages.yml or dependencies.yml: nothing to install");
        return Ok(true);
    };
    let install_dir = root.join(&install);
    std::fs::create_dir_all(&install_dir)
        .map_err(|e| Error::io("LF127", "create", &install_dir, e))?;
    let mut ok = true;
    // The project's packages, then the packages they declare (as dbt installs them); each
    // name once, the first declaration winning.
    let mut queue: std::collections::VecDeque<(PathBuf, PathBuf, Declared)> = declared
        .into_iter()
        .map(|d| (root.clone(), declared_in.clone(), d))
        .collect();
    let mut done: std::collections::HashSet<String> = Default::default();
    while let Some((base, declared_in, entry)) = queue.pop_front() {
        if let Declared::Hub { package, .. } = &entry
            && done.contains(package.rsplit('/').next().unwrap_or(package))
        {
            continue;
        }
        match install_one(&base, &install_dir, &entry, &done) {
            Ok(Some((name, how))) => {
                crate::outln!("Installed {name} ({how}) in {install}/{name}");
                let dest = install_dir.join(&name);
                if let Ok(Some((file, more))) = packages::declared(&dest) {
                    queue.extend(more.into_iter().map(|d| (dest.clone(), file.clone(), d)));
                }
                done.insert(name);
            }
            Ok(None) => {}
            Err(e) => {
                ok = false;
                crate::errln!("{}", e.in_file(&declared_in));
            }
        }
    }
    Ok(ok)
}

/// Installs one package declared in the project (or package) at `base`; none if a package
/// of its name is in `done` already.
fn install_one(
    base: &Path,
    install_dir: &Path,
    entry: &Declared,
    done: &std::collections::HashSet<String>,
) -> Result<Option<(String, String)>> {
    match entry {
        Declared::Local { path } => {
            let src = base.join(path);
            let src = std::fs::canonicalize(&src).map_err(|e| {
                Error::io("LF127", "open the local package", &src, e)
                    .hint("`local:` is a path to a dbt project folder, relative to the project that declares it")
            })?;
            let name = packages::project_name(&src)?;
            if done.contains(&name) {
                return Ok(None);
            }
            let dest = install_dir.join(&name);
            clear(&dest, &name)?;
            link(&src, &dest)?;
            Ok(Some((name, format!("local: {path}"))))
        }
        Declared::Git {
            url,
            revision,
            subdirectory,
        } => {
            let tmp = install_dir.join(format!(".lf-clone-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            let cloned = clone(url, revision.as_deref(), &tmp);
            let placed = cloned.and_then(|_| {
                let folder = match subdirectory {
                    Some(sub) => tmp.join(sub),
                    None => tmp.clone(),
                };
                let name = packages::project_name(&folder)?;
                if done.contains(&name) {
                    return Ok(None);
                }
                let dest = install_dir.join(&name);
                clear(&dest, &name)?;
                std::fs::rename(&folder, &dest)
                    .map_err(|e| Error::io("LF127", "move the package to", &dest, e))?;
                Ok(Some(name))
            });
            let _ = std::fs::remove_dir_all(&tmp);
            let at = revision.as_deref().unwrap_or("default branch");
            Ok(placed?.map(|name| (name, format!("git: {url} at {at}"))))
        }
        Declared::Hub { package, version } => Err(Error::new(
            "LF128",
            format!("cannot install '{package}' {version} from dbt's package hub"),
        )
        .hint(format!(
            "lakeflow installs local and git packages; write it as `- git: https://github.com/{package}.git` with `revision: <tag>` (check the repository's name), or install it with `dbt deps`"
        ))),
    }
}

/// Makes room for the package `name` at `dest`: an earlier install of it (a link, or a folder
/// holding that package) goes; anything else there is refused.
fn clear(dest: &Path, name: &str) -> Result<()> {
    if dest.is_symlink() {
        return std::fs::remove_file(dest).map_err(|e| Error::io("LF127", "replace", dest, e));
    }
    if !dest.exists() {
        return Ok(());
    }
    if packages::project_name(dest).ok().as_deref() == Some(name) {
        return std::fs::remove_dir_all(dest).map_err(|e| Error::io("LF127", "replace", dest, e));
    }
    Err(Error::new(
        "LF127",
        format!(
            "{} exists and is not an installed package '{name}'",
            dest.display()
        ),
    )
    .hint("move it out of the packages folder; lakeflow replaces only packages it can recognise"))
}

#[cfg(unix)]
fn link(src: &Path, dest: &Path) -> Result<()> {
    std::os::unix::fs::symlink(src, dest).map_err(|e| Error::io("LF127", "link", dest, e))
}

#[cfg(not(unix))]
fn link(src: &Path, dest: &Path) -> Result<()> {
    Err(Error::new(
        "LF127",
        format!("cannot link {} to {}", dest.display(), src.display()),
    ))
}

/// `git clone` of `url` at `revision` (a branch, tag or commit) into `dest`.
fn clone(url: &str, revision: Option<&str>, dest: &Path) -> Result<()> {
    let git = |args: &[&str], cwd: Option<&Path>| -> Result<()> {
        let mut cmd = std::process::Command::new("git");
        cmd.args(args).env("GIT_TERMINAL_PROMPT", "0");
        if let Some(c) = cwd {
            cmd.current_dir(c);
        }
        let out = cmd.output().map_err(|e| {
            Error::new("LF128", format!("cannot run git: {e}"))
                .hint("install git to fetch git packages")
        })?;
        if out.status.success() {
            return Ok(());
        }
        Err(Error::new(
            "LF128",
            format!(
                "cannot fetch {url}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        )
        .hint("check the URL and `revision:`, and that this machine reaches the repository"))
    };
    if revision.is_some_and(|r| r.starts_with('-')) {
        return Err(
            Error::new("LF128", format!("the revision of {url} starts with '-'"))
                .hint("give a branch, tag or commit as `revision:`"),
        );
    }
    let dest_s = dest.to_string_lossy();
    git(&["clone", "--quiet", "--", url, &dest_s], None)?;
    if let Some(rev) = revision {
        git(&["checkout", "--quiet", rev, "--"], Some(dest))?;
    }
    Ok(())
}
