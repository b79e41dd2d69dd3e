//! `lakeflow serve`: the latest published replica behind a small HTTP API, for readers that
//! want an endpoint rather than a .duckdb file.
//!
//! - The replica is the target's `publish.to`: a local file, or an S3 object pulled into
//!   `target/serve/` whenever its ETag changes.
//! - One replica serves at a time. A watcher opens each newly published replica beside the
//!   current one and switches to it only once it opened and answered, so a partial or corrupt
//!   replica is never served. A query holds the replica it started on until it ends: it sees
//!   one build's data, never a mix, and an old replica is closed when its last query ends.
//! - Every query runs in `lakeflow query`'s reader session (`crate::query`): the file opened
//!   read-only, file access cut down to the folders the views read, the configuration locked,
//!   and the SQL run as the single SELECT of DuckDB's `query()`.
//! - Every request but the page and the health checks needs a bearer token; tokens are named,
//!   and only the name appears in the audit line each query writes on stderr.
//!   A token may be limited to schemas (`access`).
//! - A result is encoded as DuckDB hands it over, straight into the response (`encode`), as
//!   JSON, CSV, Arrow IPC or Parquet; the HTTP itself is `crate::http`.

mod access;
mod encode;
mod queries;
mod replica;

pub use access::{Token, tokens};
use queries::query;
use replica::{Current, Replica, refresh, replica_source};

use crate::error::{Error, Result};
use crate::project::Project;
use duckdb::Connection;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the server runs (`lakeflow serve` options).
pub struct Options {
    pub bind: String,
    pub tokens: Vec<Token>,
    pub max_rows: usize,
    pub timeout: Duration,
    pub max_concurrent: usize,
    /// The memory limit and extra readable folders of every query session.
    pub session: crate::query::SessionLimits,
    /// A PEM certificate chain and private key to speak HTTPS with.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// The largest request body taken (a query and its options).
const MAX_BODY: usize = 1 << 20;

fn serve_error(message: impl Into<String>) -> Error {
    Error::new("LF606", message)
}

/// Runs the server until the process ends.
pub fn run(project: Project, options: Options) -> Result<()> {
    let source = replica_source(&project)?;
    let tls = match &options.tls {
        None => None,
        Some((cert, key)) => Some(crate::http::tls_config(cert, key).map_err(|e| {
            serve_error(e).hint(
                "give a PEM certificate chain (--tls-cert) and its PEM private key (--tls-key)",
            )
        })?),
    };
    let listener = std::net::TcpListener::bind(&options.bind).map_err(|e| {
        serve_error(format!("cannot listen on {}: {e}", options.bind))
            .hint("pick a free address with --bind, e.g. --bind 127.0.0.1:8081")
    })?;
    let current = Arc::new(Current {
        replica: Mutex::new(None),
        refused: Mutex::new(None),
    });
    let project = Arc::new(project);
    let source = Arc::new(source);
    refresh(&project, &source, &current, &options.session);
    {
        let (project, source, current) = (project.clone(), source.clone(), current.clone());
        let session = options.session.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(source.poll_every());
                refresh(&project, &source, &current, &session);
            }
        });
    }
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| options.bind.clone());
    crate::outln!(
        "lakeflow serve: listening on {}://{addr} (replica {})",
        if tls.is_some() { "https" } else { "http" },
        source.describe()
    );
    let options = Arc::new(options);
    let running = Arc::new(AtomicUsize::new(0));
    let limits = crate::http::Limits {
        timeout: options.timeout.max(Duration::from_secs(10)),
        ..Default::default()
    };
    crate::http::serve(
        listener,
        limits,
        tls,
        Arc::new(move |exchange| handle(exchange, &options, &current, &running)),
    );
    Ok(())
}

/// A response: status, content type and body (a query's result is streamed instead, see
/// [`Run::answer`]).
struct Reply {
    status: u16,
    kind: &'static str,
    body: String,
}

fn json_reply(status: u16, value: serde_json::Value) -> Reply {
    Reply {
        status,
        kind: "application/json",
        body: value.to_string(),
    }
}

fn error_reply(status: u16, message: &str) -> Reply {
    json_reply(status, serde_json::json!({"error": message}))
}

