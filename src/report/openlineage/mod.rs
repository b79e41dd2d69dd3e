//! OpenLineage run events: one run for the command (job `<project>.<command>`), and one for
//! each model, seed and snapshot it builds (a child of it), with the relations each read and
//! wrote. Configured as OpenLineage's clients are: `OPENLINEAGE_DISABLED`; an
//! `openlineage.yml` (`OPENLINEAGE_CONFIG`, the working directory, the project folder,
//! `~/.openlineage/`) whose `transport` is `http`, `file` or `console`; else `OPENLINEAGE_URL`
//! (with `OPENLINEAGE_ENDPOINT`, `OPENLINEAGE_API_KEY`). Without any, nothing is sent.
//!
//! Events go out in order from one background thread; a failed send is one warning, never a
//! failed run.

use crate::error::Result;
use crate::execute::{Observer, RunResult, Status};
use crate::model::relation::Relation;
use crate::project::{FileKind, Project};
use crate::render::Node;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use transport::{sink, spawn};

mod transport;

const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const PRODUCER: &str = concat!("urn:lakeflow:", env!("CARGO_PKG_VERSION"));
/// The job namespace when `OPENLINEAGE_NAMESPACE` is not set.
const DEFAULT_NAMESPACE: &str = "default";
const CODE: &str = "LF134";
/// Events waiting to be sent; past this they are dropped (and counted in one warning).
const QUEUE: usize = 1024;
/// How long the end of a run waits for the events still queued.
const FLUSH: Duration = Duration::from_secs(30);

/// A dataset as OpenLineage names it: a catalog relation (`duckdb://<catalog file>`,
/// `<database>.<schema>.<table>`), or files (`file` or `s3://<bucket>`, then their path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pub namespace: String,
    pub name: String,
    /// Columns and their DuckDB types (`INTEGER`, `VARCHAR`, ...); empty when unknown.
    pub fields: Vec<(String, String)>,
    /// The relation, for a dataset of the catalog.
    pub relation: Option<Relation>,
    /// Where an external model's files are, as (namespace, name).
    pub files: Option<(String, String)>,
    pub delta: bool,
}

/// The events of one command, handed to a background thread that sends them.
pub struct Lineage {
    namespace: String,
    project: String,
    command: Mutex<String>,
    run_id: String,
    /// Each started node's run id and inputs, by unique_id.
    open: Mutex<HashMap<String, (String, Vec<Value>)>>,
    queue: Mutex<Option<(SyncSender<String>, Receiver<()>)>>,
    started: AtomicBool,
    dropped: AtomicUsize,
    catalog: String,
    paths_base: PathBuf,
}

impl Lineage {
    /// None when no transport is configured (the default) or `OPENLINEAGE_DISABLED` is true.
    pub fn from_env(project: &Project) -> Result<Option<Lineage>> {
        let Some((target, send)) = sink(project)? else {
            return Ok(None);
        };
        crate::redact::register(project.target.secret_values());
        Ok(Some(Lineage {
            namespace: env("OPENLINEAGE_NAMESPACE").unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
            project: project.name.clone(),
            command: Mutex::new(project.invocation.which.clone()),
            run_id: uuid::Uuid::new_v4().to_string(),
            open: Mutex::default(),
            queue: Mutex::new(spawn(target, send)),
            started: AtomicBool::new(false),
            dropped: AtomicUsize::new(0),
            catalog: project.target.catalog.clone(),
            paths_base: project.target.paths_base.clone(),
        }))
    }

    /// START of the command's run, before its first node.
    pub fn run_started(&self, command: &str) {
        *lock(&self.command) = command.to_string();
        self.started.store(true, Ordering::SeqCst);
        self.send(self.command_event("START"));
    }

