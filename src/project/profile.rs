//! `profiles.yml`: finding it, choosing the target, and reading the dbt-duckdb output shape.

use super::yaml::{self, YamlRenderer};
use crate::error::{Error, Result};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Versions of a remote model kept by default: the live one and the one before it.
pub const DEFAULT_KEEP_VERSIONS: usize = 2;

/// Where `lakeflow build` publishes a replica of the catalog, and how many it keeps.
#[derive(Debug, Clone)]
pub struct PublishTo {
    pub to: String,
    pub keep: usize,
}

/// One resolved target of a profile. Secrets stay in `secrets` and are never printed:
/// `Debug` is written by hand to leave them out.
#[derive(Clone)]
pub struct Target {
    /// Where relative paths of models and sources resolve (DuckDB's `file_search_path`):
    /// the project folder, or for a dbt project the working directory, as in dbt-duckdb.
    pub paths_base: PathBuf,
    /// dbt-duckdb's path rules: a relative `location` is relative to `paths_base`, not to
    /// `external_root`.
    pub dbt_paths: bool,
    pub profile_name: String,
    pub name: String,
    pub adapter: String,
    /// The catalog .duckdb file (absolute), or `:memory:`.
    pub catalog: String,
    /// Where external models are written: an absolute local path or an `s3://` URL.
    pub external_root: String,
    pub schema: String,
    pub threads: usize,
    pub extensions: Vec<String>,
    pub settings: BTreeMap<String, String>,
    pub secrets: Vec<BTreeMap<String, String>>,
    /// Other databases attached to every session (`attach:`, as in dbt-duckdb).
    pub attach: Vec<Attachment>,
    pub extension_directory: Option<String>,
    pub production: bool,
    /// The production target's external_root, for the guard that keeps other targets out.
    pub production_root: Option<String>,
    pub allow_production_writes: bool,
    /// Commit to Delta tables on S3 stores that ignore conditional writes (one writer only).
    pub unsafe_delta_commits: bool,
    /// Versions of each external model kept on S3 (the live one included).
    pub keep_versions: usize,
    /// Where `lakeflow build` publishes a replica of the catalog, if anywhere.
    pub publish: Option<PublishTo>,
    pub profiles_file: PathBuf,
}

impl Target {
    /// Whether this target reads or writes S3, and so needs DuckDB's httpfs.
    pub fn uses_s3(&self) -> bool {
        super::paths::is_remote(&self.external_root)
            || self
                .secrets
                .iter()
                .any(|s| s.get("type").is_some_and(|t| t.eq_ignore_ascii_case("s3")))
    }

    /// The values lakeflow must never show: every value of a `secrets:` entry or a setting
    /// whose key is secret-ish (`secret`, `key_id`, `session_token`, `password`, ...).
    pub fn secret_values(&self) -> Vec<String> {
        let secret_entries = self.secrets.iter().flat_map(|s| s.iter());
        let attach_options = self.attach.iter().flat_map(|a| a.options.iter());
        let mut values: Vec<String> = secret_entries
            .chain(self.settings.iter())
            .chain(attach_options)
            .filter(|(k, _)| crate::redact::is_secret_key(k))
            .map(|(_, v)| v.clone())
            .collect();
        // A connection string with a password in it (`type: postgres`) is hidden whole.
        values.extend(
            self.attach
                .iter()
                .filter(|a| a.path.to_ascii_lowercase().contains("password"))
                .map(|a| a.path.clone()),
        );
        values
    }

    /// `text` with every secret value of the profile (and every other registered secret)
    /// replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        crate::redact::register(self.secret_values());
        crate::redact::redact(text).into_owned()
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("catalog", &self.catalog)
            .field("external_root", &self.external_root)
            .field("secrets", &format_args!("<{} hidden>", self.secrets.len()))
            .finish_non_exhaustive()
    }
}

const PATH_SETTINGS: &[&str] = &["temp_directory", "secret_directory", "home_directory"];

