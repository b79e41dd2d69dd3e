//! The parts of dbt's manifest (v12) beyond the graph's nodes: `macros` (the project's and
//! installed packages' macro and test blocks, each with the macros it calls), `docs`,
//! `unit_tests`, `parent_map` / `child_map`, the empty sections dbt always writes, and
//! `metadata`. With them the manifest loads in dbt (`--state`) and in dbt-artifacts-parser.

use crate::project::{Project, SqlFile, UnitTestDecl};
use crate::render::Node;
use regex::Regex;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

pub const SCHEMA_VERSION: &str = "https://schemas.getdbt.com/dbt/manifest/v12.json";

/// One `{% macro %}` or `{% test %}` block of a macro file.
pub struct MacroBlock {
    pub unique_id: String,
    pub name: String,
    pub package: String,
    pub path: String,
    /// The block's text, from `{% macro` to the end of `{% endmacro %}`, as dbt's `macro_sql`.
    pub sql: String,
}

/// Every macro block of the project and its installed packages.
pub fn macro_blocks(project: &Project) -> Vec<MacroBlock> {
    let mut out = Vec::new();
    let mut add = |files: &[SqlFile], package: &str, root: &std::path::Path| {
        for f in files {
            let path = f.path.strip_prefix(root).unwrap_or(&f.path);
            let path = path.to_string_lossy().into_owned();
            for (kind, name, sql) in blocks(&f.source) {
                let name = if kind == "test" {
                    format!("test_{name}")
                } else {
                    name
                };
                out.push(MacroBlock {
                    unique_id: format!("macro.{package}.{name}"),
                    name,
                    package: package.to_string(),
                    path: path.clone(),
                    sql,
                });
            }
        }
    };
    add(&project.macros, &project.name, std::path::Path::new(""));
    for p in &project.packages {
        add(&p.macros, &p.name, &p.root);
    }
    out
}

/// The `macro` / `test` blocks of a file: (kind, name, text). As dbt keeps them: from the
/// file's stripped text, a block opened with `{%-` takes the whitespace before it, one closed
/// with `-%}` the whitespace after it; blocks inside `{# ... #}` comments are not blocks.
fn blocks(source: &str) -> Vec<(String, String, String)> {
    let source = crate::project::files::py_strip(source);
    // Comments blanked out (same length), so offsets stay those of `source`.
    let scan: String = COMMENT
        .replace_all(source, |c: &regex::Captures| " ".repeat(c[0].len()))
        .into_owned();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(m) = OPEN.captures_at(&scan, from) {
        let (Some(whole), Some(kind), Some(name)) = (m.get(0), m.get(1), m.get(2)) else {
            break;
        };
        let rest = &scan[whole.end()..];
        let Some(end) = find_end_tag(rest, kind.as_str()) else {
            break;
        };
        let mut stop = whole.end() + end;
        let mut start = whole.start();
        if scan[start..].starts_with("{%-") {
            start = source[..start].trim_end().len().max(from);
        }
        if scan[..stop].ends_with("-%}") {
            stop = source.len() - source[stop..].trim_start().len();
        }
        out.push((
            kind.as_str().to_string(),
            name.as_str().to_string(),
            source[start..stop].to_string(),
        ));
        from = stop;
    }
    out
}

/// The patterns macro files are read with, compiled once.
static OPEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\{%-?\s*(macro|test)\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(").expect("a valid pattern")
});
/// A plain `ref('name')`, as an analysis's text is read.
static REF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"ref\(\s*['"]([^'"]+)['"]\s*\)"#).expect("a valid pattern"));
static COMMENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)\{#.*?#\}").expect("a valid pattern"));
static END_MACRO: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{%-?\s*endmacro\s*-?%\}").expect("a valid pattern"));
static END_TEST: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{%-?\s*endtest\s*-?%\}").expect("a valid pattern"));
static CALL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?\s*\(")
        .expect("a valid pattern")
});
static DISPATCH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"adapter\.dispatch\(\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]\s*(?:,\s*(?:macro_namespace\s*=\s*)?['"]([A-Za-z_][A-Za-z0-9_]*)['"])?"#)
        .expect("a valid pattern")
});

