//! lakeflow's state tables in the catalog (schema `_lakeflow`): what each model's last build
//! left (location, pinned version, rows), the replicas that were published and the file
//! versions they pin. Every statement that reads or writes them is here.

use crate::error::{Error, Result};
use crate::model::relation::{Relation, quote_ident, quote_literal};
use duckdb::Connection;
use std::collections::HashSet;

pub use crate::model::STATE_SCHEMA as SCHEMA;

const DDL: &str = "
create schema if not exists _lakeflow;
create table if not exists _lakeflow.models (
    unique_id varchar primary key, schema_name varchar, name varchar, materialized varchar,
    format varchar, partitioned boolean, location varchar, pinned_path varchar, rows bigint,
    build_id varchar, built_at varchar);
create table if not exists _lakeflow.replicas (
    build_id varchar, destination varchar, published_at varchar);
create table if not exists _lakeflow.replica_files (build_id varchar, destination varchar, path varchar);
";

/// A failed statement on the catalog's state (or a replica of it), as error LF530.
pub fn db_err(what: &str) -> impl Fn(duckdb::Error) -> Error + '_ {
    move |e| Error::new("LF530", format!("{what}: {e}"))
}

/// Creates the state tables if missing; called once per opened catalog, before the other
/// functions here.
pub fn ensure(conn: &Connection) -> Result<()> {
    conn.execute_batch(DDL)
        .map_err(db_err("cannot create the _lakeflow schema in the catalog"))
}

/// What one model's build left, as recorded.
#[derive(Debug, Clone)]
pub struct ModelRecord {
    pub unique_id: String,
    pub relation: Relation,
    pub materialized: &'static str,
    /// The file format of an external model; none for catalog tables and views.
    pub format: Option<&'static str>,
    /// Read as a folder of (Hive-partitioned) files.
    pub partitioned: bool,
    pub location: Option<String>,
    /// The version of the files its view reads (what a replica pins).
    pub pinned: Option<String>,
    pub rows: Option<u64>,
}

/// Records what the models that succeeded in a run left behind, in one transaction.
pub fn record(conn: &Connection, records: &[ModelRecord], build_id: &str) -> Result<()> {
    let now = crate::model::clock::now_rfc3339();
    let opt = |v: Option<&str>| v.map(quote_literal).unwrap_or_else(|| "null".into());
    if records.is_empty() {
        return Ok(());
    }
    // One delete and one insert for all the models: a statement each per model costs more
    // than recording them.
    // A model recorded twice keeps its last record.
    let last: std::collections::BTreeMap<&str, &ModelRecord> =
        records.iter().map(|r| (r.unique_id.as_str(), r)).collect();
    let ids: Vec<String> = last.keys().map(|id| quote_literal(id)).collect();
    let rows: Vec<String> = last
        .values()
        .map(|r| {
            format!(
                "({id}, {s}, {name}, {m}, {f}, {p}, {loc}, {pin}, {rows}, {b}, {t})",
                id = quote_literal(&r.unique_id),
                s = quote_literal(&r.relation.schema),
                name = quote_literal(&r.relation.identifier),
                m = quote_literal(r.materialized),
                f = opt(r.format),
                p = r.partitioned,
                loc = opt(r.location.as_deref()),
                pin = opt(r.pinned.as_deref()),
                rows = r
                    .rows
                    .map(|x| x.to_string())
                    .unwrap_or_else(|| "null".into()),
                b = quote_literal(build_id),
                t = quote_literal(&now),
            )
        })
        .collect();
    let sql = format!(
        "begin;\ndelete from _lakeflow.models where unique_id in ({});\ninsert into _lakeflow.models values {};\ncommit;",
        ids.join(", "),
        rows.join(",\n")
    );
    conn.execute_batch(&sql)
        .map_err(db_err("cannot record the run in the catalog"))
}

/// The version of a model's files recorded with its catalog view (switched together).
pub fn recorded_pin(conn: &Connection, unique_id: &str) -> Option<String> {
    conn.query_row(
        "select pinned_path from _lakeflow.models where unique_id = ?",
        [unique_id],
        |r| r.get(0),
    )
    .ok()
    .flatten()
}

/// The SQL that records `pinned` as the version a model's view reads; run in the transaction
/// that switches the view, so the two always agree.
pub fn record_pin(conn: &Connection, unique_id: &str, pinned: &str) -> duckdb::Result<()> {
    conn.execute(
        "update _lakeflow.models set pinned_path = ? where unique_id = ?",
        [pinned, unique_id],
    )
    .map(|_| ())
}

/// Points a model's catalog view at `reader` and records `pinned` with it, in one transaction.
pub fn repoint(
    conn: &Connection,
    relation: &Relation,
    unique_id: &str,
    reader: &str,
    pinned: &str,
) -> Result<()> {
    conn.execute_batch(&format!(
        "begin; create schema if not exists {schema}; create or replace view {relation} as select * from ({reader});
         update _lakeflow.models set pinned_path = {pin} where unique_id = {id}; commit;",
        schema = quote_ident(&relation.schema),
        pin = quote_literal(pinned),
        id = quote_literal(unique_id),
    ))
    .map_err(db_err("cannot update the catalog view"))
}

