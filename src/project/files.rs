//! Discovering model and macro files, and reading the `schema.yml` files beside them.

use super::config::Config;
pub use super::resources::Exposure;
use super::yaml::{self, YamlRenderer};
use crate::error::{Error, Result};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A model or seed file of the project, with its path relative to the project root.
#[derive(Debug, Clone, Default)]
pub struct SqlFile {
    pub name: String,
    /// Relative to the project root, e.g. `models/silver/events.sql`.
    pub path: PathBuf,
    /// Folders between the model path and the file, e.g. `["silver"]`.
    pub folders: Vec<String>,
    /// The SQL (for a seed: nothing; its SQL is made from its config when rendering).
    pub source: String,
    pub kind: FileKind,
    /// Of the file's bytes, for `state:modified`.
    pub checksum: String,
    /// The installed package the file belongs to; none for the project's own files.
    pub package: Option<String>,
    /// A version of a versioned model (`versions:` in its schema file).
    pub version: Option<ModelVersion>,
}

/// One version of a versioned model: `ref('model')` reaches the latest, `ref('model', v=1)`
/// the first; dbt names the node `model.<package>.<model>.v<v>`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelVersion {
    pub model: String,
    pub v: String,
    pub latest: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    #[default]
    Model,
    /// A CSV file under `seed-paths`, loaded into a table of the catalog.
    Seed,
    /// A data test: a query for rows that break a rule (`tests/*.sql`, or generic tests
    /// declared in schema files).
    Test,
    /// A `{% snapshot %}` block under `snapshot-paths`, or a YAML snapshot: a table keeping
    /// every version of each row of its query.
    Snapshot,
}

/// What `schema.yml` says of one model.
#[derive(Debug, Clone, Default)]
pub struct ModelYaml {
    pub config: Config,
    pub description: String,
    pub columns: Vec<(String, String)>,
    pub file: PathBuf,
    /// The entry as written (rendered, tests left as written), for what the manifest and
    /// `graph` show of it: columns' `data_type`/`constraints`, `time_spine`, `versions`, ...
    pub entry: serde_json::Value,
}

/// One table of a source, with its location if it lives outside the catalog.
#[derive(Debug, Clone)]
pub struct SourceTable {
    pub source_name: String,
    pub name: String,
    pub schema: String,
    pub identifier: String,
    /// A path or a DuckDB table function (`read_csv('...')`), with `{name}` placeholders filled.
    pub external_location: Option<String>,
    pub config: Config,
    pub file: PathBuf,
    /// The installed package whose schema file declares it; none for the project's own.
    pub package: Option<String>,
    /// What the schema file says of it, for the manifest and `graph`: the table's and the
    /// source's descriptions, its columns, `loader`, `loaded_at_field`, `freshness`, `meta`.
    pub about: SourceAbout,
}

/// The descriptive keys of a source table (dbt keeps them in its manifest).
#[derive(Debug, Clone, Default)]
pub struct SourceAbout {
    pub description: String,
    pub source_description: String,
    pub columns: Vec<(String, String)>,
    pub loader: String,
    pub loaded_at_field: Option<String>,
    pub freshness: serde_json::Value,
    pub meta: serde_json::Value,
}

#[derive(Debug, Default, Clone)]
pub struct SchemaFiles {
    pub models: BTreeMap<String, ModelYaml>,
    /// `seeds:` entries, in the same shape as models.
    pub seeds: BTreeMap<String, ModelYaml>,
    /// `snapshots:` entries: properties of snapshot blocks, or YAML snapshots (`relation:`).
    pub snapshots: BTreeMap<String, ModelYaml>,
    pub sources: Vec<SourceTable>,
    /// Source configs lakeflow reads but cannot follow (a dbt-duckdb plugin other than delta).
    pub warnings: Vec<String>,
    /// Generic tests declared on models, seeds, columns and source tables.
    pub tests: Vec<super::data_tests::TestDecl>,
    /// `exposures:` entries: what reads the project's models (dashboards, apps).
    pub exposures: Vec<Exposure>,
    /// Metrics, semantic models, saved queries and groups, listed in the manifest only.
    pub listed: Vec<super::resources::Listed>,
    /// `unit_tests:` entries, as written (rendered).
    pub unit_tests: Vec<UnitTestDecl>,
}