/// The offset just past the `{% endmacro %}` / `{% endtest %}` (any whitespace control)
/// closing a `kind` block in `rest`.
fn find_end_tag(rest: &str, kind: &str) -> Option<usize> {
    let end = if kind == "test" {
        &END_TEST
    } else {
        &END_MACRO
    };
    end.find(rest).map(|m| m.end())
}

/// The macros a text calls, by unique_id: `pkg.name(` as written, a bare `name(` as the
/// project's macro of that name, else the one package macro of that name.
pub struct MacroIndex {
    ids: std::collections::HashSet<String>,
    /// name -> (package, unique_id) of each block of that name.
    bare: HashMap<String, Vec<(String, String)>>,
    project: String,
}

impl MacroIndex {
    pub fn new(blocks: &[MacroBlock], project: &str) -> MacroIndex {
        let mut bare: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for b in blocks {
            bare.entry(b.name.clone())
                .or_default()
                .push((b.package.clone(), b.unique_id.clone()));
        }
        MacroIndex {
            ids: blocks.iter().map(|b| b.unique_id.clone()).collect(),
            bare,
            project: project.to_string(),
        }
    }

    pub fn called_by(&self, text: &str) -> Vec<String> {
        let mut out: BTreeSet<String> = BTreeSet::new();
        // `adapter.dispatch('name', 'package')`: the implementation DuckDB gets, as dbt
        // resolves it (`duckdb__name`, else `default__name`).
        for c in DISPATCH.captures_iter(text) {
            let Some(name) = c.get(1) else { continue };
            let found = ["duckdb__", "default__"].iter().find_map(|prefix| {
                let wanted = format!("{prefix}{}", name.as_str());
                match c.get(2) {
                    Some(pkg) => Some(format!("macro.{}.{wanted}", pkg.as_str()))
                        .filter(|id| self.ids.contains(id)),
                    None => self.resolve(&wanted),
                }
            });
            out.extend(found);
        }
        for c in CALL.captures_iter(text) {
            let (Some(a), b) = (c.get(1), c.get(2)) else {
                continue;
            };
            let found = match b {
                Some(b) => Some(format!("macro.{}.{}", a.as_str(), b.as_str()))
                    .filter(|id| self.ids.contains(id)),
                None => self.resolve(a.as_str()),
            };
            out.extend(found);
        }
        out.into_iter().collect()
    }

    fn resolve(&self, name: &str) -> Option<String> {
        let list = self.bare.get(name)?;
        let own = list.iter().find(|(p, _)| *p == self.project);
        match (own, list.as_slice()) {
            (Some((_, id)), _) | (None, [(_, id)]) => Some(id.clone()),
            _ => None,
        }
    }
}

/// The `macros` section.
pub fn macros(blocks: &[MacroBlock], index: &MacroIndex) -> Map<String, Value> {
    blocks
        .iter()
        .map(|b| {
            let mut calls = index.called_by(body_of(&b.sql));
            calls.retain(|c| *c != b.unique_id);
            (
                b.unique_id.clone(),
                json!({
                    "name": b.name, "resource_type": "macro", "package_name": b.package,
                    "path": b.path, "original_file_path": b.path, "unique_id": b.unique_id,
                    "macro_sql": b.sql, "depends_on": {"macros": calls}, "description": "",
                    "meta": {}, "docs": {"show": true, "node_color": null},
                    "config": {"meta": {}, "docs": {"show": true, "node_color": null}},
                    "patch_path": null, "arguments": [], "created_at": 0.0,
                    "supported_languages": null,
                }),
            )
        })
        .collect()
}

/// A block without its opening tag (which names the macro itself).
fn body_of(sql: &str) -> &str {
    sql.find("%}").map_or(sql, |i| &sql[i + 2..])
}

/// The `docs` section: each `{% docs %}` block of the project.
pub fn docs(project: &Project) -> Map<String, Value> {
    project
        .docs
        .iter()
        .map(|(name, text)| {
            let id = format!("doc.{}.{name}", project.name);
            (
                id.clone(),
                json!({
                    "name": name, "resource_type": "doc", "package_name": project.name,
                    "path": "", "original_file_path": "", "unique_id": id,
                    "block_contents": text.trim(),
                }),
            )
        })
        .collect()
}

