//! `lakeflow docs generate` and `lakeflow docs serve`: the project's documentation site.
//!
//! `generate` compiles the project (target/manifest.json, as `lakeflow compile`), reads the
//! catalog's relations and columns into target/catalog.json (dbt's catalog v1 shape), and
//! writes target/index.html: one self-contained page, the manifest, catalog and last run
//! results embedded in it as JSON, which works offline from a file:// URL.
//! `serve` serves target/ read-only over HTTP on a local address.

use crate::catalog::Catalog;
use crate::cli::{Global, Selection};
use crate::error::{Error, Result};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// The page, with the quoted placeholder the project's data replaces.
const PAGE: &str = include_str!("../../assets/docs/index.html");
const PLACEHOLDER: &str = "\"__LAKEFLOW_DOCS_DATA__\"";

/// Every relation of the catalog database with its columns, in column order; lakeflow's own
/// state schema left out.
const RELATIONS_SQL: &str = "select c.database_name, c.schema_name, c.table_name, c.column_name, \
     c.column_index::bigint, c.data_type, c.comment, t.kind, t.comment \
     from duckdb_columns() c join ( \
       select database_name, schema_name, table_name, 'BASE TABLE' as kind, comment \
         from duckdb_tables() where not internal and not temporary \
       union all \
       select database_name, schema_name, view_name, 'VIEW', comment \
         from duckdb_views() where not internal and not temporary \
     ) t using (database_name, schema_name, table_name) \
     where c.database_name = current_database() and c.schema_name <> ? \
     order by c.schema_name, c.table_name, c.column_index";

/// One relation of the catalog, as catalog.json describes it.
struct Relation {
    database: String,
    schema: String,
    name: String,
    kind: String,
    comment: Option<String>,
    columns: Map<String, Value>,
}

pub fn generate(g: &Global, sel: &Selection) -> Result<bool> {
    let (planned, compiled) = super::compile::compile_planned(g, sel)?;
    let project = planned.project;
    let target = &project.target_path;
    let manifest_path = target.join("manifest.json");
    let mut manifest = crate::report::artifacts::read_json(&manifest_path);
    if !manifest.is_object() {
        let msg = format!("cannot read {} as JSON", manifest_path.display());
        return Err(Error::new("LF711", msg).hint("run `lakeflow compile` and look at what fails"));
    }

    let catalog = Catalog::open(&project.target, "lakeflow docs generate")?;
    let relations = relations(&catalog.conn)?;
    catalog.finish()?;

    let now = crate::model::clock::now_rfc3339();
    let nodes = matched(manifest.get("nodes"), &relations, "alias", is_relation);
    let sources = matched(manifest.get("sources"), &relations, "identifier", any);
    let count = nodes.len() + sources.len();
    let catalog = json!({
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/catalog/v1.json",
            "dbt_version": crate::render::DBT_VERSION,
            "generated_at": now,
            "invocation_id": uuid::Uuid::new_v4().to_string(),
            "invocation_started_at": now,
            "env": {},
        },
        "nodes": nodes,
        "sources": sources,
        "errors": null,
    });
    let catalog_path = target.join("catalog.json");
    crate::report::artifacts::write_json(&catalog_path, &catalog)?;

    // The page carries what it shows; macros it does not show are left out to keep it small.
    if let Value::Object(m) = &mut manifest {
        m.remove("macros");
    }
    let run_results = crate::report::artifacts::read_json(&target.join("run_results.json"));
    let data: Map<String, Value> = [
        ("manifest".to_string(), manifest),
        ("catalog".to_string(), catalog),
        ("run_results".to_string(), run_results),
        ("generated_at".to_string(), Value::String(now)),
    ]
    .into_iter()
    .collect();
    let page_path = target.join("index.html");
    crate::report::artifacts::write_whole(&page_path, &page(&Value::Object(data))?)?;
    crate::outln!(
        "Wrote the docs site {} and {} ({count} relations)",
        page_path.display(),
        catalog_path.display()
    );
    Ok(compiled)
}