/// A `unit_tests:` entry: `model`, `given`, `expect`, `overrides`, `config`, as written.
#[derive(Debug, Clone, Default)]
pub struct UnitTestDecl {
    pub name: String,
    pub model: String,
    pub entry: serde_json::Value,
    pub file: PathBuf,
    pub package: Option<String>,
}

/// All files under `dirs` (relative to `root`) whose extension is one of `exts`, sorted.
/// Symlinked folders are followed, but a link back into a folder being walked is an error,
/// not an endless walk.
pub fn discover(root: &Path, dirs: &[String], exts: &[&str]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for dir in dirs {
        let abs = root.join(dir);
        if abs.is_dir() {
            walk(root, &abs, exts, &mut Vec::new(), &mut out)?;
        }
    }
    out.sort();
    Ok(out)
}

fn walk(
    root: &Path,
    dir: &Path,
    exts: &[&str],
    ancestors: &mut Vec<PathBuf>,
    out: &mut Vec<PathBuf>,
) -> Result<()> {
    let real = std::fs::canonicalize(dir).map_err(|e| Error::io("LF100", "open", dir, e))?;
    if let Some(first) = ancestors.iter().find(|a| **a == real) {
        let shown = dir.strip_prefix(root).unwrap_or(dir);
        return Err(Error::new(
            "LF116",
            format!(
                "the folder {} leads back to {} (a symlink loop)",
                shown.display(),
                first.display()
            ),
        )
        .in_file(shown)
        .hint("remove the symlink, or point it at a folder outside the ones it is in"));
    }
    ancestors.push(real);
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("LF100", "list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("LF100", "list", dir, e))?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue;
        }
        // The entry's own type comes with the listing; only a link needs a stat to follow.
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_symlink() => path.is_dir(),
            Ok(t) => t.is_dir(),
            Err(_) => path.is_dir(),
        };
        if is_dir {
            walk(root, &path, exts, ancestors, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| exts.contains(&e))
        {
            out.push(path);
        }
    }
    ancestors.pop();
    Ok(())
}

/// Reads the SQL files under `dirs`, keeping their folder path under the matching dir.
pub fn read_sql_files(root: &Path, dirs: &[String]) -> Result<Vec<SqlFile>> {
    files_under(root, dirs, "sql", FileKind::Model)
}

/// The Python models (`.py`) under `dirs` (run by `execute/python.rs`).
pub fn read_python_models(root: &Path, dirs: &[String]) -> Result<Vec<SqlFile>> {
    files_under(root, dirs, "py", FileKind::Model)
}

impl SqlFile {
    /// A Python model (`def model(dbt, session)`), not SQL.
    pub fn is_python(&self) -> bool {
        self.path.extension().is_some_and(|e| e == "py")
    }
}

/// The SQL files under `test-paths`: singular tests, and (under a `generic/` folder) files of
/// `{% test %}` blocks, which are macros. Returns (singular tests, generic test files).
pub fn read_test_files(root: &Path, dirs: &[String]) -> Result<(Vec<SqlFile>, Vec<SqlFile>)> {
    // `fixtures/` holds unit tests' input files, not tests (dbt skips it too).
    let (generic, singular): (Vec<SqlFile>, Vec<SqlFile>) =
        files_under(root, dirs, "sql", FileKind::Test)?
            .into_iter()
            .filter(|f| f.folders.first().is_none_or(|d| d != "fixtures"))
            .partition(|f| f.folders.first().is_some_and(|d| d == "generic"));
    Ok((singular, generic))
}

/// The CSV files under `dirs` (dbt's `seed-paths`), as seeds.
pub fn read_seed_files(root: &Path, dirs: &[String]) -> Result<Vec<SqlFile>> {
    files_under(root, dirs, "csv", FileKind::Seed)
}

