//! Data tests to SQL. A generic test declared in a schema file becomes a call of its
//! `test_<name>` macro with dbt's arguments (`model`, `column_name`, the rest); a singular test
//! is rendered like a model. Either way the result is a query for the rows that fail.

use super::functions::{Pass, Scope, Shared};
use super::test_args::{literal, literal_str, looks_like_call, model_arg, whole_expression};
use super::test_ids::synthesize_names;
use super::{Node, Renderer, base_config, check_refs, dedup, ephemeral};
use crate::error::{Error, Result};
use crate::model::materialization::Materialization;
use crate::model::relation::Relation;
use crate::project::data_tests::{TestDecl, TestTarget};
use crate::project::{Config, FileKind, Project, ProjectKind, SqlFile, config as cfg};
use std::collections::HashMap;
use std::sync::Arc;

/// What a generic test was declared as, for the manifest's `test_metadata`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestInfo {
    /// `unique`, `accepted_values`, ...; `None` for a singular test.
    pub test_name: Option<String>,
    pub namespace: Option<String>,
    pub column_name: Option<String>,
    /// The model or seed (its name) or source table (`source.table`) tested.
    pub attached: Option<String>,
    pub kwargs: serde_json::Map<String, serde_json::Value>,
}

/// Everything compiling a test needs from the models' render.
pub(super) struct Models<'a> {
    pub shared: &'a Arc<Shared>,
    pub enabled: &'a [bool],
    pub files: &'a [&'a SqlFile],
    pub materializations: &'a [Materialization],
    pub bodies: &'a [Option<String>],
    /// What the ephemeral models a set of refs reaches say (deferred, broken).
    pub reach: &'a (dyn Fn(&[String]) -> super::EphemeralState + Sync),
    /// Where deferred tests leave how to render them when they run.
    pub recipes: &'a std::sync::Mutex<HashMap<String, super::deferred::Recipe>>,
}

pub(super) fn compile(r: &Renderer, m: &Models) -> Result<Vec<Node>> {
    let project = r.project;
    let mut out: Vec<Node> = Vec::new();
    for decl in &project.schema.tests {
        if let Some(node) = generic(r, m, decl)? {
            out.push(node);
        }
    }
    for file in &project.tests {
        if let Some(node) = singular(r, m, file)? {
            out.push(node);
        }
    }
    let mut seen: HashMap<&str, &Node> = HashMap::new();
    for n in &out {
        if let Some(first) = seen.insert(&n.unique_id, n) {
            return Err(Error::new(
                "LF213",
                format!(
                    "two tests are named '{}' ({} and {})",
                    n.name,
                    first.path.display(),
                    n.path.display()
                ),
            )
            .in_file(&n.path)
            .hint("give one of them its own `name:`, or remove the duplicate"));
        }
    }
    Ok(out)
}