/// The catalog's relations by lower-cased (schema, name).
fn relations(conn: &duckdb::Connection) -> Result<BTreeMap<(String, String), Relation>> {
    let failed = |e: duckdb::Error| Error::new("LF504", format!("cannot read the catalog: {e}"));
    let mut stmt = conn.prepare(RELATIONS_SQL).map_err(failed)?;
    let rows = stmt
        .query_map([crate::model::STATE_SCHEMA], |r| {
            let (name, data_type, index, comment): (String, String, i64, Option<String>) =
                (r.get(3)?, r.get(5)?, r.get(4)?, r.get(6)?);
            let column =
                json!({"type": data_type, "index": index, "name": name, "comment": comment});
            let relation = Relation {
                database: r.get(0)?,
                schema: r.get(1)?,
                name: r.get(2)?,
                kind: r.get(7)?,
                comment: r.get(8)?,
                columns: Map::new(),
            };
            Ok((relation, name, column))
        })
        .map_err(failed)?;
    let mut out: BTreeMap<(String, String), Relation> = BTreeMap::new();
    for row in rows {
        let (relation, name, column) = row.map_err(failed)?;
        let key = (relation.schema.to_lowercase(), relation.name.to_lowercase());
        out.entry(key)
            .or_insert(relation)
            .columns
            .insert(name, column);
    }
    Ok(out)
}

/// Models, seeds and snapshots that are relations (ephemeral models are not).
fn is_relation(id: &str, node: &Value) -> bool {
    let kind = node
        .get("resource_type")
        .and_then(Value::as_str)
        .unwrap_or_else(|| id.split('.').next().unwrap_or_default());
    let materialized = node
        .pointer("/config/materialized")
        .and_then(Value::as_str)
        .unwrap_or_default();
    matches!(kind, "model" | "seed" | "snapshot") && materialized != "ephemeral"
}

fn any(_: &str, _: &Value) -> bool {
    true
}

/// The catalog entries of a manifest section (`nodes` or `sources`): each entry `keep` keeps
/// whose relation (its `schema` and `name_key`, else `name`) is in the catalog.
fn matched(
    section: Option<&Value>,
    relations: &BTreeMap<(String, String), Relation>,
    name_key: &str,
    keep: fn(&str, &Value) -> bool,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (id, node) in section.and_then(Value::as_object).into_iter().flatten() {
        let field = |k: &str| node.get(k).and_then(Value::as_str);
        let (Some(schema), Some(name)) = (field("schema"), field(name_key).or(field("name")))
        else {
            continue;
        };
        if !keep(id, node) {
            continue;
        }
        if let Some(r) = relations.get(&(schema.to_lowercase(), name.to_lowercase())) {
            out.insert(id.clone(), entry(r, id));
        }
    }
    out
}

fn entry(r: &Relation, id: &str) -> Value {
    json!({
        "metadata": {
            "type": r.kind,
            "schema": r.schema,
            "name": r.name,
            "database": r.database,
            "comment": r.comment,
            "owner": null,
        },
        "columns": r.columns,
        "stats": {
            "has_stats": {
                "id": "has_stats",
                "label": "Has Stats?",
                "value": false,
                "include": false,
                "description": "Indicates whether there are statistics for this table",
            },
        },
        "unique_id": id,
    })
}

/// A JSON file under target/, if it is there and parses.
/// The page with `data` in its data tag: every `<` of the JSON written `\u003c`, so no text in
/// it (`</script>`, `<!--`) can end the tag; no secret value in it.
fn page(data: &Value) -> Result<String> {
    let json = serde_json::to_string(data)
        .map_err(|e| Error::new("LF701", format!("cannot serialize the docs data: {e}")))?;
    let json = crate::redact::redact(&json).replace('<', "\\u003c");
    Ok(PAGE.replacen(PLACEHOLDER, &json, 1))
}