/// The `unit_tests` section, in dbt's shape, from the schema files' entries.
pub fn unit_tests(
    project: &Project,
    nodes: &[Node],
    ids: &super::dbt_nodes::Ids,
) -> Map<String, Value> {
    let decl_of: HashMap<(&str, &str), &UnitTestDecl> = project
        .schema
        .unit_tests
        .iter()
        .map(|d| ((d.model.as_str(), d.name.as_str()), d))
        .collect();
    nodes
        .iter()
        .filter_map(|n| {
            let crate::model::materialization::Materialization::UnitTest(u) = &n.materialization
            else {
                return None;
            };
            let d = decl_of.get(&(u.model.as_str(), n.name.as_str()))?;
            let package = d.package.as_deref().unwrap_or(&project.name);
            let e = &d.entry;
            let fixture = |f: &Value| {
                json!({
                    "rows": f.get("rows").cloned().unwrap_or(Value::Null),
                    "format": f.get("format").cloned().unwrap_or_else(|| json!("dict")),
                    "fixture": f.get("fixture").cloned().unwrap_or(Value::Null),
                })
            };
            let given: Vec<Value> = e
                .get("given")
                .and_then(Value::as_array)
                .map(|g| {
                    g.iter()
                        .map(|i| {
                            let mut f = fixture(i);
                            f["input"] = i.get("input").cloned().unwrap_or(Value::Null);
                            f
                        })
                        .collect()
                })
                .unwrap_or_default();
            let file = super::dbt_nodes::in_package(project, d.package.as_deref(), &d.file);
            let fqn: Vec<String> = std::iter::once(package.to_string())
                .chain(super::dbt_nodes::yml_folders(&file))
                .chain([u.model.clone(), n.name.clone()])
                .collect();
            let schema = nodes
                .iter()
                .find(|m| m.name == u.model && !m.is_test())
                .map_or(String::new(), |m| m.relation.schema.clone());
            Some((
                n.unique_id.clone(),
                json!({
                    "model": u.model, "given": given,
                    "expect": e.get("expect").map(fixture).unwrap_or(Value::Null),
                    "name": n.name, "resource_type": "unit_test", "package_name": package,
                    "path": super::dbt_nodes::below_resource(&file),
                    "original_file_path": file, "unique_id": n.unique_id,
                    "fqn": fqn,
                    "description": e.get("description").cloned().unwrap_or_else(|| json!("")),
                    "overrides": e.get("overrides").cloned().unwrap_or(Value::Null),
                    "depends_on": {"macros": [], "nodes": ids.model(&u.model).into_iter().collect::<Vec<_>>()},
                    "config": {"tags": [], "meta": {}, "enabled": true, "static_analysis": null},
                    "checksum": crate::project::files::sha256_hex(&e.to_string()),
                    "schema": schema, "created_at": 0.0,
                    "versions": e.get("versions").cloned().unwrap_or(Value::Null),
                    "version": null,
                }),
            ))
        })
        .collect()
}