/// Where `profiles.yml` is looked for, in order.
pub fn search_dirs(explicit: Option<&Path>, project_dir: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = explicit {
        dirs.push(d.to_path_buf());
    }
    // lakeflow's variable, then dbt's.
    for var in ["LAKEFLOW_PROFILES_DIR", "DBT_PROFILES_DIR"] {
        if let Some(d) = std::env::var_os(var).filter(|d| !d.is_empty()) {
            dirs.push(PathBuf::from(d));
        }
    }
    dirs.push(project_dir.to_path_buf());
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        dirs.push(home.join(".lakeflow"));
        dirs.push(home.join(".dbt"));
    }
    dirs
}

pub struct ProfileRequest<'a> {
    pub profiles_dir: Option<&'a Path>,
    pub project_dir: &'a Path,
    /// dbt-duckdb's path rules (a dbt project): relative paths resolve against this folder
    /// (the working directory) and dbt-duckdb's defaults apply (`path: :memory:`,
    /// `external_root: .`). None: lakeflow's, relative to the project, `lake/` by default.
    pub dbt_paths_from: Option<&'a Path>,
    pub profile_name: &'a str,
    pub target: Option<&'a str>,
    pub renderer: &'a YamlRenderer,
}

pub fn load(req: &ProfileRequest) -> Result<Target> {
    let dirs = search_dirs(req.profiles_dir, req.project_dir);
    let file = dirs
        .iter()
        .map(|d| d.join("profiles.yml"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            Error::new("LF110", "no profiles.yml found")
                .hint(format!(
                    "searched {}; create one (`lakeflow init` writes an example) or pass --profiles-dir",
                    searched.join(", ")
                ))
        })?;
    let (doc, text) = yaml::read(&file)?;
    // Only what this run uses is rendered: the `target:` key and the chosen output, so the
    // env vars of other targets (say, S3 keys) need not be set.
    let renderer = req.renderer.allowing_secret_env_vars();
    let render = |v: &Value| renderer.render_tree(v.clone(), &file, &text);
    let profile = yaml::get(&doc, req.profile_name).ok_or_else(|| {
        Error::new("LF111", format!("profile '{}' not found", req.profile_name))
            .in_file(&file)
            .hint(
                "add it to profiles.yml, or set `profile:` in the project file to an existing one",
            )
    })?;
    let outputs = yaml::get(profile, "outputs")
        .and_then(Value::as_mapping)
        .ok_or_else(|| {
            Error::new(
                "LF112",
                format!("profile '{}' has no outputs", req.profile_name),
            )
            .in_file(&file)
            .hint("add an `outputs:` map with at least one target")
        })?;
    let default_target = match yaml::get(profile, "target") {
        Some(v) => yaml::Keys {
            file: &file,
            text: &text,
        }
        .str(&yaml_one("target", render(v)?), "target")?,
        None => None,
    };
    let target_name = req
        .target
        .map(str::to_string)
        .or(default_target)
        .or_else(|| {
            outputs
                .keys()
                .next()
                .and_then(|k| k.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "dev".into());
    let output = &render(outputs.get(target_name.as_str()).ok_or_else(|| {
        let names: Vec<&str> = outputs.keys().filter_map(|k| k.as_str()).collect();
        Error::new(
            "LF113",
            format!(
                "target '{target_name}' not found in profile '{}'",
                req.profile_name
            ),
        )
        .in_file(&file)
        .hint(format!("available targets: {}", names.join(", ")))
    })?)?;

    let keys = yaml::Keys {
        file: &file,
        text: &text,
    };
    let production_name = production_target(outputs, &keys)?;
    let production_root = match production_name.as_deref().and_then(|n| outputs.get(n)) {
        Some(o) => match yaml::get(o, "external_root") {
            Some(r) => keys
                .str(&yaml_one("external_root", render(r)?), "external_root")?
                .map(|r| absolutize(&r, req.dbt_paths_from.unwrap_or(req.project_dir))),
            None => None,
        },
        None => None,
    };

    let base = req.dbt_paths_from.unwrap_or(req.project_dir);
    let catalog = keys
        .str(output, "path")?
        .unwrap_or_else(|| match req.dbt_paths_from {
            Some(_) => ":memory:".to_string(),
            None => format!("{}.duckdb", req.profile_name),
        });
    let catalog = if catalog == ":memory:" {
        catalog
    } else {
        absolutize(&catalog, base)
    };
    let external_root = keys
        .str(output, "external_root")?
        .map(|r| absolutize(&r, base))
        .unwrap_or_else(|| {
            absolutize(
                if req.dbt_paths_from.is_some() {
                    "."
                } else {
                    "lake"
                },
                base,
            )
        });
    let threads = keys.count(output, "threads", 1)?.unwrap_or(4);
    let mut settings = BTreeMap::new();
    if let Some(Value::Mapping(m)) = keys.map(output, "settings")? {
        for (k, v) in m {
            let Some(k) = k.as_str() else { continue };
            let v = match v {
                Value::Null => continue,
                v => yaml::scalar_string(v)
                    .ok_or_else(|| keys.wrong_type(k, "a string or number", v))?,
            };
            settings.insert(k.to_string(), v);
        }
    }
    // Settings that are paths are relative to the project, like every other path here.
    for key in PATH_SETTINGS {
        if let Some(v) = settings.get_mut(*key) {
            *v = absolutize(v, base);
        }
    }
    let extensions = match yaml::get(output, "extensions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|i| {
                yaml::scalar_string(i)
                    .or_else(|| yaml::get_str(i, "name"))
                    .ok_or_else(|| keys.wrong_type("extensions", "a list of extension names", i))
            })
            .collect::<Result<_>>()?,
        Some(v) => return Err(keys.wrong_type("extensions", "a list of extension names", v)),
    };
    let secrets = match yaml::get(output, "secrets") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| {
                let Value::Mapping(m) = item else {
                    return Err(keys.wrong_type("secrets", "a list of mappings", item));
                };
                m.iter()
                    .filter_map(|(k, v)| Some((k.as_str()?, v)))
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| {
                        yaml::scalar_string(v)
                            .map(|v| (k.to_string(), v))
                            .ok_or_else(|| keys.wrong_type(k, "a string", v))
                    })
                    .collect::<Result<BTreeMap<String, String>>>()
            })
            .collect::<Result<_>>()?,
        Some(v) => return Err(keys.wrong_type("secrets", "a list of mappings", v)),
    };
    let attach = read_attach(output, &keys, base)?;
    let extension_directory = match std::env::var("LAKEFLOW_EXTENSION_DIR")
        .ok()
        .filter(|s| !s.is_empty())
    {
        Some(d) => Some(d),
        None => keys
            .str(output, "extension_directory")?
            .or_else(|| settings.get("extension_directory").cloned()),
    }
    .map(|d| absolutize(&d, base));
    let publish = match keys.map(output, "publish")? {
        None => None,
        Some(p) => Some(PublishTo {
            to: absolutize(
                &keys.str(p, "to")?.ok_or_else(|| {
                    Error::new("LF114", "`publish` has no `to`")
                        .in_file(&file)
                        .hint("give the replica's destination, e.g. `publish: {to: s3://bucket/replica.duckdb}`")
                })?,
                base,
            ),
            keep: keys.count(p, "keep", 1)?.unwrap_or(2),
        }),
    };

    let target = Target {
        paths_base: base.to_path_buf(),
        dbt_paths: req.dbt_paths_from.is_some(),
        profile_name: req.profile_name.to_string(),
        production: production_name.as_deref() == Some(target_name.as_str()),
        name: target_name,
        adapter: keys.str(output, "type")?.unwrap_or_else(|| "duckdb".into()),
        catalog,
        external_root,
        schema: keys.str(output, "schema")?.unwrap_or_else(|| "main".into()),
        threads,
        extensions,
        settings,
        secrets,
        attach,
        extension_directory,
        production_root,
        publish,
        keep_versions: keys
            .count(output, "keep_versions", 1)?
            .unwrap_or(DEFAULT_KEEP_VERSIONS),
        allow_production_writes: keys
            .bool(output, "allow_production_writes")?
            .unwrap_or(false),
        unsafe_delta_commits: keys.bool(output, "unsafe_delta_commits")?.unwrap_or(false),
        profiles_file: file,
    };
    crate::redact::register(target.secret_values());
    Ok(target)
}