/// Serves target/ (the docs page and the artifacts beside it) read-only over HTTP.
pub fn serve(g: &Global, host: &str, port: u16) -> Result<bool> {
    let project = super::load(g)?;
    let index = project.target_path.join("index.html");
    if !index.is_file() {
        return Err(Error::new(
            "LF711",
            format!("there is no docs page at {}", index.display()),
        )
        .hint("run `lakeflow docs generate` first"));
    }
    let root = project
        .target_path
        .canonicalize()
        .map_err(|e| Error::io("LF711", "read", &project.target_path, e))?;
    let listener = TcpListener::bind((host, port)).map_err(|e| {
        Error::new("LF711", format!("cannot listen on {host}:{port}: {e}"))
            .hint("pick another --port or --host, or stop what listens there")
    })?;
    let port = listener.local_addr().map_or(port, |a| a.port());
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    crate::outln!("serving docs at http://{host}:{port}/ (Ctrl-C stops)");
    let limits = crate::http::Limits {
        timeout: Duration::from_secs(10),
        ..Default::default()
    };
    crate::http::serve(
        listener,
        limits,
        None,
        std::sync::Arc::new(move |exchange: crate::http::Exchange| answer(exchange, &root)),
    );
    Ok(true)
}

/// Serves GET and HEAD of the files under `root`.
fn answer(exchange: crate::http::Exchange, root: &Path) {
    if !matches!(exchange.method.as_str(), "GET" | "HEAD") {
        let _ = exchange.respond(
            405,
            &[
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Allow", "GET, HEAD"),
            ],
            b"405 Method Not Allowed\n".to_vec(),
        );
        return;
    }
    match file_reply(exchange.path(), root) {
        Ok((kind, body)) => {
            let _ = exchange.respond(
                200,
                &[("Content-Type", kind), ("Cache-Control", "no-store")],
                body,
            );
        }
        Err(status) => exchange.fail(status, false),
    }
}

/// The content type and bytes of the file `path` (a request path) names under `root`: only
/// a regular file inside it; else the status to answer.
fn file_reply(path: &str, root: &Path) -> std::result::Result<(&'static str, Vec<u8>), u16> {
    let Some(rel) = path.strip_prefix('/').and_then(percent_decode) else {
        return Err(400);
    };
    let rel: &str = if rel.is_empty() { "index.html" } else { &rel };
    let plain = Path::new(rel)
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if !plain || rel.contains(['\\', '\0']) {
        return Err(404);
    }
    // Resolved, so a symbolic link cannot lead out of the folder.
    let file: Option<PathBuf> = root
        .join(rel)
        .canonicalize()
        .ok()
        .filter(|f| f.starts_with(root) && f.is_file());
    match file.map(|f| (std::fs::read(&f), f)) {
        Some((Ok(body), f)) => Ok((content_type(&f), body)),
        _ => Err(404),
    }
}

/// `%XX` decoded; None when the result is not UTF-8 or an escape is malformed.
fn percent_decode(s: &str) -> Option<String> {
    let malformed = s.match_indices('%').any(|(i, _)| {
        !s.get(i + 1..i + 3)
            .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if malformed {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "json" => "application/json",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_one_placeholder() {
        assert_eq!(PAGE.matches(PLACEHOLDER).count(), 1);
    }

    #[test]
    fn no_markup_reaches_the_data_tag() {
        let page = page(&json!({"d": "</script><!-- <script>"})).expect("page");
        assert!(!page.contains(PLACEHOLDER));
        assert!(page.contains(r#"{"d":"\u003c/script>\u003c!-- \u003cscript>"}"#));
    }

    #[test]
    fn request_paths_stay_inside_the_folder() {
        let dir = std::env::temp_dir();
        for bad in [
            "/../x",
            "/%2e%2e/x",
            "/a/../../x",
            "//etc/passwd",
            "/%2fetc/passwd",
        ] {
            assert_eq!(file_reply(bad, &dir).err(), Some(404), "{bad}");
        }
        assert_eq!(file_reply("/%zz", &dir).err(), Some(400));
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("a%2"), None);
    }
}