/// The metrics, semantic models, saved queries and groups, as listed resources in dbt's
/// shape (what lakeflow does not read of them kept under `config.lakeflow`), by section.
pub fn listed(
    project: &Project,
    ids: &super::dbt_nodes::Ids,
) -> BTreeMap<&'static str, Map<String, Value>> {
    let mut out: BTreeMap<&'static str, Map<String, Value>> = BTreeMap::new();
    for (section, _) in crate::project::resources::LISTED_SECTIONS {
        out.insert(section, Map::new());
    }
    for l in &project.schema.listed {
        let package = l.package.as_deref().unwrap_or(&project.name);
        let file = super::dbt_nodes::in_package(project, l.package.as_deref(), &l.file);
        let id = format!("{}.{package}.{}", l.kind, l.name);
        let fqn: Vec<String> = std::iter::once(package.to_string())
            .chain(super::dbt_nodes::yml_folders(&file))
            .chain([l.name.clone()])
            .collect();
        let f = |k: &str| l.fields.get(k).cloned().unwrap_or(Value::Null);
        let text = |k: &str| f(k).as_str().map(str::to_string);
        let config = json!({"enabled": true, "group": null, "meta": {}, "lakeflow": l.fields});
        let mut v = json!({
            "name": l.name, "resource_type": l.kind, "package_name": package,
            "path": super::dbt_nodes::below_resource(&file), "original_file_path": file,
            "unique_id": id,
        });
        let more = match l.kind {
            "metric" => {
                let kind = text("type")
                    .filter(|t| {
                        ["simple", "ratio", "cumulative", "derived", "conversion"]
                            .contains(&t.as_str())
                    })
                    .unwrap_or_else(|| "simple".into());
                json!({
                    "fqn": fqn, "description": text("description").unwrap_or_default(),
                    "label": text("label").unwrap_or_else(|| l.name.clone()), "type": kind,
                    "type_params": {}, "filter": null, "metadata": null, "time_granularity": null,
                    "meta": {}, "tags": [], "config": config, "unrendered_config": {},
                    "sources": [], "depends_on": {"macros": [], "nodes": []}, "refs": [],
                    "metrics": [], "created_at": 0.0, "group": null,
                })
            }
            "semantic_model" => {
                let model = text("model").unwrap_or_default();
                let name = model
                    .split(['\'', '"'])
                    .nth(1)
                    .map(str::to_string)
                    .unwrap_or_default();
                json!({
                    "fqn": fqn, "model": model, "node_relation": null,
                    "description": f("description"), "label": f("label"), "defaults": null,
                    "entities": [], "measures": [], "dimensions": [], "metadata": null,
                    "depends_on": {"macros": [], "nodes": ids.model(&name).into_iter().collect::<Vec<_>>()},
                    "refs": [{"name": name, "package": null, "version": null}],
                    "created_at": 0.0, "config": config, "unrendered_config": {},
                    "primary_entity": null, "group": null,
                })
            }
            "saved_query" => json!({
                "fqn": fqn, "query_params": {"metrics": [], "group_by": [], "where": null},
                "exports": [], "description": f("description"), "label": f("label"),
                "metadata": null, "config": config, "unrendered_config": {}, "group": null,
                "depends_on": {"macros": [], "nodes": []}, "created_at": 0.0, "refs": [],
            }),
            _ => {
                let owner = f("owner");
                json!({
                    "owner": {
                        "name": owner.get("name").cloned().unwrap_or(Value::Null),
                        "email": owner.get("email").cloned().unwrap_or(Value::Null),
                    },
                    "description": f("description"),
                })
            }
        };
        if let (Some(m), Value::Object(more)) = (v.as_object_mut(), more) {
            m.extend(more);
        }
        let section = crate::project::resources::LISTED_SECTIONS
            .iter()
            .find(|(_, kind)| *kind == l.kind)
            .map_or("groups", |(section, _)| *section);
        out.entry(section).or_default().insert(id, v);
    }
    out
}

/// The project's analyses as dbt lists them (not compiled: lakeflow never runs them); what
/// they `ref()` is read from their text.
pub fn analyses(project: &Project, ids: &super::dbt_nodes::Ids) -> Map<String, Value> {
    project
        .analyses
        .iter()
        .map(|f| {
            let id = format!("analysis.{}.{}", project.name, f.name);
            let refs: Vec<String> = REF
                .captures_iter(&f.source)
                .filter_map(|c| c.get(1).map(|m| m.as_str().to_string()))
                .collect();
            let nodes: Vec<&str> = refs.iter().filter_map(|r| ids.model(r)).collect();
            let file = f
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut fqn = vec![project.name.clone(), "analysis".to_string()];
            fqn.extend(f.folders.iter().cloned());
            fqn.push(f.name.clone());
            let mut path = vec!["analysis".to_string()];
            path.extend(f.folders.iter().cloned());
            path.push(file);
            (
                id.clone(),
                json!({
                    "database": crate::render::catalog_name(&project.target.catalog),
                    "schema": project.target.schema, "name": f.name,
                    "resource_type": "analysis", "package_name": project.name,
                    "path": path.join("/"), "original_file_path": f.path, "unique_id": id,
                    "fqn": fqn, "alias": f.name,
                    "checksum": {"name": "sha256", "checksum": f.checksum},
                    "config": {"enabled": true, "materialized": "view", "tags": [], "meta": {}},
                    "tags": [], "description": "", "columns": {}, "meta": {},
                    "docs": {"show": true, "node_color": null}, "patch_path": null,
                    "build_path": null, "unrendered_config": {}, "relation_name": null,
                    "raw_code": crate::project::files::py_strip(&f.source), "language": "sql",
                    "refs": refs.iter().map(|r| json!({"name": r, "package": null, "version": null})).collect::<Vec<_>>(),
                    "sources": [], "metrics": [],
                    "depends_on": {"macros": [], "nodes": nodes},
                    "compiled_path": null, "contract": {"enforced": false, "alias_types": true, "checksum": null},
                }),
            )
        })
        .collect()
}