/// What a request came to: its status, and the rows a query sent (or why its body was
/// cut, or the response could not be sent).
type Outcome = (u16, std::result::Result<usize, String>);

/// Sends `reply`.
fn send(exchange: crate::http::Exchange, reply: Reply) -> Outcome {
    let sent = exchange.respond(
        reply.status,
        &[("Content-Type", reply.kind)],
        reply.body.into_bytes(),
    );
    (reply.status, sent.map(|()| 0).map_err(|e| e.to_string()))
}

fn handle(
    exchange: crate::http::Exchange,
    options: &Options,
    current: &Current,
    running: &Arc<AtomicUsize>,
) {
    let started = Instant::now();
    let url = exchange.path().to_string();
    let public = matches!(url.as_str(), "/" | "/v1/health" | "/v1/ready");
    let who = access::token_of(exchange.header("Authorization"), &options.tokens);
    let (status, rows) = if !public && who.is_none() {
        send(
            exchange,
            error_reply(
                401,
                "a valid bearer token is required (Authorization: Bearer <token>)",
            ),
        )
    } else if exchange.method == "POST" && url == "/v1/query" {
        query(exchange, options, current, who, running)
    } else {
        let reply = match (exchange.method.as_str(), url.as_str()) {
            ("GET" | "HEAD", "/") => Reply {
                status: 200,
                kind: "text/html; charset=utf-8",
                body: PAGE.to_string(),
            },
            ("GET" | "HEAD", "/v1/health") => json_reply(200, serde_json::json!({"status": "ok"})),
            ("GET" | "HEAD", "/v1/ready") => match current.get() {
                Some(r) => json_reply(
                    200,
                    serde_json::json!({"ready": true, "build_id": r.build_id}),
                ),
                None => json_reply(503, serde_json::json!({"ready": false})),
            },
            ("GET", "/v1/build") => with_replica(current, |c, r| build(c, r, who)),
            ("GET", "/v1/relations") => with_replica(current, |c, _| relations(c, who)),
            ("GET", "/v1/models") => with_replica(current, |c, _| models(c, who)),
            _ => error_reply(
                404,
                "no such endpoint; see GET /v1/health, /v1/ready, /v1/build, /v1/relations, /v1/models, POST /v1/query",
            ),
        };
        send(exchange, reply)
    };
    if url == "/v1/query" {
        // A body that could not be finished is logged as cut; the client saw the connection
        // close before the body's last chunk.
        let shown = match &rows {
            Ok(_) => status.to_string(),
            Err(_) => format!("{status}-cut"),
        };
        crate::errln!(
            "lakeflow serve: query token={} status={shown} rows={} ms={}",
            who.map_or("-", |t| t.name.as_str()),
            match rows {
                Ok(n) if status == 200 => n.to_string(),
                _ => "-".to_string(),
            },
            started.elapsed().as_millis()
        );
    }
}

/// A session on `replica` for one request.
fn session(replica: &Replica) -> std::result::Result<Connection, Reply> {
    match replica.conn.lock().map(|c| c.try_clone()) {
        Ok(Ok(c)) => Ok(c),
        _ => Err(error_reply(500, "cannot open a session on the replica")),
    }
}

/// Runs `f` on a session of the current replica (503 while none is loaded).
fn with_replica(current: &Current, f: impl Fn(&Connection, &Replica) -> Result<Reply>) -> Reply {
    let Some(replica) = current.get() else {
        return error_reply(503, "no replica is loaded yet");
    };
    let conn = match session(&replica) {
        Ok(c) => c,
        Err(reply) => return reply,
    };
    f(&conn, &replica).unwrap_or_else(|e| error_reply(500, &e.message))
}

/// The rows of a JSON array of objects whose `key` names a schema the token sees.
fn visible(json: String, key: &str, token: Option<&Token>) -> serde_json::Value {
    let mut rows = serde_json::from_str::<serde_json::Value>(&json).unwrap_or_default();
    if let (Some(items), Some(token)) = (rows.as_array_mut(), token) {
        items.retain(|r| {
            r.get(key)
                .and_then(|s| s.as_str())
                .is_some_and(|s| token.sees(s))
        });
    }
    rows
}

