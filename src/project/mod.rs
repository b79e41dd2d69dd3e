//! Phase 1, load: the project file, the profile, and every file the project is made of.

pub mod config;
pub mod data_tests;
pub mod env;
pub mod files;
pub mod package_nodes;
pub mod packages;
pub mod paths;
pub mod profile;
pub mod resources;
pub mod selectors;
pub mod snapshots;
pub mod sources;
pub mod unsupported;
pub mod yaml;

use crate::error::{Error, Result};
pub use config::{Config, ConfigTree};
pub use files::{
    Exposure, FileKind, ModelVersion, ModelYaml, SchemaFiles, SourceTable, SqlFile, UnitTestDecl,
};
pub use profile::Target;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use yaml::YamlRenderer;

/// Which file the project came from; dbt projects keep dbt's naming rules for schemas and
/// locations so their outputs land where dbt-duckdb put them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectKind {
    Lakeflow,
    Dbt,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    pub file: PathBuf,
    pub kind: ProjectKind,
    pub name: String,
    pub model_paths: Vec<String>,
    pub macro_paths: Vec<String>,
    pub target_path: PathBuf,
    pub clean_targets: Vec<PathBuf>,
    pub vars: BTreeMap<String, serde_json::Value>,
    pub model_configs: ConfigTree,
    /// `seeds:` of the project file (`+column_types`, `+delimiter`, `+schema`, ...).
    pub seed_configs: ConfigTree,
    /// `data_tests:` (or `tests:`) of the project file: `+severity`, `+store_failures`, ...
    pub test_configs: ConfigTree,
    /// `snapshots:` of the project file (`+strategy`, `+unique_key`, `+target_schema`, ...).
    pub snapshot_configs: ConfigTree,
    /// The same three blocks by package: what the project sets for the nodes of installed
    /// packages (`models: <package>: ...`), over the packages' own configs.
    pub package_configs: config::PackageTrees,
    /// Models and seeds (`kind` tells them apart): one name space, as in dbt.
    pub models: Vec<SqlFile>,
    /// `test-paths`, relative to the root (unit tests' fixture files are under `fixtures/`).
    pub test_paths: Vec<String>,
    /// Singular tests: the SQL files under `test-paths` (outside `generic/`).
    pub tests: Vec<SqlFile>,
    /// Macro files, including `{% test %}` blocks under `test-paths/generic/`.
    pub macros: Vec<SqlFile>,
    /// The SQL files under `analysis-paths`: listed in the manifest, never run.
    pub analyses: Vec<SqlFile>,
    /// The dbt packages installed under `packages_install_path`, with their macros.
    pub packages: Vec<packages::Package>,
    /// `dispatch:` search orders of the project file.
    pub dispatch: Vec<packages::Dispatch>,
    /// `packages-install-path` (relative to the root): where `lakeflow deps` installs.
    pub packages_install_path: String,
    /// `{% docs %}` blocks by name, for `{{ doc() }}`.
    pub docs: BTreeMap<String, String>,
    /// One line per dbt feature the project uses that lakeflow does not run.
    pub warnings: Vec<String>,
    /// `on-run-start` / `on-run-end` of the project file, unrendered (Jinja with macros).
    pub on_run_start: Vec<String>,
    pub on_run_end: Vec<String>,
    pub schema: SchemaFiles,
    pub target: Target,
    /// The command this run is, as dbt's `flags` and `invocation_args_dict` show it.
    pub invocation: Invocation,
    /// The named selections of `selectors.yml` (`--selector NAME`).
    pub selectors: Vec<selectors::Selector>,
}

/// The command line of a run, for the Jinja context.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// `build`, `run`, `test`, `seed`, `compile`, `ls`, ...
    pub which: String,
    pub full_refresh: bool,
    /// `--empty`: every model built from inputs with no rows (a cheap schema check).
    pub empty: bool,
    pub select: Vec<String>,
    pub exclude: Vec<String>,
    /// `--vars`, parsed.
    pub vars: BTreeMap<String, serde_json::Value>,
    /// `--defer`: refs to these models (unselected, not built here) read the `--state`
    /// manifest's relation instead: (database, empty for this catalog; schema, identifier)
    /// by model name.
    pub defer: std::collections::HashMap<String, (String, String, String)>,
}

