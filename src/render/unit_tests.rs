//! dbt's unit tests (`unit_tests:` in schema files): the model rendered with each `given`
//! input replaced by a fixture CTE (and `overrides` of vars and `is_incremental`), to be run
//! against the `expect`ed rows. A unit test runs after the model's parents and before the
//! model, which waits for it in a build.

use super::functions::{Fixtures, RefTarget, Scope, Shared};
use super::{Node, Renderer};
use crate::model::materialization::Materialization;
use crate::model::unit_test::{Given, Rows, UnitTest};
use crate::project::{Config, FileKind, SqlFile, UnitTestDecl, config as cfg};
use serde_json::Value;
use std::sync::Arc;

/// What the models' render gives the unit tests.
pub(super) struct Models<'a> {
    pub shared: &'a Arc<Shared>,
    pub files: &'a [&'a SqlFile],
    pub finals: &'a [Config],
    pub enabled: &'a [bool],
    pub refs: &'a [Vec<String>],
}

pub(super) fn compile(r: &Renderer, m: &Models) -> Vec<Node> {
    r.project
        .schema
        .unit_tests
        .iter()
        .filter_map(|decl| one(r, m, decl))
        .collect()
}

fn one(r: &Renderer, m: &Models, decl: &UnitTestDecl) -> Option<Node> {
    let config: Config = match decl.entry.get("config") {
        Some(Value::Object(c)) => c.clone(),
        _ => Config::new(),
    };
    if cfg::get_bool(&config, "enabled") == Some(false) {
        return None;
    }
    let package = decl.package.as_deref().unwrap_or(&r.project.name);
    let index = m.shared.models.get(&decl.model).copied();
    if index.is_some_and(|i| !m.enabled[i]) {
        return None;
    }
    let compiled = index
        .ok_or_else(|| {
            format!(
                "the unit test '{}' tests '{}', which is not a model",
                decl.name, decl.model
            )
        })
        .and_then(|i| spec(r, m, decl, i));
    let (materialization, error) = match compiled {
        Ok(spec) => (Materialization::UnitTest(spec), None),
        Err(e) => (
            Materialization::UnitTest(UnitTest {
                model: decl.model.clone(),
                sql: String::new(),
                given: Vec::new(),
                expect: Rows::Dicts(Vec::new()),
            }),
            Some(format!("{}: {e}", decl.file.display())),
        ),
    };
    Some(Node {
        unique_id: format!("unit_test.{package}.{}.{}", decl.model, decl.name),
        kind: FileKind::Test,
        name: decl.name.clone(),
        fqn: vec![package.to_string(), decl.model.clone(), decl.name.clone()],
        path: decl.file.clone(),
        layer: None,
        tags: cfg::as_string_list(config.get("tags")),
        config,
        materialization,
        relation: crate::model::relation::Relation::new("", decl.name.clone()),
        location: None,
        refs: index.map(|i| m.refs[i].clone()).unwrap_or_default(),
        sources: Vec::new(),
        raw_sql: String::new(),
        compiled_sql: String::new(),
        checksum: String::new(),
        unrendered_config: Default::default(),
        test: None,
        hooks: Default::default(),
        incremental_sql: None,
        error,
        deferred: false,
        python: None,
        version: None,
        contract: None,
        constraints: None,
    })
}