    /// COMPLETE or FAIL of the command's run, after its last node; then waits (a while) for
    /// the events still queued. A run dropped without it ends as FAIL.
    pub fn run_finished(&self, ok: bool) {
        if self.started.swap(false, Ordering::SeqCst) {
            self.send(self.command_event(if ok { "COMPLETE" } else { "FAIL" }));
        }
        let Some((tx, done)) = lock(&self.queue).take() else {
            return;
        };
        drop(tx);
        if let Err(RecvTimeoutError::Timeout) = done.recv_timeout(FLUSH) {
            let s = FLUSH.as_secs();
            crate::warnln!("OpenLineage events still unsent after {s}s are given up");
        }
        let dropped = self.dropped.load(Ordering::SeqCst);
        if dropped > 0 {
            crate::warnln!("{dropped} OpenLineage events were dropped: their transport was slow");
        }
    }

    /// START of a node's run, reading `inputs`.
    pub fn started(&self, node: &Node, inputs: &[Dataset]) {
        if !emits(node) {
            return;
        }
        let run_id = uuid::Uuid::new_v4().to_string();
        let inputs: Vec<Value> = inputs.iter().map(|d| d.to_json(None)).collect();
        let mut event = self.node_event("START", node, &run_id, &node.compiled_sql, None);
        set(&mut event, "inputs", Value::Array(inputs.clone()));
        let output = self.output(node).to_json(None);
        set(&mut event, "outputs", Value::Array(vec![output]));
        self.send(event);
        lock(&self.open).insert(node.unique_id.clone(), (run_id, inputs));
    }

    /// COMPLETE with the output's columns, or FAIL with the error, of a started node (a node
    /// skipped before it started sends nothing, as with dbt's OpenLineage integration).
    pub fn finished(&self, node: &Node, result: &RunResult, output_columns: &[(String, String)]) {
        let Some((run_id, inputs)) = lock(&self.open).remove(&node.unique_id) else {
            return;
        };
        let sql = result.compiled.as_deref().unwrap_or(&node.compiled_sql);
        let mut event = if result.status.lets_downstream_run() {
            let mut out = self.output(node);
            out.fields = output_columns.to_vec();
            let mut event = self.node_event("COMPLETE", node, &run_id, sql, None);
            set(
                &mut event,
                "outputs",
                Value::Array(vec![out.to_json(result.rows)]),
            );
            event
        } else {
            let message = result.message.as_deref().unwrap_or("failed");
            self.node_event("FAIL", node, &run_id, sql, Some(message))
        };
        set(&mut event, "inputs", Value::Array(inputs));
        self.send(event);
    }

    fn is_open(&self, node: &Node) -> bool {
        lock(&self.open).contains_key(&node.unique_id)
    }

    fn output(&self, node: &Node) -> Dataset {
        let mut d = catalog_dataset(&self.catalog, &node.relation);
        if node.materialization.external().is_some() {
            d.files = node
                .location
                .as_deref()
                .map(|l| files_of(l, &self.paths_base));
            d.delta = node.is_delta();
        }
        d
    }

    fn command_job(&self) -> Value {
        let name = format!("{}.{}", self.project, lock(&self.command));
        json!({"namespace": self.namespace, "name": name})
    }

    fn command_event(&self, kind: &str) -> Value {
        let mut job = self.command_job();
        set(&mut job, "facets", json!({"jobType": job_type("JOB")}));
        let run = json!({"runId": self.run_id, "facets": {"processing_engine": engine()}});
        event(kind, run, job)
    }