#[derive(Debug, Default, Clone)]
pub struct LoadOptions {
    pub project_dir: Option<PathBuf>,
    pub profiles_dir: Option<PathBuf>,
    pub target: Option<String>,
    /// `--vars` as given: a YAML or JSON mapping.
    pub vars: Option<String>,
}

/// Finds the project file in `dir`: `lakeflow.yml` first, then `dbt_project.yml`.
pub fn find_project_file(dir: &Path) -> Result<(PathBuf, ProjectKind)> {
    for (name, kind) in [
        ("lakeflow.yml", ProjectKind::Lakeflow),
        ("lakeflow.yaml", ProjectKind::Lakeflow),
        ("dbt_project.yml", ProjectKind::Dbt),
    ] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok((p, kind));
        }
    }
    Err(Error::new(
        "LF105",
        format!("no lakeflow.yml or dbt_project.yml in {}", dir.display()),
    )
    .hint("run inside a project, pass --project-dir, or create one with `lakeflow init NAME`"))
}

pub fn load(opts: &LoadOptions) -> Result<Project> {
    let dir = match &opts.project_dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().map_err(|e| Error::new("LF100", e.to_string()))?,
    };
    let root =
        std::fs::canonicalize(&dir).map_err(|e| Error::io("LF105", "open project dir", &dir, e))?;
    let (file, kind) = find_project_file(&root)?;
    let cli_vars = parse_cli_vars(opts.vars.as_deref())?;

    let (raw, text) = yaml::read(&file)?;
    let keys = yaml::Keys {
        file: &file,
        text: &text,
    };
    // First what the profile depends on (name, profile, vars); then, with the target known,
    // the whole file, so its values may use `target` as in dbt.
    let head = YamlRenderer::new(cli_vars.clone()).render_tree(head_of(&raw), &file, &text)?;
    let name = keys.str(&head, "name")?.ok_or_else(|| {
        Error::new("LF106", "the project file has no `name`")
            .in_file(&file)
            .hint("add `name: my_project` at the top")
    })?;
    check_project_name(&name, &file, &text)?;
    let file_vars: BTreeMap<String, serde_json::Value> = match keys.map(&head, "vars")? {
        Some(v) => serde_json::from_value(yaml::to_json(v)).unwrap_or_default(),
        None => BTreeMap::new(),
    };
    // dbt's scoping: global vars, then those the file scopes to the project, then --vars.
    let mut vars = package_nodes::scoped(&file_vars, &name);
    vars.extend(cli_vars.clone());
    let renderer = YamlRenderer::new(vars.clone());

    let profile_name = keys.str(&head, "profile")?.unwrap_or_else(|| name.clone());
    let cwd = std::env::current_dir().map_err(|e| Error::new("LF100", e.to_string()))?;
    let target = profile::load(&profile::ProfileRequest {
        profiles_dir: opts.profiles_dir.as_deref(),
        project_dir: &root,
        dbt_paths_from: (kind == ProjectKind::Dbt).then_some(cwd.as_path()),
        profile_name: &profile_name,
        target: opts.target.as_deref(),
        renderer: &renderer,
    })?;
    let doc = YamlRenderer::new(cli_vars.clone())
        .with_target(&target)
        .render_tree(raw, &file, &text)?;
    let paths = |key: &str, default: &str| -> Result<Vec<String>> {
        Ok(keys
            .str_list(&doc, key)?
            .unwrap_or_else(|| vec![default.to_string()]))
    };
    let model_paths = paths("model-paths", "models")?;
    let macro_paths = paths("macro-paths", "macros")?;
    let target_path = root.join(
        keys.str(&doc, "target-path")?
            .unwrap_or_else(|| "target".into()),
    );
    let clean_targets = keys
        .str_list(&doc, "clean-targets")?
        .map(|v| v.iter().map(|p| root.join(p)).collect())
        .unwrap_or_else(|| vec![target_path.clone()]);

    let seed_paths = paths("seed-paths", "seeds")?;
    let mut models = files::read_sql_files(&root, &model_paths)?;
    models.extend(files::read_python_models(&root, &model_paths)?);
    models.extend(files::read_seed_files(&root, &seed_paths)?);
    let snapshot_paths = paths("snapshot-paths", "snapshots")?;
    models.extend(snapshots::read_blocks(&root, &snapshot_paths)?);
    let mut macros = files::read_sql_files(&root, &macro_paths)?;
    let test_paths = paths("test-paths", "tests")?;
    let analyses = files::read_sql_files(&root, &paths("analysis-paths", "analyses")?)?;
    let (mut tests, generic_tests) = files::read_test_files(&root, &test_paths)?;
    macros.extend(generic_tests);
    let mut resource_paths: Vec<String> = model_paths.clone();
    resource_paths.extend(seed_paths.iter().cloned());
    resource_paths.extend(snapshot_paths.iter().cloned());
    let mut docs_paths = keys
        .str_list(&doc, "docs-paths")?
        .unwrap_or_else(|| resource_paths.clone());
    docs_paths.dedup();
    let mut docs = data_tests::read_docs(&root, &docs_paths)?;
    let mut schema = files::read_schema_files(
        &root,
        &resource_paths,
        &renderer.with_docs(docs.clone()).with_target(&target),
    )?;
    let unsupported::Found { mut warnings } = unsupported::scan(&root, &doc, &resource_paths)?;
    warnings.extend(schema.warnings.iter().cloned());
    models.extend(snapshots::from_yaml(&schema));
    let packages_install_path = keys
        .str(&doc, "packages-install-path")?
        .unwrap_or_else(|| "dbt_packages".into());
    let mut installed = packages::installed(&root, &packages_install_path)?;
    if let Some((declared_in, declared)) = packages::declared(&root)?
        && declared.len() > installed.len()
    {
        warnings.push(format!(
            "{}: {} packages are declared, {} installed under {packages_install_path}/; run `lakeflow deps` (or `dbt deps`)",
            declared_in.strip_prefix(&root).unwrap_or(&declared_in).display(),
            declared.len(),
            installed.len()
        ));
    }
    // Packages' models, seeds and tests build with the project's, as in dbt.
    let cx = package_nodes::Context {
        root: &root,
        target: &target,
        cli_vars: &cli_vars,
        project_vars: &file_vars,
    };
    for p in installed.iter_mut() {
        let loaded = package_nodes::load(p, &cx)?;
        models.extend(loaded.models);
        tests.extend(loaded.tests);
        schema.absorb(loaded.schema);
        for (k, v) in loaded.docs {
            docs.entry(k).or_insert(v);
        }
    }
    mark_versions(&mut models, &schema);
    let dispatch = packages::dispatch(&doc, &keys)?;
    let tree = |key: &str| -> Result<ConfigTree> {
        let t = ConfigTree::from_yaml(keys.map(&doc, key)?, &name);
        t.check_types(&keys)?;
        Ok(t)
    };
    let test_key = tests_key(&doc);
    let on_run_start = hook_list(&keys, &doc, "on-run-start")?;
    let on_run_end = hook_list(&keys, &doc, "on-run-end")?;

    let selectors = selectors::read(&root)?;
    let by_package = |key: &str| -> Result<ConfigTree> {
        Ok(ConfigTree::from_yaml_by_package(keys.map(&doc, key)?))
    };
    Ok(Project {
        package_configs: config::PackageTrees {
            models: by_package("models")?,
            seeds: by_package("seeds")?,
            tests: by_package(test_key)?,
            snapshots: by_package("snapshots")?,
        },
        snapshot_configs: tree("snapshots")?,
        model_configs: tree("models")?,
        seed_configs: tree("seeds")?,
        test_configs: tree(test_key)?,
        root,
        file,
        kind,
        name,
        model_paths,
        macro_paths,
        target_path,
        clean_targets,
        vars,
        models,
        test_paths,
        tests,
        macros,
        analyses,
        packages: installed,
        dispatch,
        packages_install_path,
        docs,
        warnings,
        on_run_start,
        on_run_end,
        schema,
        target,
        invocation: Invocation {
            vars: cli_vars,
            ..Invocation::default()
        },
        selectors,
    })
}