fn files_under(root: &Path, dirs: &[String], ext: &str, kind: FileKind) -> Result<Vec<SqlFile>> {
    use rayon::prelude::*;
    let mut paths = Vec::new();
    for dir in dirs {
        for path in discover(root, std::slice::from_ref(dir), &[ext])? {
            paths.push((dir, path));
        }
    }
    // Read and hashed in parallel (a project of thousands of models spends its load here),
    // kept in the order found.
    paths
        .par_iter()
        .map(|(dir, path)| read_file(root, dir, path, kind))
        .collect()
}

fn read_file(root: &Path, dir: &str, path: &Path, kind: FileKind) -> Result<SqlFile> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("LF100", "read", path, e))?;
    let checksum = checksum(&bytes, kind);
    let source = match kind {
        FileKind::Model | FileKind::Test | FileKind::Snapshot => {
            String::from_utf8(bytes).map_err(|_| {
                let e = std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "stream did not contain valid UTF-8",
                );
                Error::io("LF100", "read", path, e)
            })?
        }
        FileKind::Seed => String::new(),
    };
    let rel = path.strip_prefix(root).unwrap_or(path).to_path_buf();
    let under = path.strip_prefix(root.join(dir)).unwrap_or(path);
    let folders = under
        .parent()
        .map(super::paths::components)
        .unwrap_or_default();
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(SqlFile {
        name,
        path: rel,
        folders,
        source,
        kind,
        checksum,
        package: None,
        version: None,
    })
}

/// dbt's checksum of a file: sha256 of its text with Python's `str.strip()` applied, so
/// `state:modified` compares alike against a manifest dbt wrote. A seed over 1 MiB is
/// compared by path (`path`), as dbt does.
fn checksum(bytes: &[u8], kind: FileKind) -> String {
    if kind == FileKind::Seed && bytes.len() > 1_048_576 {
        return "path".to_string();
    }
    let text = String::from_utf8_lossy(bytes);
    sha256_hex(py_strip(&text))
}