/// One `attach:` entry: a database DuckDB attaches beside the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// A file (absolute; relative ones are taken from the project folder), a URL, or a
    /// connection string of the attached type.
    pub path: String,
    pub alias: Option<String>,
    /// `sqlite`, `postgres`, `ducklake`, ...; DuckDB's own format when absent.
    pub kind: Option<String>,
    pub read_only: bool,
    /// The name of a DuckDB secret to connect with.
    pub secret: Option<String>,
    /// Further ATTACH options, as given.
    pub options: BTreeMap<String, String>,
}

fn read_attach(output: &Value, keys: &yaml::Keys, base: &Path) -> Result<Vec<Attachment>> {
    let items = match yaml::get(output, "attach") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Sequence(items)) => items,
        Some(v) => return Err(keys.wrong_type("attach", "a list of mappings", v)),
    };
    items
        .iter()
        .map(|item| {
            if !item.is_mapping() {
                return Err(keys.wrong_type("attach", "a list of mappings", item));
            }
            let path = keys.str(item, "path")?.ok_or_else(|| {
                Error::new("LF122", "an `attach:` entry has no `path`")
                    .in_file(keys.file)
                    .hint("give each entry the database to attach: `- path: other.duckdb`")
            })?;
            let kind = keys.str(item, "type")?;
            let file_like = kind.as_deref().is_none_or(|k| {
                k.eq_ignore_ascii_case("duckdb") || k.eq_ignore_ascii_case("sqlite")
            });
            let has_scheme = path.contains("://") || path.contains(':') && !path.starts_with('/');
            let path = if file_like && !has_scheme && path != ":memory:" {
                absolutize(&path, base)
            } else {
                path
            };
            let mut options = BTreeMap::new();
            if let Some(Value::Mapping(m)) = keys.map(item, "options")? {
                for (k, v) in m {
                    let (Some(k), Some(v)) = (k.as_str(), yaml::scalar_string(v)) else {
                        return Err(keys.wrong_type("options", "a mapping of names to values", v));
                    };
                    options.insert(k.to_string(), v);
                }
            }
            Ok(Attachment {
                path,
                alias: keys.str(item, "alias")?,
                kind,
                read_only: keys.bool(item, "read_only")?.unwrap_or(false),
                secret: keys.str(item, "secret")?,
                options,
            })
        })
        .collect()
}