/// The key of a project file's tests configs: `data_tests`, or the older `tests`.
fn tests_key(doc: &serde_yaml::Value) -> &'static str {
    if yaml::get(doc, "data_tests").is_some() {
        "data_tests"
    } else {
        "tests"
    }
}

/// The keys of the project file that must be read before the profile: name, profile, vars.
fn head_of(raw: &serde_yaml::Value) -> serde_yaml::Value {
    let mut head = serde_yaml::Mapping::new();
    if let serde_yaml::Value::Mapping(m) = raw {
        for key in ["name", "profile", "vars"] {
            if let Some(v) = m.get(key) {
                head.insert(serde_yaml::Value::from(key), v.clone());
            }
        }
    }
    serde_yaml::Value::Mapping(head)
}

/// dbt's rule for project names (letters, digits, underscores, not starting with a digit).
/// The name becomes a folder under `target/compiled/`, so it must not be a path.
fn check_project_name(name: &str, file: &Path, text: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_');
    if ok {
        return Ok(());
    }
    let line = text
        .lines()
        .position(|l| l.trim_start().starts_with("name:"))
        .map_or(1, |i| i + 1);
    Err(Error::new(
        "LF106",
        format!("the project name '{name}' is not a valid name"),
    )
    .at(file, line, None)
    .with_snippet_from(text)
    .hint("use letters, digits and underscores only, starting with a letter or underscore, e.g. `name: my_shop`"))
}