fn build(conn: &Connection, replica: &Replica, token: Option<&Token>) -> Result<Reply> {
    let meta = crate::query::run_query(conn, "from _lakeflow.replica", None)?;
    let models = crate::query::run_query(
        conn,
        "select unique_id, schema_name, name, materialized, format, version, rows, built_at from _lakeflow.models order by unique_id",
        None,
    )?;
    let parse = |s: String| serde_json::from_str::<serde_json::Value>(&s).unwrap_or_default();
    Ok(json_reply(
        200,
        serde_json::json!({
            "build_id": replica.build_id,
            "replica": parse(meta.json()).get(0).cloned().unwrap_or_default(),
            "models": visible(models.json(), "schema_name", token),
        }),
    ))
}

/// Whether the replica carries the project's docs (`_lakeflow.nodes`; older replicas do
/// not).
fn has_docs(conn: &Connection) -> Result<bool> {
    let found = crate::query::run_query(
        conn,
        "select 1 from duckdb_tables() where database_name = current_database() and schema_name = '_lakeflow' and table_name = 'nodes'",
        None,
    )?;
    Ok(!found.rows.is_empty())
}

/// Every column of every relation, with its description from the project.
fn relations(conn: &Connection, token: Option<&Token>) -> Result<Reply> {
    let (docs_join, description, relation_description) = if has_docs(conn)? {
        (
            "left join _lakeflow.nodes n on lower(n.schema_name) = lower(c.schema_name) and lower(n.name) = lower(c.table_name) and n.resource_type <> 'source'",
            "coalesce(c.comment, nullif(n.columns->>c.column_name, ''))",
            "nullif(n.description, '')",
        )
    } else {
        ("", "c.comment", "null")
    };
    let columns = crate::query::run_query(
        conn,
        &format!(
            "select c.schema_name as schema, c.table_name as relation, \
             coalesce(t.table_type, 'VIEW') as kind, c.column_name as column, c.data_type as type, \
             {description} as description, {relation_description} as relation_description \
             from duckdb_columns() c left join information_schema.tables t on t.table_schema = c.schema_name and t.table_name = c.table_name \
             {docs_join} \
             where c.database_name = current_database() and c.schema_name not in ('_lakeflow', 'information_schema', 'pg_catalog') \
             order by c.schema_name, c.table_name, c.column_index"
        ),
        None,
    )?;
    Ok(json_reply(200, visible(columns.json(), "schema", token)))
}

/// The project's models, seeds, snapshots and sources as the replica records them:
/// description, columns, parents (lineage), the build's rows and version, and the data
/// tests on each with their last result. A token limited to schemas sees only those, and
/// only parents it may see.
fn models(conn: &Connection, token: Option<&Token>) -> Result<Reply> {
    if !has_docs(conn)? {
        return Ok(json_reply(200, serde_json::json!({"models": []})));
    }
    let found = crate::query::run_query(
        conn,
        "select n.unique_id, n.resource_type, n.schema_name, n.name, n.description, n.depends_on, n.columns, \
            m.materialized, m.format, m.rows, m.built_at, m.version, \
            coalesce((select list({'name': t.name, 'test': t.test, 'column': t.column_name, 'status': t.status, \
                'failures': t.failures, 'message': t.message, 'executed_at': t.executed_at} order by t.name) \
              from _lakeflow.tests t where list_contains(t.attached_to, n.unique_id)), []) as tests \
         from _lakeflow.nodes n left join _lakeflow.models m using (unique_id) order by n.unique_id",
        None,
    )?;
    let mut rows = visible(found.json(), "schema_name", token);
    let shown: std::collections::HashSet<String> = rows
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("unique_id")?.as_str().map(str::to_string))
        .collect();
    for r in rows.as_array_mut().into_iter().flatten() {
        if let Some(parents) = r.get_mut("depends_on").and_then(|d| d.as_array_mut()) {
            parents.retain(|p| p.as_str().is_some_and(|p| shown.contains(p)));
        }
    }
    Ok(json_reply(200, serde_json::json!({ "models": rows })))
}

/// The page at `/`: relations and a SQL editor, no external resources.
const PAGE: &str = include_str!("page.html");
