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

pub use access::{Token, tokens};

use crate::error::{Error, Result};
use crate::project::Project;
use duckdb::Connection;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// One opened replica: the session every query on it starts from.
struct Replica {
    conn: Mutex<Connection>,
    build_id: String,
    /// The replica as it was when opened: the file's device, inode and time, or the S3
    /// object's ETag.
    identity: String,
    /// The local copy of an S3 replica, removed once this replica is dropped (DuckDB keeps
    /// its own handle while a query still reads it).
    copy: Option<PathBuf>,
}

/// The replica new queries get.
struct Current {
    replica: Mutex<Option<Arc<Replica>>>,
    /// A replica that could not be opened, not tried again until it changes.
    refused: Mutex<Option<String>>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(copy) = &self.copy {
            let _ = std::fs::remove_file(copy);
        }
    }
}

/// Where replicas come from: a local file the build publishes to, or an S3 object pulled
/// into a local folder on each change.
enum Source {
    Local(PathBuf),
    Remote {
        url: String,
        storage: crate::storage::Storage,
        cache: PathBuf,
    },
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Local(p) => p.display().to_string(),
            Source::Remote { url, .. } => url.clone(),
        }
    }

    fn poll_every(&self) -> Duration {
        match self {
            Source::Local(_) => Duration::from_millis(500),
            Source::Remote { .. } => Duration::from_secs(5),
        }
    }
}

impl Current {
    fn get(&self) -> Option<Arc<Replica>> {
        self.replica.lock().ok().and_then(|r| r.clone())
    }
}

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

/// Where the target publishes its replica.
fn replica_source(project: &Project) -> Result<Source> {
    let target = &project.target;
    let publish = target.publish.as_ref().ok_or_else(|| {
        serve_error(format!("target '{}' publishes no replica", target.name))
            .hint("add `publish: {to: ...}` to the target in profiles.yml and run `lakeflow build` (or `lakeflow catalog publish`)")
    })?;
    if !crate::project::paths::is_remote(&publish.to) {
        return Ok(Source::Local(PathBuf::from(&publish.to)));
    }
    let cache = project.target_path.join("serve");
    std::fs::create_dir_all(&cache).map_err(|e| Error::io("LF606", "create", &cache, e))?;
    Ok(Source::Remote {
        url: publish.to.clone(),
        storage: crate::storage::Storage::for_target(target)?,
        cache,
    })
}

/// What the replica is now: the local file's device, inode and time, or the S3 object's
/// ETag; None when there is none (yet), or S3 cannot be reached (the current replica stays).
fn identity(source: &Source) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    match source {
        Source::Local(file) => {
            let m = std::fs::metadata(file).ok()?;
            Some(format!("{}:{}:{}", m.dev(), m.ino(), m.mtime()))
        }
        Source::Remote { url, storage, .. } => storage.remote.as_ref()?.version(url).ok()?,
    }
}