/// File versions pinned by kept replicas: garbage collection must leave them alone.
pub fn protected_paths(conn: &Connection) -> Result<HashSet<String>> {
    strings(
        conn,
        "select distinct path from _lakeflow.replica_files",
        "cannot read replica files",
    )
    .map(|v| v.into_iter().collect())
}

/// Delta versions that must stay readable, as pins (`location@v<version>`): what the
/// catalog's views read and what kept replicas pinned.
pub fn delta_pin_paths(conn: &Connection) -> Result<Vec<String>> {
    strings(
        conn,
        "select pinned_path from _lakeflow.models where format = 'delta' and pinned_path is not null
         union select path from _lakeflow.replica_files",
        "cannot read pinned Delta versions",
    )
}

/// Every location and pinned version the catalog records, for `lakeflow query` to allow
/// reading. An older catalog (or a replica) may lack one of the columns.
pub fn recorded_paths(conn: &Connection) -> Result<Vec<String>> {
    let columns: Vec<String> = conn
        .prepare(
            "select column_name from duckdb_columns() where schema_name = '_lakeflow' and table_name = 'models' and column_name in ('location', 'pinned_path')",
        )
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<duckdb::Result<Vec<_>>>()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for column in columns {
        let sql = format!(
            "select distinct {}::varchar from _lakeflow.models where {0} is not null",
            quote_ident(&column)
        );
        out.extend(strings(conn, &sql, "cannot read _lakeflow.models")?);
    }
    Ok(out)
}

/// A model whose view reads pinned files, as the replica recreates it.
pub struct PinnedModel {
    pub schema: String,
    pub name: String,
    pub format: Option<String>,
    pub partitioned: bool,
    pub pinned: Option<String>,
}

pub fn pinned_models(conn: &Connection) -> Result<Vec<PinnedModel>> {
    let err = db_err("cannot read _lakeflow.models");
    let mut stmt = conn
        .prepare("select schema_name, name, format, partitioned, pinned_path from _lakeflow.models order by unique_id")
        .map_err(&err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(PinnedModel {
                schema: r.get(0)?,
                name: r.get(1)?,
                format: r.get(2)?,
                partitioned: r.get::<_, Option<bool>>(3)?.unwrap_or(false),
                pinned: r.get(4)?,
            })
        })
        .map_err(&err)?;
    Ok(rows.filter_map(|r| r.ok()).collect())
}

/// The state a replica carries (attached as `replica`): which build it is, and each model's
/// location and version as this catalog records them.
pub fn write_replica_state(
    conn: &Connection,
    replica: &str,
    build_id: &str,
    target: &str,
    project: &str,
) -> Result<()> {
    conn.execute_batch(&format!(
        "create schema if not exists {r}._lakeflow;
         create table {r}._lakeflow.replica as select {b} as build_id, {t} as published_at, {tg} as target, {p} as project;
         create table {r}._lakeflow.models as
            select unique_id, schema_name, name, materialized, format, coalesce(pinned_path, location) as location,
                   build_id as version, rows, built_at from _lakeflow.models;",
        r = quote_ident(replica),
        b = quote_literal(build_id),
        t = quote_literal(&crate::model::clock::now_rfc3339()),
        tg = quote_literal(target),
        p = quote_literal(project),
    ))
    .map_err(db_err("cannot write the replica"))
}

/// What a replica tells its readers of the project: each model's, seed's, snapshot's and
/// source's description, columns and parents, and each data test with its last result.
/// Built from the manifest and run results lakeflow writes, so a server on another machine
/// needs only the replica.
#[derive(Default)]
pub struct ReplicaDocs {
    nodes: Vec<serde_json::Value>,
    tests: Vec<serde_json::Value>,
}