    /// A node's event, without inputs and outputs.
    fn node_event(
        &self,
        kind: &str,
        node: &Node,
        run: &str,
        sql: &str,
        error: Option<&str>,
    ) -> Value {
        let mut parent = json!({"run": {"runId": self.run_id}, "job": self.command_job()});
        let root = parent.clone();
        set(&mut parent, "root", root);
        let mut run_facets = Map::new();
        run_facets.insert("parent".into(), facet("1-2-0", "ParentRunFacet", parent));
        run_facets.insert("processing_engine".into(), engine());
        if let Some(message) = error {
            let language = if node.python.is_some() {
                "PYTHON"
            } else {
                "SQL"
            };
            let body = json!({"message": message, "programmingLanguage": language});
            let error = facet("1-0-1", "ErrorMessageRunFacet", body);
            run_facets.insert("errorMessage".into(), error);
        }
        let (job_kind, what) = match node.kind {
            FileKind::Seed => ("SEED", ".seed"),
            FileKind::Snapshot => ("SNAPSHOT", ".snapshot"),
            _ => ("MODEL", ".run"),
        };
        let mut job_facets = Map::new();
        job_facets.insert("jobType".into(), job_type(job_kind));
        if node.python.is_none() && !sql.trim().is_empty() {
            let body = json!({"query": sql, "dialect": "duckdb"});
            job_facets.insert("sql".into(), facet("1-1-0", "SQLJobFacet", body));
        }
        // As dbt's OpenLineage integration names a node's job: database, schema, package,
        // name, and under `build` what the node is (`<database>.main.proj.orders.build.run`).
        let suffix = match (lock(&self.command).as_str(), node.kind) {
            ("build", _) => format!(".build{what}"),
            (_, FileKind::Model) => String::new(),
            _ => what.to_string(),
        };
        let id = node
            .unique_id
            .split_once('.')
            .map_or(node.unique_id.as_str(), |(_, id)| id);
        let database = crate::render::catalog_name(&self.catalog);
        let name = format!("{database}.{}.{id}{suffix}", node.relation.schema);
        let job = json!({"namespace": self.namespace, "name": name, "facets": job_facets});
        event(kind, json!({"runId": run, "facets": run_facets}), job)
    }