/// Opens the replica when it is not the one served, and switches to it once it answers; a
/// replica that cannot be opened leaves the current one in place.
fn refresh(
    project: &Project,
    source: &Source,
    current: &Current,
    session: &crate::query::SessionLimits,
) {
    let Some(id) = identity(source) else {
        return;
    };
    if current.get().is_some_and(|r| r.identity == id)
        || current
            .refused
            .lock()
            .is_ok_and(|r| r.as_ref() == Some(&id))
    {
        return;
    }
    let (file, copy) = match source {
        Source::Local(file) => (file.clone(), None),
        Source::Remote {
            url,
            storage,
            cache,
        } => {
            let copy = cache.join(format!("replica-{}.duckdb", uuid::Uuid::new_v4().simple()));
            if let Err(e) = crate::publish::pull(storage, url, &copy) {
                crate::warnln!("lakeflow serve: cannot pull {url}: {}", e.message);
                return;
            }
            (copy.clone(), Some(copy))
        }
    };
    let opened = crate::query::open(project, &file, session).and_then(|conn| {
        let build_id: String = conn
            .query_row("select build_id from _lakeflow.replica", [], |r| r.get(0))
            .map_err(|e| {
                serve_error(format!(
                    "{} is not a lakeflow replica: {e}",
                    source.describe()
                ))
            })?;
        Ok(Replica {
            conn: Mutex::new(conn),
            build_id,
            identity: id.clone(),
            copy: copy.clone(),
        })
    });
    match opened {
        Ok(replica) => {
            // The same build again (a replica pulled anew) is switched to without a word.
            if current.get().is_none_or(|r| r.build_id != replica.build_id) {
                crate::errln!("lakeflow serve: serving build {}", replica.build_id);
            }
            if let Ok(mut r) = current.replica.lock() {
                *r = Some(Arc::new(replica));
            }
        }
        Err(e) => {
            crate::warnln!(
                "lakeflow serve: the replica {} was not switched to: {}",
                source.describe(),
                e.message
            );
            if let Some(copy) = copy {
                let _ = std::fs::remove_file(copy);
            }
            if let Ok(mut r) = current.refused.lock() {
                *r = Some(id);
            }
        }
    }
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

/// `POST /v1/query` with `{"sql": "...", "params": [...], "format": "json" | "csv" |
/// "arrow" | "parquet"}`.
fn query(
    mut exchange: crate::http::Exchange,
    options: &Options,
    current: &Current,
    token: Option<&Token>,
    running: &Arc<AtomicUsize>,
) -> Outcome {
    let body = match exchange.body(MAX_BODY) {
        Ok(b) => b,
        Err(413) => {
            return send(
                exchange,
                error_reply(413, "the request body is larger than 1 MiB"),
            );
        }
        Err(411) => {
            return send(
                exchange,
                error_reply(411, "send the body with a Content-Length"),
            );
        }
        Err(status) => {
            return send(
                exchange,
                error_reply(status, "the request body could not be read"),
            );
        }
    };
    let Some(slot) = Slot::take(running, options.max_concurrent) else {
        return send(
            exchange,
            error_reply(503, "too many queries are running; retry shortly"),
        );
    };
    match prepare(&body, options, current, token) {
        Ok((run, conn, replica)) => run.answer(&conn, &replica.build_id, exchange, slot),
        Err(reply) => send(exchange, reply),
    }
}

/// The query a request body asks for, on a session of the current replica, checked
/// against the token's schemas; or the error reply.
fn prepare(
    body: &[u8],
    options: &Options,
    current: &Current,
    token: Option<&Token>,
) -> std::result::Result<(Run, Connection, Arc<Replica>), Reply> {
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Err(error_reply(
            400,
            "the body is not JSON; send {\"sql\": \"select ...\"}",
        ));
    };
    let Some(sql) = request.get("sql").and_then(|s| s.as_str()) else {
        return Err(error_reply(400, "the body has no \"sql\" text"));
    };
    let params: Vec<duckdb::types::Value> = match request.get("params") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(match item {
                    serde_json::Value::Null => duckdb::types::Value::Null,
                    serde_json::Value::Bool(b) => duckdb::types::Value::Boolean(*b),
                    serde_json::Value::Number(n) => match n.as_i64() {
                        Some(i) => duckdb::types::Value::BigInt(i),
                        None => duckdb::types::Value::Double(n.as_f64().unwrap_or(f64::NAN)),
                    },
                    serde_json::Value::String(s) => duckdb::types::Value::Text(s.clone()),
                    _ => {
                        return Err(error_reply(
                            400,
                            "params are numbers, strings, booleans or null",
                        ));
                    }
                });
            }
            out
        }
        Some(_) => return Err(error_reply(400, "params is a list of values")),
    };
    let format = match request.get("format") {
        None | Some(serde_json::Value::Null) => Some(encode::Format::Json),
        Some(f) => f.as_str().and_then(encode::Format::parse),
    };
    let Some(format) = format else {
        return Err(error_reply(400, "format is json, csv, arrow or parquet"));
    };
    let Some(replica) = current.get() else {
        return Err(error_reply(503, "no replica is loaded yet"));
    };
    let conn = session(&replica)?;
    if let Some(token) = token
        && let Err((status, why)) = token.check(&conn, sql)
    {
        return Err(error_reply(status, &why));
    }
    let run = Run {
        sql: sql.to_string(),
        params,
        format,
        max_rows: options.max_rows,
        timeout: options.timeout,
    };
    Ok((run, conn, replica))
}

