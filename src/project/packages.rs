//! dbt packages: what `packages.yml` / `dependencies.yml` declare, the packages installed under
//! `packages-install-path` (`dbt_packages/`, by `lakeflow deps` or `dbt deps`), their macros,
//! and the project's `dispatch:` search orders.

use super::files::{self, SqlFile};
use super::yaml;
use crate::error::{Error, Result};
use serde_yaml::Value;
use std::path::{Path, PathBuf};

/// An installed package, as far as rendering needs it.
#[derive(Debug, Clone, Default)]
pub struct Package {
    pub name: String,
    /// Its folder, relative to the project root (`dbt_packages/dbt_utils`).
    pub root: PathBuf,
    /// Macro files and generic-test files (`{% test %}` blocks).
    pub macros: Vec<SqlFile>,
    /// The vars its nodes see (its own, the project's over them, `--vars` over both).
    pub vars: std::collections::BTreeMap<String, serde_json::Value>,
    /// The configs of its own project file, by package as dbt matches fqns.
    pub trees: super::config::PackageTrees,
    /// Its own `on-run-start` / `on-run-end` hooks (dbt runs them before the project's).
    pub on_run_start: Vec<String>,
    pub on_run_end: Vec<String>,
}

/// `dispatch:` of the project file: for `macro_namespace`, the packages searched in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    pub namespace: String,
    pub search_order: Vec<String>,
}

/// One entry of `packages.yml` / `dependencies.yml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declared {
    Local {
        path: String,
    },
    Git {
        url: String,
        revision: Option<String>,
        subdirectory: Option<String>,
    },
    Hub {
        package: String,
        version: String,
    },
}

/// The file that declares packages (`packages.yml`, else `dependencies.yml`) and its entries.
pub fn declared(root: &Path) -> Result<Option<(PathBuf, Vec<Declared>)>> {
    for name in ["packages.yml", "dependencies.yml"] {
        let file = root.join(name);
        if !file.is_file() {
            continue;
        }
        let (doc, text) = yaml::read(&file)?;
        let keys = yaml::Keys {
            file: &file,
            text: &text,
        };
        let items = match yaml::get(&doc, "packages") {
            None | Some(Value::Null) => return Ok(Some((file, Vec::new()))),
            Some(Value::Sequence(items)) => items,
            Some(v) => return Err(keys.wrong_type("packages", "a list of packages", v)),
        };
        let mut out = Vec::new();
        for item in items {
            let entry = if let Some(path) = keys.str(item, "local")? {
                Declared::Local { path }
            } else if let Some(url) = keys.str(item, "git")? {
                Declared::Git {
                    url,
                    revision: keys.str(item, "revision")?,
                    subdirectory: keys.str(item, "subdirectory")?,
                }
            } else if let Some(package) = keys.str(item, "package")? {
                let version = match yaml::get(item, "version") {
                    Some(Value::Sequence(v)) => v
                        .iter()
                        .filter_map(yaml::scalar_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    Some(v) => yaml::scalar_string(v).unwrap_or_default(),
                    None => String::new(),
                };
                Declared::Hub { package, version }
            } else {
                return Err(Error::new(
                    "LF123",
                    "a package entry has none of `local`, `git` or `package`",
                )
                .in_file(&file)
                .hint("write each package as `- local: path`, `- git: URL` (with `revision:`) or `- package: owner/name` with `version:`"));
            };
            out.push(entry);
        }
        return Ok(Some((file, out)));
    }
    Ok(None)
}

/// Every package installed under `install_dir` (relative to `root`): each folder holding a
/// `dbt_project.yml`, in name order.
pub fn installed(root: &Path, install_dir: &str) -> Result<Vec<Package>> {
    let dir = root.join(install_dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut folders: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("dbt_project.yml").is_file())
        .collect();
    folders.sort();
    folders.iter().map(|f| read_package(root, f)).collect()
}

/// The name of the project in `folder` (its `dbt_project.yml`'s `name`).
pub fn project_name(folder: &Path) -> Result<String> {
    let file = folder.join("dbt_project.yml");
    let (doc, text) = yaml::read(&file)?;
    let keys = yaml::Keys {
        file: &file,
        text: &text,
    };
    let name = keys.str(&doc, "name")?.ok_or_else(|| {
        Error::new("LF124", "the package's dbt_project.yml has no `name`")
            .in_file(&file)
            .hint("reinstall the package (`lakeflow deps`)")
    })?;
    // The name becomes a folder under the packages folder: never a path.
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_');
    if !valid {
        return Err(Error::new(
            "LF124",
            format!("the package name '{name}' is not a valid name"),
        )
        .in_file(&file)
        .hint("a package's name has letters, digits and underscores only; fix the package's dbt_project.yml or remove the package"));
    }
    Ok(name)
}

fn read_package(root: &Path, folder: &Path) -> Result<Package> {
    let file = folder.join("dbt_project.yml");
    let (doc, text) = yaml::read(&file)?;
    let keys = yaml::Keys {
        file: &file,
        text: &text,
    };
    let name = project_name(folder)?;
    let rel = folder.strip_prefix(root).unwrap_or(folder).to_path_buf();
    let under = |key: &str, default: &str| -> Result<Vec<String>> {
        Ok(keys
            .str_list(&doc, key)?
            .unwrap_or_else(|| vec![default.to_string()])
            .iter()
            .map(|p| rel.join(p).to_string_lossy().into_owned())
            .collect())
    };
    let mut macros = files::read_sql_files(root, &under("macro-paths", "macros")?)?;
    let (_, generic) = files::read_test_files(root, &under("test-paths", "tests")?)?;
    macros.extend(generic);
    Ok(Package {
        name,
        root: rel,
        macros,
        ..Package::default()
    })
}

/// `dispatch:` of the project file.
pub fn dispatch(doc: &Value, keys: &yaml::Keys) -> Result<Vec<Dispatch>> {
    let items = match yaml::get(doc, "dispatch") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Sequence(items)) => items,
        Some(v) => {
            return Err(keys.wrong_type(
                "dispatch",
                "a list of {macro_namespace, search_order}",
                v,
            ));
        }
    };
    items
        .iter()
        .map(|item| {
            let namespace = keys.str(item, "macro_namespace")?.ok_or_else(|| {
                Error::new("LF125", "a `dispatch:` entry has no `macro_namespace`")
                    .in_file(keys.file)
                    .hint("write `- macro_namespace: dbt_utils` with `search_order: [my_project, dbt_utils]`")
            })?;
            Ok(Dispatch {
                namespace,
                search_order: keys.str_list(item, "search_order")?.unwrap_or_default(),
            })
        })
        .collect()
}