    /// Queues an event, with every secret lakeflow knows masked.
    fn send(&self, event: Value) {
        let text = crate::redact::redact(&event.to_string()).into_owned();
        if let Some((tx, _)) = lock(&self.queue).as_ref()
            && tx.try_send(text).is_err()
        {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Lineage {
    fn drop(&mut self) {
        self.run_finished(false);
    }
}

fn emits(node: &Node) -> bool {
    !node.is_test() && !node.is_ephemeral()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn set(object: &mut Value, key: &str, value: Value) {
    if let Value::Object(m) = object {
        m.insert(key.to_string(), value);
    }
}

/// A facet: `body` with its producer and its schema (`version` of facet `name`).
fn facet(version: &str, name: &str, mut body: Value) -> Value {
    set(&mut body, "_producer", Value::from(PRODUCER));
    let url = format!("https://openlineage.io/spec/facets/{version}/{name}.json#/$defs/{name}");
    set(&mut body, "_schemaURL", Value::from(url));
    body
}

fn job_type(kind: &str) -> Value {
    let body = json!({"processingType": "BATCH", "integration": "LAKEFLOW", "jobType": kind});
    facet("2-0-4", "JobTypeJobFacet", body)
}

fn engine() -> Value {
    let v = env!("CARGO_PKG_VERSION");
    let body = json!({"version": v, "name": "lakeflow", "openlineageAdapterVersion": v});
    facet("1-1-1", "ProcessingEngineRunFacet", body)
}

fn event(kind: &str, run: Value, job: Value) -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({"eventType": kind, "eventTime": now, "producer": PRODUCER, "schemaURL": SCHEMA_URL,
        "run": run, "job": job, "inputs": [], "outputs": []})
}

impl Dataset {
    fn to_json(&self, rows: Option<u64>) -> Value {
        let mut facets = Map::new();
        let mut add = |key: &str, version: &str, name: &str, body: Value| {
            facets.insert(key.into(), facet(version, name, body));
        };
        if self.namespace.starts_with("duckdb://") {
            let body = json!({"name": self.namespace, "uri": self.namespace});
            add("dataSource", "1-0-1", "DatasourceDatasetFacet", body);
        }
        if !self.fields.is_empty() {
            let fields: Vec<Value> = self
                .fields
                .iter()
                .map(|(n, t)| json!({"name": n, "type": t}))
                .collect();
            add(
                "schema",
                "1-2-0",
                "SchemaDatasetFacet",
                json!({"fields": fields}),
            );
        }
        if let Some((namespace, name)) = &self.files {
            let id = json!({"namespace": namespace, "name": name, "type": "LOCATION"});
            add(
                "symlinks",
                "1-0-1",
                "SymlinksDatasetFacet",
                json!({"identifiers": [id]}),
            );
        }
        if self.delta {
            let body = json!({"storageLayer": "delta", "fileFormat": "parquet"});
            add("storage", "1-0-1", "StorageDatasetFacet", body);
        }
        let mut d = json!({"namespace": self.namespace, "name": self.name, "facets": facets});
        if let Some(rows) = rows {
            let body = json!({"rowCount": rows});
            let stats = facet("1-0-2", "OutputStatisticsOutputDatasetFacet", body);
            set(&mut d, "outputFacets", json!({"outputStatistics": stats}));
        }
        d
    }
}

/// `duckdb://<catalog file>`, as dbt's OpenLineage integration names a dbt-duckdb database.
fn catalog_namespace(catalog: &str) -> String {
    match url::Url::from_file_path(catalog) {
        Ok(u) => format!("duckdb://{}", u.path()),
        Err(()) => format!("duckdb://{catalog}"),
    }
}

fn catalog_dataset(catalog: &str, relation: &Relation) -> Dataset {
    let database = crate::render::catalog_name(catalog);
    let name = format!("{database}.{}.{}", relation.schema, relation.identifier);
    let relation = Some(relation.clone());
    Dataset {
        relation,
        ..file_dataset(catalog_namespace(catalog), name)
    }
}

fn file_dataset(namespace: String, name: String) -> Dataset {
    let (fields, relation, files, delta) = (Vec::new(), None, None, false);
    Dataset {
        namespace,
        name,
        fields,
        relation,
        files,
        delta,
    }
}

/// Files by OpenLineage's naming: (`s3://bucket`, key), or (`file`, absolute path).
fn files_of(location: &str, base: &Path) -> (String, String) {
    if let Some((scheme, rest)) = location.split_once("://") {
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        return (format!("{scheme}://{host}"), path.to_string());
    }
    (
        "file".into(),
        base.join(location).to_string_lossy().into_owned(),
    )
}

/// What `node` reads: the relations of the models it refs (through ephemeral ones), its
/// sources (a source's files when it has an external location), a seed's CSV file.
pub fn inputs(targets: &RefTargets, node: &Node, project: &Project) -> Vec<Dataset> {
    let mut out = Vec::new();
    if node.kind == FileKind::Seed {
        let (namespace, name) = files_of(&node.path.to_string_lossy(), &project.root);
        out.push(file_dataset(namespace, name));
    }
    let (mut todo, mut seen) = (vec![node], HashSet::new());
    while let Some(n) = todo.pop() {
        for r in &n.refs {
            match targets.get(r.as_str()).copied() {
                Some(up) if !up.is_ephemeral() => {
                    out.push(catalog_dataset(&project.target.catalog, &up.relation))
                }
                Some(up) if seen.insert(&up.unique_id) => todo.push(up),
                _ => {}
            }
        }
        out.extend(n.sources.iter().map(|(s, t)| source_dataset(project, s, t)));
    }
    let mut unique = HashSet::new();
    out.retain(|d| unique.insert((d.namespace.clone(), d.name.clone())));
    out
}

/// The node each model name's `ref()` reaches: of a versioned model's nodes, the latest.
pub type RefTargets<'a> = HashMap<&'a str, &'a Node>;

/// [`RefTargets`] of `nodes`, found once per run rather than once per ref.
pub fn ref_targets(nodes: &[Node]) -> RefTargets<'_> {
    let latest = |m: &Node| m.version.as_ref().is_none_or(|v| v.v == v.latest);
    let mut targets = RefTargets::new();
    for m in nodes.iter().filter(|m| !m.is_test()) {
        match targets.get(m.name.as_str()) {
            Some(prev) if latest(prev) && !latest(m) => {}
            _ => {
                targets.insert(m.name.as_str(), m);
            }
        }
    }
    targets
}

fn source_dataset(p: &Project, source: &str, table: &str) -> Dataset {
    let decl = p
        .schema
        .sources
        .iter()
        .find(|s| s.source_name == source && s.name == table);
    let Some(s) = decl else {
        return catalog_dataset(&p.target.catalog, &Relation::new(source, table));
    };
    // A table function's first quoted argument is the path it reads.
    let path = s.external_location.as_deref().and_then(|loc| {
        if loc.contains('(') {
            loc.split('\'').nth(1)
        } else {
            Some(loc)
        }
    });
    let Some(path) = path else {
        return catalog_dataset(&p.target.catalog, &Relation::new(&s.schema, &s.identifier));
    };
    let (namespace, name) = files_of(path, &p.target.paths_base);
    let format = crate::project::config::get_str(&s.config, "format");
    let delta = format.is_some_and(|f| f.eq_ignore_ascii_case("delta"));
    Dataset {
        delta,
        ..file_dataset(namespace, name)
    }
}

/// The columns of `node`'s relation and their types, as the catalog keeps them (no view is
/// bound, so no file is read); empty on any error.
pub fn columns_of(conn: &duckdb::Connection, node: &Node) -> Vec<(String, String)> {
    relation_columns(conn, &node.relation)
}

fn relation_columns(conn: &duckdb::Connection, r: &Relation) -> Vec<(String, String)> {
    let sql = "select column_name, data_type from duckdb_columns() \
        where database_name = current_database() and schema_name = ? and table_name = ? \
        order by column_index";
    let Ok(mut stmt) = conn.prepare(sql) else {
        return Vec::new();
    };
    let rows = stmt.query_map(duckdb::params![r.schema, r.identifier], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    });
    rows.map(|rows| rows.filter_map(|c| c.ok()).collect())
        .unwrap_or_default()
}

/// An [`Observer`] that tells `inner`, then sends the node's events with the columns of what
/// it read and wrote, read on a DuckDB connection of its own. Drop it before the catalog.
pub struct Observed<'a, O: Observer> {
    inner: &'a O,
    lineage: Option<&'a Lineage>,
    conn: Option<Mutex<duckdb::Connection>>,
    /// What each ref reaches (empty when no events are sent).
    targets: RefTargets<'a>,
    project: &'a Project,
}

