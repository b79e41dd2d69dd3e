//! The models, seeds, tests and schema files of installed packages. They build with the
//! project as dbt builds them: each package's nodes take the configs and vars of its own
//! project file first, and the project's (`models: <package>: ...`, `vars: <package>: ...`)
//! over them.

use super::config::{ConfigTree, PackageTrees};
use super::files::{self, SchemaFiles, SqlFile};
use super::packages::Package;
use super::profile::Target;
use super::yaml::{self, YamlRenderer};
use crate::error::Result;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::Path;

pub type Vars = BTreeMap<String, Json>;

/// What packages' nodes are read with.
pub struct Context<'a> {
    pub root: &'a Path,
    pub target: &'a Target,
    /// `--vars`, which win over every project's.
    pub cli_vars: &'a Vars,
    /// `vars:` of the project file, as written (global ones and those scoped by package).
    pub project_vars: &'a Vars,
}

/// The nodes and schema files of one package.
#[derive(Debug, Default)]
pub struct Loaded {
    pub models: Vec<SqlFile>,
    pub tests: Vec<SqlFile>,
    pub schema: SchemaFiles,
    pub docs: BTreeMap<String, String>,
}

/// dbt's var scoping for the nodes of `package`: a project's global vars, then the ones it
/// scopes to that package (`vars: {package: {name: value}}`).
pub fn scoped(vars: &Vars, package: &str) -> Vars {
    let mut out = vars.clone();
    if let Some(Json::Object(own)) = vars.get(package) {
        out.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    out
}

/// Reads the nodes of `package` and fills in its configs and vars.
pub fn load(package: &mut Package, cx: &Context) -> Result<Loaded> {
    let folder = cx.root.join(&package.root);
    let file = folder.join("dbt_project.yml");
    let (raw, text) = yaml::read(&file)?;
    let doc = YamlRenderer::new(cx.cli_vars.clone())
        .with_target(cx.target)
        .render_tree(raw, &file, &text)?;
    let keys = yaml::Keys {
        file: &file,
        text: &text,
    };
    let own_vars: Vars = match keys.map(&doc, "vars")? {
        Some(v) => serde_json::from_value(yaml::to_json(v)).unwrap_or_default(),
        None => Vars::new(),
    };
    let mut vars = scoped(&own_vars, &package.name);
    vars.extend(scoped(cx.project_vars, &package.name));
    vars.extend(cx.cli_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    package.vars = vars;

    let tree = |key: &str| -> Result<ConfigTree> {
        let t = ConfigTree::from_yaml_by_package(keys.map(&doc, key)?);
        t.check_types(&keys)?;
        Ok(t)
    };
    package.trees = PackageTrees {
        models: tree("models")?,
        seeds: tree("seeds")?,
        tests: tree(super::tests_key(&doc))?,
        snapshots: tree("snapshots")?,
    };

    package.on_run_start = super::hook_list(&keys, &doc, "on-run-start")?;
    package.on_run_end = super::hook_list(&keys, &doc, "on-run-end")?;

    let under = |key: &str, default: &str| -> Result<Vec<String>> {
        Ok(keys
            .str_list(&doc, key)?
            .unwrap_or_else(|| vec![default.to_string()])
            .iter()
            .map(|p| package.root.join(p).to_string_lossy().into_owned())
            .collect())
    };
    let model_paths = under("model-paths", "models")?;
    let seed_paths = under("seed-paths", "seeds")?;
    let mut models = files::read_sql_files(cx.root, &model_paths)?;
    models.extend(files::read_python_models(cx.root, &model_paths)?);
    models.extend(files::read_seed_files(cx.root, &seed_paths)?);
    let snapshot_paths = under("snapshot-paths", "snapshots")?;
    models.extend(super::snapshots::read_blocks(cx.root, &snapshot_paths)?);
    let (tests, _) = files::read_test_files(cx.root, &under("test-paths", "tests")?)?;
    let mut resource_paths = model_paths;
    resource_paths.extend(seed_paths);
    resource_paths.extend(snapshot_paths);
    let docs = super::data_tests::read_docs(cx.root, &resource_paths)?;
    let renderer = YamlRenderer::new(package.vars.clone())
        .with_docs(docs.clone())
        .with_target(cx.target);
    let mut schema = files::read_schema_files(cx.root, &resource_paths, &renderer)?;
    let name = Some(package.name.clone());
    for t in &mut schema.tests {
        t.package = name.clone();
    }
    for s in &mut schema.sources {
        s.package = name.clone();
    }
    for e in &mut schema.exposures {
        e.package = name.clone();
    }
    for u in &mut schema.unit_tests {
        u.package = name.clone();
    }
    for l in &mut schema.listed {
        l.package = name.clone();
    }
    models.extend(super::snapshots::from_yaml(&schema));
    let mut tests = tests;
    for f in models.iter_mut().chain(tests.iter_mut()) {
        f.package = name.clone();
    }
    Ok(Loaded {
        models,
        tests,
        schema,
        docs,
    })
}

impl SchemaFiles {
    /// Adds a package's schema files; the project's own entries win over a package's.
    pub fn absorb(&mut self, other: SchemaFiles) {
        for (k, v) in other.models {
            self.models.entry(k).or_insert(v);
        }
        for (k, v) in other.seeds {
            self.seeds.entry(k).or_insert(v);
        }
        for (k, v) in other.snapshots {
            self.snapshots.entry(k).or_insert(v);
        }
        self.sources.extend(other.sources);
        self.warnings.extend(other.warnings);
        self.tests.extend(other.tests);
        self.exposures.extend(other.exposures);
        self.unit_tests.extend(other.unit_tests);
        self.listed.extend(other.listed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_vars_layer_over_global_ones() {
        let vars: Vars = serde_json::from_str(r#"{"a": 1, "b": 1, "pkg": {"b": 2, "c": 3}}"#)
            .unwrap_or_default();
        let s = scoped(&vars, "pkg");
        assert_eq!(s["a"], 1);
        assert_eq!(s["b"], 2);
        assert_eq!(s["c"], 3);
        let other = scoped(&vars, "other");
        assert_eq!(other["b"], 1);
        assert!(!other.contains_key("c"));
    }
}