/// A project hook key: one SQL string or a list of them.
fn hook_list(keys: &yaml::Keys, doc: &serde_yaml::Value, key: &str) -> Result<Vec<String>> {
    Ok(keys
        .str_list(doc, key)?
        .unwrap_or_default()
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .collect())
}

fn parse_cli_vars(text: Option<&str>) -> Result<BTreeMap<String, serde_json::Value>> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let value: serde_yaml::Value = yaml::from_str_merged(text).map_err(|e| {
        Error::new("LF107", format!("--vars is not valid YAML: {e}"))
            .hint("pass a mapping, e.g. --vars '{start_date: 2024-01-01, days: 7}'")
    })?;
    serde_json::from_value(yaml::to_json(&value)).map_err(|_| {
        Error::new("LF107", "--vars must be a mapping of names to values")
            .hint("pass a mapping, e.g. --vars '{start_date: 2024-01-01}'")
    })
}

/// Marks the files of versioned models (`versions:` under a model in a schema file): each
/// version's file is `defined_in`, else `<model>_v<v>`; the latest is `latest_version`, else
/// the highest.
fn mark_versions(models: &mut [SqlFile], schema: &SchemaFiles) {
    for (name, yml) in &schema.models {
        let Some(serde_json::Value::Array(versions)) = yml.entry.get("versions") else {
            continue;
        };
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let listed: Vec<(String, String)> = versions
            .iter()
            .filter_map(|item| {
                let v = text(item.get("v")?)?;
                let file = item
                    .get("defined_in")
                    .and_then(text)
                    .unwrap_or_else(|| format!("{name}_v{v}"));
                Some((v, file))
            })
            .collect();
        let latest = yml
            .entry
            .get("latest_version")
            .and_then(text)
            .or_else(|| {
                listed.iter().map(|(v, _)| v.clone()).max_by(|a, b| {
                    match (a.parse::<f64>(), b.parse::<f64>()) {
                        (Ok(x), Ok(y)) => x.total_cmp(&y),
                        _ => a.cmp(b),
                    }
                })
            })
            .unwrap_or_default();
        for (v, file) in listed {
            for f in models
                .iter_mut()
                .filter(|f| f.name == file && f.kind == FileKind::Model)
            {
                f.version = Some(files::ModelVersion {
                    model: name.clone(),
                    v: v.clone(),
                    latest: latest.clone(),
                });
            }
        }
    }
}