/// The model's SQL on the fixtures, and the rows to compare.
fn spec(r: &Renderer, m: &Models, decl: &UnitTestDecl, i: usize) -> Result<UnitTest, String> {
    let e = &decl.entry;
    let overrides = e.get("overrides");
    let mut incremental = false;
    let mut fixtures = Fixtures::default();
    if let Some(Value::Object(macros)) = overrides.and_then(|o| o.get("macros")) {
        for (name, value) in macros {
            match name.as_str() {
                "is_incremental" => incremental = value.as_bool().unwrap_or(false),
                // The project's and packages' macros return the given value instead.
                other => {
                    fixtures.macros.insert(other.to_string(), value.clone());
                }
            }
        }
    }
    if let Some(Value::Object(env_vars)) = overrides.and_then(|o| o.get("env_vars")) {
        fixtures.env_vars = env_vars.clone().into_iter().collect();
    }
    if let Some(Value::Object(vars)) = overrides.and_then(|o| o.get("vars")) {
        fixtures.vars = vars.clone().into_iter().collect();
    }
    let model_relation = match &m.shared.ref_targets[i] {
        RefTarget::Relation(rel) => rel.clone(),
        RefTarget::Ephemeral(_) => {
            return Err("unit tests of ephemeral models are not supported by lakeflow".into());
        }
    };
    let mut given = Vec::new();
    let mut this_cte = None;
    for (n, item) in e
        .get("given")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let input = item
            .get("input")
            .and_then(Value::as_str)
            .ok_or("a `given` item has no `input`")?;
        let cte = format!("__lf_fixture_{n}");
        let relation = match parse_input(input)? {
            Input::Ref(name) => {
                let target = m
                    .shared
                    .models
                    .get(&name)
                    .map(|&j| &m.shared.ref_targets[j])
                    .ok_or_else(|| format!("the input ref('{name}') is not a model or seed"))?;
                fixtures.inputs.insert(name, cte.clone());
                match target {
                    RefTarget::Relation(rel) => Some(format!("select * from {rel}")),
                    RefTarget::Ephemeral(_) => None,
                }
            }
            Input::Source(s, t) => {
                let sql = m
                    .shared
                    .sources
                    .get(&(s.clone(), t.clone()))
                    .ok_or_else(|| format!("the input source('{s}', '{t}') is not defined"))?
                    .clone();
                fixtures.inputs.insert(format!("{s}.{t}"), cte.clone());
                Some(format!("select * from {sql}"))
            }
            Input::This => {
                this_cte = Some(cte.clone());
                Some(format!("select * from {model_relation}"))
            }
        };
        given.push(Given {
            cte,
            relation,
            rows: rows(r, item)?,
        });
    }
    let expect = rows(r, e.get("expect").ok_or("the unit test has no `expect`")?)?;
    let scope = Scope::unit_test(m.shared.clone(), m.finals[i].clone(), incremental, fixtures);
    let mut sql = r
        .render_model(m.files[i], &scope, model_relation.clone(), &m.finals[i])
        .map_err(|e| e.to_string())?;
    if scope.deferred() {
        return Err(
            "the model reads the database while rendering, which lakeflow's unit tests do not support"
                .into(),
        );
    }
    if let Some(cte) = this_cte {
        sql = sql.replace(&model_relation.to_string(), &cte);
    }
    Ok(UnitTest {
        model: decl.model.clone(),
        sql,
        given,
        expect,
    })
}

enum Input {
    Ref(String),
    Source(String, String),
    This,
}

/// `ref('x')`, `source('s', 't')` or `this`.
fn parse_input(text: &str) -> Result<Input, String> {
    let t = text.trim();
    let t = t
        .strip_prefix("{{")
        .and_then(|x| x.strip_suffix("}}"))
        .unwrap_or(t)
        .trim();
    if t == "this" {
        return Ok(Input::This);
    }
    let args = |prefix: &str| -> Option<Vec<String>> {
        let inner = t.strip_prefix(prefix)?.trim_start().strip_prefix('(')?;
        let inner = inner.strip_suffix(')')?;
        Some(
            inner
                .split(',')
                .map(|a| a.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
                .filter(|a| !a.is_empty() && !a.contains('='))
                .collect(),
        )
    };
    if let Some(name) = args("ref").and_then(|a| a.last().cloned()) {
        return Ok(Input::Ref(name));
    }
    if let Some(a) = args("source")
        && a.len() == 2
    {
        return Ok(Input::Source(a[0].clone(), a[1].clone()));
    }
    Err(format!(
        "the input `{text}` is not ref('...'), source('...', '...') or this"
    ))
}

/// The rows of a `given` or `expect`: `rows` in its `format` (dict, csv, sql), or a
/// `fixture` file under `test-paths/fixtures/`.
fn rows(r: &Renderer, item: &Value) -> Result<Rows, String> {
    let format = item.get("format").and_then(Value::as_str).unwrap_or("dict");
    let text = || -> Result<String, String> {
        if let Some(rows) = item.get("rows").and_then(Value::as_str) {
            return Ok(rows.to_string());
        }
        let fixture = item
            .get("fixture")
            .and_then(Value::as_str)
            .ok_or("give `rows` or a `fixture`")?;
        let ext = if format == "sql" { "sql" } else { "csv" };
        r.project
            .test_paths
            .iter()
            .map(|d| {
                r.project
                    .root
                    .join(d)
                    .join("fixtures")
                    .join(format!("{fixture}.{ext}"))
            })
            .find(|p| p.is_file())
            .and_then(|p| std::fs::read_to_string(p).ok())
            .ok_or_else(|| {
                format!("no fixture file {fixture}.{ext} under fixtures/ of the test paths")
            })
    };
    Ok(match format {
        "dict" => Rows::Dicts(
            item.get("rows")
                .and_then(Value::as_array)
                .map(|rows| rows.iter().filter_map(|r| r.as_object().cloned()).collect())
                .unwrap_or_default(),
        ),
        "csv" => Rows::Csv(text()?),
        "sql" => Rows::Sql(text()?),
        other => return Err(format!("unknown rows format '{other}' (dict, csv, sql)")),
    })
}