fn generic(r: &Renderer, m: &Models, decl: &TestDecl) -> Result<Option<Node>> {
    let project = r.project;
    let located = |e: Error| e.at(&decl.file, decl.line, None);
    let (model_expr, target_name, attached) = match &decl.target {
        TestTarget::Node(name) => match m.shared.models.get(name) {
            Some(&i) if !m.enabled[i] => return Ok(None),
            Some(_) => (
                format!("ref({})", literal_str(name)),
                name.clone(),
                name.clone(),
            ),
            None => {
                crate::warnln!(
                    "{}:{}: the test '{}' is declared on '{name}', which is not a model or seed; it is not run",
                    decl.file.display(),
                    decl.line,
                    decl.test
                );
                return Ok(None);
            }
        },
        TestTarget::Source(s, t) => {
            if !m.shared.sources.contains_key(&(s.clone(), t.clone())) {
                return Ok(None);
            }
            (
                format!("source({}, {})", literal_str(s), literal_str(t)),
                format!("{s}_{t}"),
                format!("{s}.{t}"),
            )
        }
    };
    let (namespace, test_name) = match decl.test.split_once('.') {
        Some((ns, t)) => (Some(ns.to_string()), t.to_string()),
        None => (None, decl.test.clone()),
    };
    let macro_name = format!("test_{test_name}");
    let package = namespace.as_deref().filter(|ns| *ns != project.name);
    // A package's test is called through its namespace (`dbt_utils.test_x(...)`).
    let callee = match package {
        Some(ns) if r.macros.internal(Some(ns), &macro_name).is_some() => {
            Some(format!("{ns}.{macro_name}"))
        }
        Some(_) => None,
        // In a package's schema file, its own generic tests come first (as its macros do).
        None => match decl.package.as_deref() {
            Some(own) if r.macros.internal(Some(own), &macro_name).is_some() => {
                Some(format!("{own}.{macro_name}"))
            }
            _ => r.macros.has(&macro_name).then(|| macro_name.clone()),
        },
    };
    // A test whose macro does not exist is that test's error (as dbt's compilation error of
    // one node); the rest of the project still runs.
    let missing = callee.is_none().then(|| {
        let err = match package {
            Some(ns) if r.macros.packages.iter().any(|p| p == ns) => Error::new(
                "LF210",
                format!("the package '{ns}' has no generic test '{test_name}'"),
            )
            .hint(format!("check the test's name against the package's macros ({{% test {test_name}(...) %}})")),
            Some(ns) => Error::new(
                "LF210",
                format!("the test '{}' comes from the package '{ns}', which is not installed", decl.test),
            )
            .hint(format!(
                "declare '{ns}' in packages.yml and run `lakeflow deps` (or `dbt deps`), or define `{{% test {test_name}(model, column_name) %}}` in macros/ and write it without '{ns}.'"
            )),
            None => Error::new("LF210", format!("there is no generic test '{test_name}'")).hint(format!(
                "built in are unique, not_null, accepted_values and relationships; define others as `{{% test {test_name}(model, column_name) %}}` in macros/ or tests/generic/"
            )),
        };
        located(err).with_snippet(&decl.snippet)
    });

    // dbt's naming: test, target, then every argument's values, sorted by argument name.
    let mut named_args = decl.args.clone();
    if let Some(c) = &decl.column {
        named_args.insert("column_name".into(), serde_json::Value::from(c.clone()));
    }
    let test_type = match &namespace {
        Some(ns) => format!("{ns}_{test_name}"),
        None => test_name.clone(),
    };
    let test_type = match decl.target {
        TestTarget::Source(..) => format!("source_{test_type}"),
        TestTarget::Node(_) => test_type,
    };
    let (short, full) = synthesize_names(&test_type, &target_name, &named_args);
    let name = decl.name.clone().unwrap_or(full);

    // The folders of the schema file under its model path (in its package, for a package's).
    let within = decl
        .package
        .as_deref()
        .and_then(|n| project.packages.iter().find(|p| p.name == n))
        .and_then(|p| decl.file.strip_prefix(&p.root).ok())
        .unwrap_or(&decl.file);
    let mut path: Vec<String> = within
        .parent()
        .map(|p| {
            p.components()
                .skip(1)
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    path.push(name.clone());
    let mut base = super::folder_config(project, FileKind::Test, decl.package.as_deref(), &path);
    cfg::merge_into(&mut base, &decl.config);

    let hash = super::test_ids::dbt_test_hash(
        &name,
        namespace.as_deref(),
        &test_name,
        &decl.args,
        decl.column.as_deref(),
        &super::test_ids::dbt_model_str(&decl.target),
    );
    let (Some(callee), None) = (callee, missing.as_ref()) else {
        let error = missing.map(|e| e.to_string()).unwrap_or_default();
        return Ok(Some(error_node(r, decl, &name, path, base, &hash, error)));
    };

    // The call: arguments that look like `ref(...)`/`source(...)` are Jinja expressions (as
    // dbt evaluates them); all others are passed as literal values.
    let mut call = format!("{{{{ {callee}(model={}", model_arg(&model_expr, &base));
    if let Some(c) = &decl.column {
        call.push_str(&format!(", column_name={}", literal_str(c)));
    }
    for (key, value) in &decl.args {
        if !key.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(located(Error::new(
                "LF211",
                format!(
                    "test '{}' has an argument named '{key}', which is not a valid name",
                    decl.test
                ),
            ))
            .hint("argument names are letters, digits and underscores"));
        }
        let expr = match value {
            serde_json::Value::String(s) if looks_like_call(s) => s.trim().to_string(),
            serde_json::Value::String(s) => match whole_expression(s) {
                Some(e) => e.to_string(),
                None => literal(value),
            },
            other => literal(other),
        };
        call.push_str(&format!(", {key}={expr}"));
    }
    call.push_str(") }}");

    let mut folders = path.clone();
    folders.pop();
    let file = SqlFile {
        name: name.clone(),
        path: decl.file.clone(),
        folders,
        source: call,
        kind: FileKind::Test,
        checksum: String::new(),
        package: decl.package.clone(),
        version: None,
    };
    let info = TestInfo {
        test_name: Some(test_name),
        namespace,
        column_name: decl.column.clone(),
        attached: Some(attached),
        kwargs: named_args,
    };
    // A test given its own `name:` is stored (and its file named) under that name, as dbt.
    let alias = if decl.name.is_some() { &name } else { &short };
    render_test(r, m, &file, base, alias, Some(info), Some(&hash))
        .map(|n| n.map(|n| with_checksum(n, &decl.config)))
        .map_err(|e| {
            if e.location.as_ref().is_some_and(|l| l.file != decl.file) {
                e
            } else {
                located(e).with_snippet(&decl.snippet)
            }
        })
}

fn singular(r: &Renderer, m: &Models, file: &SqlFile) -> Result<Option<Node>> {
    let base = base_config(r.project, file);
    let info = TestInfo {
        test_name: None,
        namespace: None,
        column_name: None,
        attached: None,
        kwargs: Default::default(),
    };
    render_test(r, m, file, base, &file.name, Some(info), None)
}

/// Both passes of one test, as for a model: the parse pass captures `config()` and refs.
fn render_test(
    r: &Renderer,
    m: &Models,
    file: &SqlFile,
    base: Config,
    alias: &str,
    info: Option<TestInfo>,
    hash: Option<&str>,
) -> Result<Option<Node>> {
    let parse_scope = Scope::new(m.shared.clone(), Pass::Parse, base.clone());
    let this = Relation::new("__unresolved__", file.name.clone());
    r.render_model(file, &parse_scope, this, &base)?;
    let capture = parse_scope.take_capture();
    let mut config = base;
    cfg::merge_into(&mut config, &capture.config);
    let mut path = file.folders.clone();
    path.push(file.name.clone());
    if let Some(over) =
        super::project_override(r.project, FileKind::Test, file.package.as_deref(), &path)
    {
        cfg::merge_into(&mut config, &over);
    }
    if !cfg::get_bool(&config, "enabled").unwrap_or(true) {
        return Ok(None);
    }
    // A test of a disabled model is dropped with it, as dbt does.
    if capture
        .refs
        .iter()
        .any(|name| m.shared.models.get(name).is_some_and(|&i| !m.enabled[i]))
    {
        return Ok(None);
    }
    check_refs(file, &capture.refs, m.shared, m.enabled, m.files)?;
    let mut relation = audit_relation(r.project, &config, alias);
    // Where failing rows are stored: through the project's naming macros too, with dbt's
    // default custom schema for tests.
    if r.names_nodes() && cfg::get_bool(&config, "store_failures") == Some(true) {
        let mut named = config.clone();
        named
            .entry("schema")
            .or_insert_with(|| serde_json::Value::from(AUDIT_SCHEMA));
        let scope = Scope::new(m.shared.clone(), Pass::Compile, named.clone());
        relation = r.named_relation(file, &scope, &named, relation)?;
    }
    let scope = Scope::new(m.shared.clone(), Pass::Compile, config.clone());
    let body = r.render_model(file, &scope, relation.clone(), &config);
    let refs = dedup(capture.refs);
    let package = file.package.as_deref().unwrap_or(&r.project.name);
    let unique_id = match hash {
        Some(h) => format!("test.{package}.{}.{h}", file.name),
        None => format!("test.{package}.{}", file.name),
    };
    // A test that reads the database while rendering is rendered when it runs; one that
    // does not compile is its own error.
    let (mut deferred, mut error) = (scope.deferred(), None);
    let mut compiled_sql = String::new();
    match (deferred, body) {
        (true, _) => {}
        (false, Ok(body)) => {
            compiled_sql = ephemeral::inline_ephemerals(
                &refs,
                &m.shared.models,
                m.materializations,
                m.bodies,
                &body,
            )
        }
        (false, Err(e)) => error = Some(e.to_string()),
    }
    match (m.reach)(&refs) {
        super::EphemeralState::Fine => {}
        super::EphemeralState::Deferred => deferred = error.is_none(),
        super::EphemeralState::Failed(e) => error = error.or(Some(e)),
    }
    if deferred {
        compiled_sql = super::deferred::PLACEHOLDER.to_string();
        m.recipes.lock().unwrap_or_else(|p| p.into_inner()).insert(
            unique_id.clone(),
            super::deferred::Recipe {
                file: file.clone(),
                config: config.clone(),
                relation: relation.clone(),
                refs: refs.clone(),
                incremental: false,
                hooks: false,
            },
        );
    }
    let mut fqn = vec![package.to_string()];
    fqn.extend(file.folders.iter().cloned());
    fqn.push(file.name.clone());
    Ok(Some(Node {
        unique_id,
        kind: FileKind::Test,
        name: file.name.clone(),
        fqn,
        path: file.path.clone(),
        layer: None,
        tags: cfg::as_string_list(config.get("tags")),
        config,
        materialization: Materialization::Test,
        relation,
        location: None,
        refs,
        sources: dedup(capture.sources),
        raw_sql: file.source.clone(),
        compiled_sql,
        checksum: file.checksum.clone(),
        // What the test's own `config()` calls set (a generic test's macro, a singular
        // test's file), as dbt keeps them.
        unrendered_config: capture.config,
        test: info,
        hooks: Default::default(),
        incremental_sql: None,
        error,
        deferred,
        python: None,
        version: None,
        contract: None,
        constraints: None,
    }))
}

/// A generic test that cannot be compiled: a node that reports `error` when run, after the
/// model (or source) it tests.
fn error_node(
    r: &Renderer,
    decl: &TestDecl,
    name: &str,
    path: Vec<String>,
    config: Config,
    hash: &str,
    error: String,
) -> Node {
    let (refs, sources) = match &decl.target {
        TestTarget::Node(model) => (vec![model.clone()], Vec::new()),
        TestTarget::Source(s, t) => (Vec::new(), vec![(s.clone(), t.clone())]),
    };
    let package = decl.package.as_deref().unwrap_or(&r.project.name);
    let mut fqn = vec![package.to_string()];
    fqn.extend(path.iter().take(path.len().saturating_sub(1)).cloned());
    fqn.push(name.to_string());
    Node {
        unique_id: format!("test.{package}.{name}.{hash}"),
        kind: FileKind::Test,
        name: name.to_string(),
        fqn,
        path: decl.file.clone(),
        layer: None,
        tags: cfg::as_string_list(config.get("tags")),
        relation: audit_relation(r.project, &config, name),
        config,
        materialization: Materialization::Test,
        location: None,
        refs,
        sources,
        raw_sql: String::new(),
        compiled_sql: String::new(),
        checksum: String::new(),
        unrendered_config: Default::default(),
        test: None,
        hooks: Default::default(),
        incremental_sql: None,
        error: Some(error),
        deferred: false,
        python: None,
        version: None,
        contract: None,
        constraints: None,
    }
}

/// A generic test has no file checksum (dbt's `none`): `state:modified` compares its own
/// config, and a changed call changes its unique_id.
fn with_checksum(mut node: Node, own_config: &Config) -> Node {
    node.checksum = String::new();
    let mut unrendered = own_config.clone();
    unrendered.extend(std::mem::take(&mut node.unrendered_config));
    node.unrendered_config = unrendered;
    node
}

/// Where `store_failures` keeps the failing rows: dbt's `dbt_test__audit` schema (under the
/// target schema for dbt projects), named after the test.
/// dbt's custom schema of a test's stored failures unless its config names one.
const AUDIT_SCHEMA: &str = "dbt_test__audit";

fn audit_relation(project: &Project, config: &Config, alias: &str) -> Relation {
    let identifier = cfg::get_str(config, "alias").unwrap_or(alias).to_string();
    let custom = cfg::get_str(config, "schema").unwrap_or(AUDIT_SCHEMA);
    let schema = match project.kind {
        ProjectKind::Lakeflow => custom.to_string(),
        ProjectKind::Dbt => format!("{}_{}", project.target.schema, custom.trim()),
    };
    Relation::new(schema, identifier)
}