/// One of the `--max-concurrent` places for a query, held until its result is released
/// (the body written, or the query failed).
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(running: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        if running.fetch_add(1, Ordering::SeqCst) >= max {
            running.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Slot(running.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A session on `replica` for one request.
fn session(replica: &Replica) -> std::result::Result<Connection, Reply> {
    match replica.conn.lock().map(|c| c.try_clone()) {
        Ok(Ok(c)) => Ok(c),
        _ => Err(error_reply(500, "cannot open a session on the replica")),
    }
}

/// One query, as the request asked for it.
struct Run {
    sql: String,
    params: Vec<duckdb::types::Value>,
    format: encode::Format,
    max_rows: usize,
    timeout: Duration,
}

impl Run {
    /// Runs the query and answers it. The headers go out once DuckDB holds the whole
    /// result, so a failing query gets an error reply; the body is written as it is
    /// encoded. Returns the status and the rows sent, or why the body was cut.
    fn answer(
        self,
        conn: &Connection,
        build_id: &str,
        exchange: crate::http::Exchange,
        slot: Slot,
    ) -> Outcome {
        // A query that outlives the timeout is interrupted.
        let interrupt = conn.interrupt_handle();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let timeout = self.timeout;
        let watchdog = std::thread::spawn(move || {
            if wait.recv_timeout(timeout) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                interrupt.interrupt();
                return true;
            }
            false
        });
        let format = self.format;
        let encoder = std::cell::RefCell::new(None::<encode::Encoder>);
        let rows = std::cell::Cell::new(0usize);
        let mut exchange = Some(exchange);
        // Once DuckDB holds the whole result, the headers are sent with its row count. The
        // time limit is for running the query, not for a client reading it slowly (the
        // connection's own timeout covers that).
        let mut open = |count: usize, truncated: bool| {
            let _ = done.send(());
            let exchange = exchange
                .take()
                .ok_or_else(|| serve_error("the result started twice"))?;
            Ok(exchange.stream(
                200,
                &[
                    ("Content-Type", format.content_type()),
                    ("X-Lakeflow-Build", build_id),
                    ("X-Lakeflow-Rows", &count.to_string()),
                    ("X-Lakeflow-Truncated", &truncated.to_string()),
                ],
            ))
        };
        let limit = Some(self.max_rows);
        let result = match format {
            encode::Format::Json | encode::Format::Csv => crate::query::for_each_row(
                conn,
                &self.sql,
                limit,
                &self.params,
                |names, count, truncated| {
                    let out = open(count, truncated)?;
                    let made = encode::Encoder::rows(format, out, build_id, names, truncated)?;
                    *encoder.borrow_mut() = Some(made);
                    Ok(())
                },
                |cells| {
                    rows.set(rows.get() + 1);
                    match encoder.borrow_mut().as_mut() {
                        Some(e) => e.row(&cells),
                        None => Ok(()),
                    }
                },
            ),
            encode::Format::Arrow | encode::Format::Parquet => crate::query::for_each_batch(
                conn,
                &self.sql,
                limit,
                &self.params,
                |schema, count, truncated| {
                    let out = open(count, truncated)?;
                    let made = encode::Encoder::batches(format, out, &schema, build_id)?;
                    *encoder.borrow_mut() = Some(made);
                    Ok(())
                },
                |batch| {
                    rows.set(rows.get() + batch.num_rows());
                    match encoder.borrow_mut().as_mut() {
                        Some(e) => e.batch(batch),
                        None => Ok(()),
                    }
                },
            ),
        };
        // DuckDB's result is gone: the slot is free before the client can see the end of
        // this response (or an error) and send its next query.
        drop(slot);
        let _ = done.send(());
        let timed_out = watchdog.join().unwrap_or(false);
        let encoder = encoder.into_inner();
        match (result, exchange) {
            (Ok(()), None) => match encoder.map(encode::Encoder::finish) {
                Some(Ok(())) => (200, Ok(rows.get())),
                Some(Err(e)) => (200, Err(e.message.clone())),
                None => (200, Err("no result".into())),
            },
            (Ok(()), Some(exchange)) => {
                send(exchange, error_reply(500, "the query gave no result"))
            }
            (Err(e), Some(exchange)) => {
                let reply = if timed_out {
                    error_reply(
                        408,
                        &format!(
                            "the query ran longer than {} s and was stopped",
                            self.timeout.as_secs()
                        ),
                    )
                } else if e.code == "LF606" {
                    error_reply(500, &e.message)
                } else {
                    // Not one SELECT (LF604) or a failing one (LF602): the query's fault.
                    error_reply(400, &e.message)
                };
                send(exchange, reply)
            }
            // The headers went out: dropping the encoder leaves the body without its end.
            (Err(e), None) => {
                drop(encoder);
                (200, Err(e.message.clone()))
            }
        }
    }
}

/// The page at `/`: relations and a SQL editor, no external resources.
const PAGE: &str = include_str!("page.html");