/// `parent_map` and `child_map` over the sections' members (nodes, sources, exposures,
/// unit tests): each member's `depends_on.nodes` sorted, and who lists it, sorted.
/// A node's `depends_on.nodes`, sorted.
pub fn depends_on_nodes(node: &Value) -> Vec<String> {
    let mut deps: Vec<String> = node
        .pointer("/depends_on/nodes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    deps.sort();
    deps
}

/// The manifest's `parent_map` and `child_map` of each node's sorted parents.
pub fn parent_child_maps(
    parents: Vec<(String, Vec<String>)>,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut children: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (id, deps) in &parents {
        for d in deps {
            children.entry(d.as_str()).or_default().push(id.clone());
        }
    }
    let child_map = parents
        .iter()
        .map(|(id, _)| {
            let mut c = children.get(id.as_str()).cloned().unwrap_or_default();
            c.sort();
            (id.clone(), json!(c))
        })
        .collect();
    let parent_map = parents.into_iter().map(|(id, d)| (id, json!(d))).collect();
    (parent_map, child_map)
}

/// The manifest's `metadata`, as dbt writes it (lakeflow's version and target go in `env`,
/// the free-form part).
pub fn metadata(project: &Project, invocation_id: &str, schema_version: &str) -> Value {
    let now = crate::model::clock::now_rfc3339();
    json!({
        "dbt_schema_version": schema_version,
        "dbt_version": crate::render::DBT_VERSION,
        "generated_at": now,
        "invocation_id": invocation_id,
        "invocation_started_at": now,
        "env": {
            "LAKEFLOW_VERSION": env!("CARGO_PKG_VERSION"),
            "LAKEFLOW_TARGET": project.target.name,
        },
        "project_name": project.name,
        "project_id": format!("{:x}", <md5::Md5 as md5::Digest>::digest(project.name.as_bytes())),
        "user_id": null,
        "send_anonymous_usage_stats": false,
        "adapter_type": "duckdb",
        "quoting": {"database": true, "schema": true, "identifier": true, "column": null},
        "run_started_at": now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_macro_and_test_blocks_with_their_text() {
        // As dbt keeps them (checked against dbt-core 1.11's manifest of dbt_utils, dbt_date,
        // dbt_expectations and audit_helper): `{%-` takes the whitespace before the block,
        // `-%}` the whitespace after it; a block in a comment is no block.
        let src = "\n{# {% macro hidden() %}{% endmacro %} #}\n{% macro a(x) %}{{ b(x) }}{% endmacro %}\n{%- macro b(y) -%}\n{{ y }}\n{%- endmacro -%}\n{% test positive(model, column_name) %}select 1{% endtest %}\n";
        let got = blocks(src);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].2, "{% macro a(x) %}{{ b(x) }}{% endmacro %}");
        assert_eq!(got[1].1, "b");
        assert_eq!(
            got[1].2,
            "\n{%- macro b(y) -%}\n{{ y }}\n{%- endmacro -%}\n"
        );
        assert_eq!((got[2].0.as_str(), got[2].1.as_str()), ("test", "positive"));
        assert_eq!(
            got[2].2,
            "{% test positive(model, column_name) %}select 1{% endtest %}"
        );
    }

    #[test]
    fn a_dispatching_macro_depends_on_what_it_dispatches_to() {
        let block = |package: &str, name: &str| MacroBlock {
            unique_id: format!("macro.{package}.{name}"),
            name: name.into(),
            package: package.into(),
            path: String::new(),
            sql: String::new(),
        };
        let blocks = [
            block("pkg", "x"),
            block("pkg", "default__x"),
            block("pkg", "duckdb__x"),
            block("pkg", "default__z"),
            block("proj", "y"),
        ];
        let index = MacroIndex::new(&blocks, "proj");
        // DuckDB's implementation where there is one, else the default.
        assert_eq!(
            index.called_by("{{ return(adapter.dispatch('x', 'pkg')(a)) }} {{ y() }}"),
            ["macro.pkg.duckdb__x", "macro.proj.y"]
        );
        assert_eq!(
            index.called_by("{{ adapter.dispatch('z', 'pkg')() }}"),
            ["macro.pkg.default__z"]
        );
    }
}