impl<'a, O: Observer> Observed<'a, O> {
    pub fn new(
        inner: &'a O,
        lineage: Option<&'a Lineage>,
        conn: &duckdb::Connection,
        nodes: &'a [Node],
        project: &'a Project,
    ) -> Observed<'a, O> {
        let conn = lineage.and_then(|_| match conn.try_clone() {
            Ok(c) => Some(Mutex::new(c)),
            Err(e) => {
                crate::warnln!("OpenLineage events go without columns: no DuckDB connection: {e}");
                None
            }
        });
        Observed {
            inner,
            lineage,
            conn,
            targets: lineage.map(|_| ref_targets(nodes)).unwrap_or_default(),
            project,
        }
    }

    fn columns(&self, r: &Relation) -> Vec<(String, String)> {
        self.conn
            .as_ref()
            .map(|c| relation_columns(&lock(c), r))
            .unwrap_or_default()
    }

    fn inputs(&self, node: &Node) -> Vec<Dataset> {
        let mut found = inputs(&self.targets, node, self.project);
        for d in &mut found {
            d.fields = d
                .relation
                .as_ref()
                .map(|r| self.columns(r))
                .unwrap_or_default();
        }
        found
    }
}

impl<O: Observer> Observer for Observed<'_, O> {
    fn started(&self, node: &Node) {
        self.inner.started(node);
        if let Some(lineage) = self.lineage.filter(|_| emits(node)) {
            lineage.started(node, &self.inputs(node));
        }
    }

    fn finished(&self, node: &Node, result: &RunResult) {
        self.inner.finished(node, result);
        let Some(lineage) = self.lineage.filter(|_| emits(node)) else {
            return;
        };
        // Not compilable, or reading what was never built: it fails without having started.
        if result.status == Status::Error && !lineage.is_open(node) {
            lineage.started(node, &self.inputs(node));
        }
        let built = result.status == Status::Success;
        let columns = if built {
            self.columns(&node.relation)
        } else {
            Vec::new()
        };
        lineage.finished(node, result, &columns);
    }
}