impl ReplicaDocs {
    /// From a manifest (`target/manifest.json`) and the entries of the run results that
    /// ran the tests (none: no results).
    pub fn new(manifest: &serde_json::Value, results: &[serde_json::Value]) -> ReplicaDocs {
        use serde_json::{Value, json};
        let text = |v: &Value, k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
        let parents = |v: &Value| v.pointer("/depends_on/nodes").cloned().unwrap_or(json!([]));
        let columns = |v: &Value| {
            let mut out = serde_json::Map::new();
            if let Some(cols) = v.get("columns").and_then(|c| c.as_object()) {
                for (name, c) in cols {
                    out.insert(name.clone(), json!(text(c, "description")));
                }
            }
            Value::Object(out)
        };
        let outcome: std::collections::HashMap<&str, &Value> = results
            .iter()
            .filter_map(|r| Some((r.get("unique_id")?.as_str()?, r)))
            .collect();
        let mut docs = ReplicaDocs::default();
        let listed = manifest
            .get("nodes")
            .and_then(|n| n.as_object())
            .into_iter()
            .flatten();
        let sources = manifest
            .get("sources")
            .and_then(|n| n.as_object())
            .into_iter()
            .flatten();
        for (id, n) in listed.chain(sources) {
            let kind = text(n, "resource_type");
            match kind.as_str() {
                "model" | "seed" | "snapshot" | "source" => {
                    let name = match n
                        .get("alias")
                        .or(n.get("identifier"))
                        .and_then(|a| a.as_str())
                    {
                        Some(a) if !a.is_empty() => a.to_string(),
                        _ => text(n, "name"),
                    };
                    docs.nodes.push(json!([
                        id,
                        kind,
                        text(n, "schema"),
                        name,
                        text(n, "description"),
                        parents(n),
                        columns(n)
                    ]));
                }
                "test" => {
                    let r = outcome.get(id.as_str());
                    let attached = match n.get("attached_node").and_then(|a| a.as_str()) {
                        Some(a) => json!([a]),
                        None => parents(n),
                    };
                    docs.tests.push(json!([
                        id,
                        text(n, "name"),
                        n.pointer("/test_metadata/name")
                            .and_then(|x| x.as_str())
                            .unwrap_or("singular"),
                        attached,
                        n.get("column_name").cloned().unwrap_or(Value::Null),
                        r.map(|r| text(r, "status")),
                        r.and_then(|r| r.get("failures").cloned()),
                        r.and_then(|r| r.get("message").cloned()),
                        r.and_then(|r| r.pointer("/timing/0/completed_at").cloned()),
                    ]));
                }
                _ => {}
            }
        }
        docs
    }
}

/// Writes `docs` into the replica attached as `replica`: `_lakeflow.nodes` and
/// `_lakeflow.tests`.
pub fn write_replica_docs(conn: &Connection, replica: &str, docs: &ReplicaDocs) -> Result<()> {
    let r = quote_ident(replica);
    let err = db_err("cannot write the project's docs into the replica");
    conn.execute_batch(&format!(
        "create table {r}._lakeflow.nodes (unique_id varchar, resource_type varchar, schema_name varchar,
             name varchar, description varchar, depends_on varchar[], columns json);
         create table {r}._lakeflow.tests (unique_id varchar, name varchar, test varchar,
             attached_to varchar[], column_name varchar, status varchar, failures bigint,
             message varchar, executed_at varchar);"
    ))
    .map_err(&err)?;
    // The rows go in as one JSON document, read back by DuckDB's JSON functions.
    for (table, rows, columns) in [
        (
            "nodes",
            &docs.nodes,
            "r->>0, r->>1, r->>2, r->>3, r->>4, cast(r->5 as varchar[]), r->6",
        ),
        (
            "tests",
            &docs.tests,
            "r->>0, r->>1, r->>2, cast(r->3 as varchar[]), r->>4, r->>5, cast(r->>6 as bigint), r->>7, r->>8",
        ),
    ] {
        if rows.is_empty() {
            continue;
        }
        conn.execute(
            &format!(
                "insert into {r}._lakeflow.{table} select {columns} from (select unnest(cast(?::json as json[])) as r)"
            ),
            [serde_json::Value::from(rows.clone()).to_string()],
        )
        .map_err(&err)?;
    }
    Ok(())
}

/// Records a published replica and the file versions it pins, in one transaction.
pub fn add_replica(
    conn: &Connection,
    destination: &str,
    build_id: &str,
    pinned: &[String],
) -> Result<()> {
    let d = quote_literal(destination);
    let b = quote_literal(build_id);
    let mut sql = format!(
        "begin;\ninsert into _lakeflow.replicas values ({b}, {d}, {});\n",
        quote_literal(&crate::model::clock::now_rfc3339())
    );
    for p in pinned {
        sql.push_str(&format!(
            "insert into _lakeflow.replica_files values ({b}, {d}, {});\n",
            quote_literal(p)
        ));
    }
    sql.push_str("commit;");
    conn.execute_batch(&sql)
        .map_err(db_err("cannot record the replica in the catalog"))
}

/// The replicas published to `destination`, newest first.
pub fn replicas(conn: &Connection, destination: &str) -> Result<Vec<String>> {
    strings(
        conn,
        &format!(
            "select build_id from _lakeflow.replicas where destination = {} order by build_id desc",
            quote_literal(destination)
        ),
        "cannot record the replica in the catalog",
    )
}

/// Forgets a replica and what it pinned.
pub fn forget_replica(conn: &Connection, destination: &str, build_id: &str) -> Result<()> {
    conn.execute_batch(&format!(
        "delete from _lakeflow.replicas where build_id = {o} and destination = {d}; delete from _lakeflow.replica_files where build_id = {o} and destination = {d};",
        o = quote_literal(build_id),
        d = quote_literal(destination),
    ))
    .map_err(db_err("cannot record the replica in the catalog"))
}

fn strings(conn: &Connection, sql: &str, what: &str) -> Result<Vec<String>> {
    let err = db_err(what);
    let mut stmt = conn.prepare(sql).map_err(&err)?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(&err)?;
    Ok(rows.filter_map(|r| r.ok()).collect())
}