/// `{key: value}`, so a lone value can be read with the typed `Keys` readers.
fn yaml_one(key: &str, value: Value) -> Value {
    let mut m = serde_yaml::Mapping::new();
    m.insert(Value::from(key), value);
    Value::Mapping(m)
}

/// The production target: the output marked `production: true`, else one named `prod` or
/// `production`.
fn production_target(outputs: &serde_yaml::Mapping, keys: &yaml::Keys) -> Result<Option<String>> {
    for (k, v) in outputs {
        if keys.bool(v, "production")? == Some(true) {
            return Ok(k.as_str().map(str::to_string));
        }
    }
    Ok(["prod", "production"]
        .into_iter()
        .find(|n| outputs.contains_key(*n))
        .map(str::to_string))
}

/// Makes a local path absolute against `base` (the project dir); URLs pass through.
pub fn absolutize(path: &str, base: &Path) -> String {
    if path.contains("://") {
        return path.trim_end_matches('/').to_string();
    }
    let expanded = match path.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(rest))
            .unwrap_or_else(|| PathBuf::from(path)),
        None => PathBuf::from(path),
    };
    let joined = if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    };
    super::paths::normalize(&joined)
        .to_string_lossy()
        .trim_end_matches('/')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str, target: Option<&str>) -> Result<Target> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("profiles.yml"), text).unwrap();
        let renderer = YamlRenderer::new(Default::default());
        load(&ProfileRequest {
            profiles_dir: Some(dir.path()),
            project_dir: Path::new("/proj"),
            dbt_paths_from: None,
            profile_name: "shop",
            target,
            renderer: &renderer,
        })
    }

    const PROFILE: &str = "shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: cat.duckdb\n      external_root: ./lake/../lake2\n      threads: 3\n      settings:\n        memory_limit: 1GB\n      secrets:\n        - type: s3\n          secret: hunter2\n    prod:\n      type: duckdb\n      path: /srv/cat.duckdb\n      external_root: s3://bucket/lake/\n";

    #[test]
    fn reads_dbt_duckdb_output_shape() {
        let t = load_text(PROFILE, None).unwrap();
        assert_eq!(t.name, "dev");
        assert_eq!(t.catalog, "/proj/cat.duckdb");
        assert_eq!(t.external_root, "/proj/lake2");
        assert_eq!(t.threads, 3);
        assert_eq!(t.settings["memory_limit"], "1GB");
        assert!(!t.production);
        assert_eq!(t.production_root.as_deref(), Some("s3://bucket/lake"));
        assert!(!format!("{t:?}").contains("hunter2"));
    }

    #[test]
    fn only_the_selected_target_is_rendered() {
        let text = format!(
            "{PROFILE}    s3:\n      type: duckdb\n      secrets:\n        - type: s3\n          secret: \"{{{{ env_var('LF_SURELY_UNSET_SECRET') }}}}\"\n"
        );
        assert_eq!(load_text(&text, None).unwrap().name, "dev");
        let err = load_text(&text, Some("s3")).unwrap_err();
        assert!(
            err.message.contains("LF_SURELY_UNSET_SECRET"),
            "{}",
            err.message
        );
    }

    #[test]
    fn redacts_secret_values() {
        let t = load_text(PROFILE, None).unwrap();
        assert_eq!(t.redact("auth failed for hunter2!"), "auth failed for ***!");
    }

    #[test]
    fn secret_values_cover_secret_keys_of_secrets_and_settings() {
        let text = PROFILE.replace(
            "        memory_limit: 1GB\n",
            "        memory_limit: 1GB\n        s3_secret_access_key: sk-setting-1\n        s3_session_token: st-setting-2\n        secret_directory: /some/dir\n",
        )
        .replace(
            "          secret: hunter2\n",
            "          secret: hunter2\n          key_id: AKIAXYZ\n          bearer_token: bt-3\n          region: eu-west-1\n",
        );
        let t = load_text(&text, None).unwrap();
        let mut values = t.secret_values();
        values.sort();
        assert_eq!(
            values,
            ["AKIAXYZ", "bt-3", "hunter2", "sk-setting-1", "st-setting-2"]
        );
        assert_eq!(
            t.redact("AKIAXYZ/sk-setting-1 in eu-west-1 and /some/dir"),
            "***/*** in eu-west-1 and /some/dir"
        );
    }

    #[test]
    fn target_override_and_unknown_target() {
        let t = load_text(PROFILE, Some("prod")).unwrap();
        assert!(t.production);
        assert_eq!(t.external_root, "s3://bucket/lake");
        let err = load_text(PROFILE, Some("qa")).unwrap_err();
        assert_eq!(err.code, "LF113");
        assert!(err.hint.clone().unwrap().contains("dev, prod"));
    }
}