/// Python's `str.strip()`: every character `str.isspace()` calls whitespace, which includes
/// the separators U+001C..U+001F that Rust's `trim` keeps.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// Lower-case hex sha256 of `text`.
pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn read_schema_files(
    root: &Path,
    dirs: &[String],
    renderer: &YamlRenderer,
) -> Result<SchemaFiles> {
    let mut out = SchemaFiles::default();
    for path in discover(root, dirs, &["yml", "yaml"])? {
        let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        let (raw, text) = yaml::read(&path)?;
        let doc = renderer.render_tree(raw, &rel, &text)?;
        let ctx = (rel.as_path(), text.as_str(), renderer);
        read_models(&doc, "models", ctx, &mut out.models, &mut out.tests)?;
        read_models(&doc, "seeds", ctx, &mut out.seeds, &mut out.tests)?;
        read_models(&doc, "snapshots", ctx, &mut out.snapshots, &mut out.tests)?;
        read_sources(&doc, ctx, &mut out)?;
        super::resources::read_exposures(&doc, &rel, &mut out.exposures);
        super::resources::read_listed(&doc, &rel, &mut out.listed);
        if let Some(Value::Sequence(items)) = yaml::get(&doc, "unit_tests") {
            for item in items {
                if let (Some(name), Some(model)) =
                    (yaml::get_str(item, "name"), yaml::get_str(item, "model"))
                {
                    out.unit_tests.push(UnitTestDecl {
                        name,
                        model,
                        entry: yaml::to_json(item),
                        file: rel.clone(),
                        package: None,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The entries under `key` (`models:` or `seeds:`) of a schema file.
fn read_models(
    doc: &Value,
    key: &str,
    (file, text, renderer): (&Path, &str, &YamlRenderer),
    out: &mut BTreeMap<String, ModelYaml>,
    tests: &mut Vec<super::data_tests::TestDecl>,
) -> Result<()> {
    let Some(Value::Sequence(models)) = yaml::get(doc, key) else {
        return Ok(());
    };
    for m in models {
        let Some(name) = yaml::get_str(m, "name") else {
            let line = crate::error::line_of(text, &format!("{key}:")).unwrap_or(1);
            return Err(
                Error::new("LF103", format!("an entry under `{key}:` has no `name`"))
                    .at(file, line, None)
                    .hint(format!(
                        "every item under `{key}:` needs `name: <file name>`"
                    )),
            );
        };
        let keys = yaml::Keys { file, text };
        let config = json_map(keys.map(m, "config")?);
        super::config::check_shapes(&config, &keys)?;
        let columns = column_docs(m);
        tests.extend(super::data_tests::read(
            m,
            &super::data_tests::TestTarget::Node(name.clone()),
            file,
            text,
            renderer,
        )?);
        out.insert(
            name,
            ModelYaml {
                config,
                description: yaml::get_str(m, "description").unwrap_or_default(),
                columns,
                file: file.to_path_buf(),
                entry: yaml::to_json(m),
            },
        );
    }
    Ok(())
}

fn read_sources(
    doc: &Value,
    (file, text, renderer): (&Path, &str, &YamlRenderer),
    out: &mut SchemaFiles,
) -> Result<()> {
    let Some(Value::Sequence(sources)) = yaml::get(doc, "sources") else {
        return Ok(());
    };
    for s in sources {
        let Some(source_name) = yaml::get_str(s, "name") else {
            continue;
        };
        let schema = yaml::get_str(s, "schema").unwrap_or_else(|| source_name.clone());
        let source_location = external_location_of(s);
        let keys = yaml::Keys { file, text };
        let source_config = json_map(keys.map(s, "config")?);
        super::config::check_shapes(&source_config, &keys)?;
        let Some(Value::Sequence(tables)) = yaml::get(s, "tables") else {
            continue;
        };
        for t in tables {
            let Some(name) = yaml::get_str(t, "name") else {
                continue;
            };
            out.tests.extend(super::data_tests::read(
                t,
                &super::data_tests::TestTarget::Source(source_name.clone(), name.clone()),
                file,
                text,
                renderer,
            )?);
            let identifier = yaml::get_str(t, "identifier").unwrap_or_else(|| name.clone());
            let mut config = source_config.clone();
            let table_config = json_map(keys.map(t, "config")?);
            super::config::check_shapes(&table_config, &keys)?;
            super::config::merge_into(&mut config, &table_config);
            // dbt-duckdb's source settings: `meta` and `config` of the source, then of the table.
            let mut settings = source_settings(s);
            settings.extend(source_settings(t));
            if let Some(plugin) = settings.get("plugin").and_then(|v| v.as_str()) {
                if plugin == "delta" {
                    // dbt-duckdb's delta plugin: lakeflow reads the table natively.
                    config.insert("format".into(), serde_json::Value::from("delta"));
                    for (from, to) in [
                        ("as_of_version", "as_of_version"),
                        ("as_of_datetime", "as_of_timestamp"),
                    ] {
                        if let Some(v) = settings.get(from) {
                            config.entry(to).or_insert_with(|| v.clone());
                        }
                    }
                } else {
                    out.warnings.push(format!(
                        "{}: source {source_name}.{name} uses the dbt-duckdb plugin '{plugin}', which lakeflow does not run; it reads {schema}.{identifier} from the catalog instead",
                        file.display()
                    ));
                }
            }
            let template = match settings.get("plugin").and_then(|v| v.as_str()) {
                Some("delta") => settings
                    .get("delta_table_path")
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
                _ => external_location_of(t).or_else(|| source_location.clone()),
            };
            let mut vars: Vec<(String, String)> = settings
                .iter()
                .filter_map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Number(n) => n.to_string(),
                        serde_json::Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
                        _ => return None,
                    };
                    Some((k.clone(), text))
                })
                .collect();
            vars.extend([
                ("name".to_string(), name.clone()),
                ("identifier".to_string(), identifier.clone()),
                ("schema".to_string(), schema.clone()),
                ("source_name".to_string(), source_name.clone()),
            ]);
            let formatter = settings
                .get("formatter")
                .and_then(|v| v.as_str())
                .unwrap_or("newstyle");
            let external_location = template.map(|loc| format_location(&loc, formatter, &vars));
            out.sources.push(SourceTable {
                source_name: source_name.clone(),
                name,
                schema: schema.clone(),
                identifier,
                external_location,
                config,
                file: file.to_path_buf(),
                package: None,
                about: source_about(s, t),
            });
        }
    }
    Ok(())
}

/// A source table's descriptive keys: the table's own, else the source's (`loader`,
/// `loaded_at_field`, `freshness`, `meta` are inherited as in dbt).
fn source_about(s: &Value, t: &Value) -> SourceAbout {
    let str_of = |key: &str| yaml::get_str(t, key).or_else(|| yaml::get_str(s, key));
    let json_of = |key: &str| {
        yaml::get(t, key)
            .or_else(|| yaml::get(s, key))
            .map(yaml::to_json)
            .unwrap_or(serde_json::Value::Null)
    };
    SourceAbout {
        description: yaml::get_str(t, "description").unwrap_or_default(),
        source_description: yaml::get_str(s, "description").unwrap_or_default(),
        columns: column_docs(t),
        loader: yaml::get_str(s, "loader").unwrap_or_default(),
        loaded_at_field: str_of("loaded_at_field"),
        freshness: merged_freshness(s, t),
        meta: json_of("meta"),
    }
}

/// A table's `freshness` over its source's, key by key (`warn_after`, `error_after`,
/// `filter`); `freshness: null` on the table turns it off, as in dbt. The `config:` block's
/// `freshness` (dbt 1.10) counts as the entry's own.
fn merged_freshness(s: &Value, t: &Value) -> serde_json::Value {
    let own = |v: &Value| {
        yaml::get(v, "config")
            .and_then(|c| yaml::get(c, "freshness"))
            .or_else(|| yaml::get(v, "freshness"))
            .map(yaml::to_json)
    };
    match (own(s), own(t)) {
        (_, Some(serde_json::Value::Null)) => serde_json::Value::Null,
        (Some(serde_json::Value::Object(mut base)), Some(serde_json::Value::Object(over))) => {
            for (k, v) in over {
                base.insert(k, v);
            }
            serde_json::Value::Object(base)
        }
        (base, over) => over.or(base).unwrap_or(serde_json::Value::Null),
    }
}

/// The `columns:` of an entry as (name, description).
fn column_docs(entry: &Value) -> Vec<(String, String)> {
    match yaml::get(entry, "columns") {
        Some(Value::Sequence(cols)) => cols
            .iter()
            .filter_map(|c| {
                Some((
                    yaml::get_str(c, "name")?,
                    yaml::get_str(c, "description").unwrap_or_default(),
                ))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The `meta` and `config` keys of a source or table entry, as dbt-duckdb merges them (config
/// wins).
fn source_settings(v: &Value) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for key in ["meta", "config"] {
        if let Some(serde_json::Value::Object(m)) = yaml::get(v, key).map(yaml::to_json) {
            out.extend(m);
        }
    }
    out
}

/// Fills `{name}` (`newstyle`), `%(name)s` (`oldstyle`) or `${name}` / `$name` (`template`)
/// placeholders of an external location, as dbt-duckdb's `formatter` does.
fn format_location(template: &str, formatter: &str, vars: &[(String, String)]) -> String {
    let mut out = template.to_string();
    // Longest names first, so `$name` does not eat the start of `$name_suffix`.
    let mut vars: Vec<&(String, String)> = vars.iter().collect();
    vars.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    for (k, v) in vars {
        match formatter {
            "oldstyle" => out = out.replace(&format!("%({k})s"), v),
            "template" => {
                out = out
                    .replace(&format!("${{{k}}}"), v)
                    .replace(&format!("${k}"), v);
            }
            _ => out = out.replace(&format!("{{{k}}}"), v),
        }
    }
    out
}

fn external_location_of(v: &Value) -> Option<String> {
    ["config", "meta"]
        .iter()
        .find_map(|k| yaml::get(v, k).and_then(|m| yaml::get_str(m, "external_location")))
}

fn json_map(v: Option<&Value>) -> Config {
    v.map(yaml::to_json)
        .and_then(|j| j.as_object().cloned())
        .unwrap_or_default()
}
