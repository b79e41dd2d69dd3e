//! OpenLineage run events of `lakeflow build`: the file transport of an `openlineage.yml`
//! (each model's START and COMPLETE or FAIL under the build's run, with what it read and
//! wrote), the http transport of `OPENLINEAGE_URL` against a loopback server (the API key as a
//! bearer token, in no event and no line lakeflow prints), an endpoint that does not answer
//! (one warning, the build unharmed), and configurations lakeflow refuses or is told to ignore.

mod common;
use common::*;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The variables lakeflow reads; none of the machine's reach a test.
const VARIABLES: &[&str] = &[
    "OPENLINEAGE_URL",
    "OPENLINEAGE_ENDPOINT",
    "OPENLINEAGE_API_KEY",
    "OPENLINEAGE_NAMESPACE",
    "OPENLINEAGE_CONFIG",
    "OPENLINEAGE_DISABLED",
    "OPENLINEAGE_PARENT_ID",
    "OPENLINEAGE_ROOT_PARENT_ID",
];

/// `a` (a table), `b` (Parquet files) reading `a`, and `c` reading `b`: `c` fails unless
/// `c_works`.
fn project(c_works: bool) -> TestProject {
    let c = if c_works {
        "select id from {{ ref('b') }}\n"
    } else {
        "select nope from {{ ref('b') }}\n"
    };
    TestProject::new(&[
        (
            "models/a.sql",
            "{{ config(materialized='table') }}\nselect 1::integer as id, 'x'::varchar as name\n",
        ),
        (
            "models/b.sql",
            "{{ config(materialized='external') }}\nselect id, name from {{ ref('a') }}\n",
        ),
        ("models/c.sql", c),
    ])
}

fn build(t: &TestProject, vars: &[(&str, &str)]) -> Run {
    let mut cmd = t.command(&["build"]);
    for v in VARIABLES {
        cmd.env_remove(v);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start lakeflow");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        assert!(start.elapsed() < Duration::from_secs(120), "lakeflow hung");
        std::thread::sleep(Duration::from_millis(20));
    }
    Run::from(child.wait_with_output().expect("output"))
}

fn read_events(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn kind(e: &Value) -> &str {
    e["eventType"].as_str().unwrap_or("")
}

/// The events of the job named `name`, in order.
fn of_job<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["job"]["name"] == name).collect()
}

fn dataset_names(list: &Value) -> Vec<&str> {
    list.as_array()
        .map(|a| a.iter().filter_map(|d| d["name"].as_str()).collect())
        .unwrap_or_default()
}

fn fields(dataset: &Value) -> Vec<(String, String)> {
    dataset["facets"]["schema"]["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| (text(&f["name"]), text(&f["type"])))
                .collect()
        })
        .unwrap_or_default()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// The columns of `a` and `b`, as DuckDB types them.
fn id_and_name() -> Vec<(String, String)> {
    vec![
        ("id".into(), "INTEGER".into()),
        ("name".into(), "VARCHAR".into()),
    ]
}

/// Checks what every event of a build of [`project`] must say, whatever its transport.
fn check_build_events(t: &TestProject, events: &[Value], build_ok: bool) {
    for e in events {
        assert_eq!(
            e["schemaURL"],
            "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
        );
        assert!(e["producer"].as_str().is_some_and(|p| !p.is_empty()));
        assert!(
            e["eventTime"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{e}"
        );
        assert_eq!(e["job"]["namespace"], "default", "{e}");
    }
    // The build's run opens and closes the stream.
    let build = of_job(events, "proj.build");
    assert_eq!(build.len(), 2, "{events:#?}");
    assert_eq!(kind(build[0]), "START");
    assert_eq!(kind(build[1]), if build_ok { "COMPLETE" } else { "FAIL" });
    assert_eq!(build[0]["run"]["runId"], build[1]["run"]["runId"]);
    assert!(std::ptr::eq(build[0], &events[0]));
    assert!(std::ptr::eq(build[1], &events[events.len() - 1]));
    let build_run = build[0]["run"]["runId"].clone();

    let catalog = std::fs::canonicalize(t.path())
        .expect("canonical")
        .join("catalog.duckdb");
    let namespace = format!("duckdb://{}", catalog.display());
    for model in ["a", "b", "c"] {
        let runs = of_job(events, &format!("catalog.main.proj.{model}.build.run"));
        assert_eq!(runs.len(), 2, "{model}: {events:#?}");
        let (start, end) = (runs[0], runs[1]);
        assert_eq!(kind(start), "START");
        assert_eq!(start["run"]["runId"], end["run"]["runId"]);
        assert_ne!(start["run"]["runId"], build_run);
        for e in [start, end] {
            let parent = &e["run"]["facets"]["parent"];
            assert_eq!(parent["run"]["runId"], build_run, "{model}");
            assert_eq!(parent["job"]["name"], "proj.build");
            assert_eq!(parent["job"]["namespace"], "default");
            assert_eq!(parent["root"]["run"]["runId"], build_run);
            assert!(
                parent["_schemaURL"]
                    .as_str()
                    .is_some_and(|s| s.contains("ParentRunFacet"))
            );
            assert_eq!(e["job"]["facets"]["jobType"]["jobType"], "MODEL");
            assert_eq!(e["job"]["facets"]["jobType"]["processingType"], "BATCH");
        }
        assert!(
            start["job"]["facets"]["sql"]["query"]
                .as_str()
                .is_some_and(|q| q.contains("select")),
            "{start}"
        );
    }
    let runs = |m: &str| of_job(events, &format!("catalog.main.proj.{m}.build.run"));

    // a reads nothing and wrote its table.
    let a_end = runs("a")[1];
    assert_eq!(kind(a_end), "COMPLETE");
    assert!(
        runs("a")[0]["inputs"]
            .as_array()
            .is_some_and(|i| i.is_empty())
    );
    let a_out = &a_end["outputs"][0];
    assert_eq!(a_out["namespace"], namespace.as_str());
    assert_eq!(a_out["name"], "catalog.main.a");
    assert_eq!(fields(a_out), id_and_name());
    assert_eq!(a_out["facets"]["dataSource"]["uri"], namespace.as_str());

    // b reads a (with a's columns) and wrote Parquet files, named beside its relation.
    let (b_start, b_end) = (runs("b")[0], runs("b")[1]);
    assert_eq!(kind(b_end), "COMPLETE");
    for e in [b_start, b_end] {
        assert_eq!(dataset_names(&e["inputs"]), ["catalog.main.a"]);
        assert_eq!(e["inputs"][0]["namespace"], namespace.as_str());
        assert_eq!(fields(&e["inputs"][0]), id_and_name());
    }
    let b_out = &b_end["outputs"][0];
    assert_eq!(b_out["name"], "catalog.main.b");
    assert_eq!(fields(b_out), id_and_name());
    let files = &b_out["facets"]["symlinks"]["identifiers"][0];
    assert_eq!(files["namespace"], "file");
    assert!(
        files["name"]
            .as_str()
            .is_some_and(|n| n.ends_with("b.parquet")),
        "{files}"
    );
    assert_eq!(b_out["outputFacets"]["outputStatistics"]["rowCount"], 1);

    // c reads b; it failed, or it completed.
    let (c_start, c_end) = (runs("c")[0], runs("c")[1]);
    assert_eq!(dataset_names(&c_start["inputs"]), ["catalog.main.b"]);
    if build_ok {
        assert_eq!(kind(c_end), "COMPLETE");
    } else {
        assert_eq!(kind(c_end), "FAIL");
        let error = &c_end["run"]["facets"]["errorMessage"];
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains("nope")),
            "{c_end}"
        );
        assert_eq!(error["programmingLanguage"], "SQL");
        assert!(c_end["outputs"].as_array().is_some_and(|o| o.is_empty()));
    }
}

#[test]
fn file_transport_writes_each_model_run_under_the_build_run() {
    let t = project(false);
    t.write(
        "openlineage.yml",
        "transport:\n  type: file\n  log_file_path: lineage/events.jsonl\n  append: true\n",
    );
    std::fs::create_dir_all(t.path().join("lineage")).expect("mkdir");
    let out = build(&t, &[]);
    assert_eq!(
        out.code, 1,
        "c fails\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    assert!(!out.stderr.contains("OpenLineage"), "{}", out.stderr);
    let events = read_events(&t.path().join("lineage/events.jsonl"));
    assert_eq!(events.len(), 8, "{events:#?}");
    check_build_events(&t, &events, false);

    // Named by OPENLINEAGE_CONFIG, the file is read from anywhere; without `append`, each
    // event is a file of its own.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let config = elsewhere.path().join("ol.yml");
    let prefix = elsewhere.path().join("event");
    let text = format!(
        "transport:\n  type: file\n  log_file_path: {}\n",
        prefix.display()
    );
    std::fs::write(&config, text).expect("write");
    let t = project(true);
    let config = config.to_string_lossy().into_owned();
    build(&t, &[("OPENLINEAGE_CONFIG", &config)]).ok();
    let files: Vec<_> = std::fs::read_dir(elsewhere.path())
        .expect("list")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".json"))
        .collect();
    assert_eq!(files.len(), 8, "{files:?}");
    let events: Vec<Value> = files.iter().flat_map(|f| read_events(f)).collect();
    let count = |k: &str| events.iter().filter(|e| kind(e) == k).count();
    assert_eq!((count("START"), count("COMPLETE")), (4, 4), "{events:#?}");
}

/// A request the server took: path, headers (lower-case names), body.
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// An HTTP server on loopback that records each request and answers 200.
struct Server {
    url: String,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
    got: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (stop2, got2) = (stop.clone(), got.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => serve(stream, &got2),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Server {
            url,
            stop,
            thread,
            got,
        }
    }

    fn stop(self) -> Vec<Request> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("server thread");
        std::mem::take(&mut *self.got.lock().expect("lock"))
    }
}

/// Serves the requests of one connection until it closes (lakeflow ended) or idles for 30 s.
fn serve(stream: TcpStream, got: &Mutex<Vec<Request>>) {
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        got.lock().expect("lock").push(Request {
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

#[test]
fn http_transport_posts_each_event_with_the_key_as_bearer_token_and_nowhere_else() {
    let server = Server::start();
    let t = project(false);
    let key = "ol-key-7Hq2xZp9-secret";
    let url = server.url.clone();
    let out = build(
        &t,
        &[("OPENLINEAGE_URL", &url), ("OPENLINEAGE_API_KEY", key)],
    );
    let requests = server.stop();
    assert_eq!(
        out.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    assert!(!out.stderr.contains("OpenLineage"), "{}", out.stderr);
    assert_eq!(requests.len(), 8);
    let header = |r: &Request, name: &str| {
        r.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    for r in &requests {
        assert_eq!(r.path, "/api/v1/lineage");
        assert_eq!(header(r, "authorization"), Some(format!("Bearer {key}")));
        assert_eq!(
            header(r, "content-type").as_deref(),
            Some("application/json")
        );
        assert!(!r.body.contains(key), "{}", r.body);
    }
    let events: Vec<Value> = requests
        .iter()
        .map(|r| serde_json::from_str(&r.body).expect("a JSON event"))
        .collect();
    check_build_events(&t, &events, false);
    assert!(!out.stdout.contains(key) && !out.stderr.contains(key));
    for file in ["target/run_results.json", "target/manifest.json"] {
        let text = std::fs::read_to_string(t.path().join(file)).unwrap_or_default();
        assert!(!text.contains(key), "{file}");
    }
}

#[test]
fn an_endpoint_that_does_not_answer_is_one_warning_and_the_build_succeeds() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let t = project(true);
    let url = format!("http://127.0.0.1:{port}");
    let out = build(&t, &[("OPENLINEAGE_URL", &url)]);
    assert_eq!(
        out.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("OpenLineage"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", out.stderr);
    assert!(warnings[0].starts_with("warning: "), "{}", warnings[0]);
    assert!(warnings[0].contains(&url), "{}", warnings[0]);
    assert!(out.stdout.contains("3 succeeded"), "{}", out.stdout);
}

#[test]
fn unknown_transports_are_refused_and_disabled_sends_nothing() {
    let t = project(true);
    t.write("openlineage.yml", "transport:\n  type: kafka\n");
    let out = build(&t, &[]);
    assert_eq!(
        out.code, 2,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains("LF134") && out.stderr.contains("kafka"),
        "{}",
        out.stderr
    );

    t.write(
        "openlineage.yml",
        "transport:\n  type: file\n  log_file_path: events.jsonl\n  append: true\n",
    );
    build(&t, &[("OPENLINEAGE_DISABLED", "true")]).ok();
    assert!(!t.path().join("events.jsonl").exists());
    // No configuration at all: nothing is sent, nothing is said.
    std::fs::remove_file(t.path().join("openlineage.yml")).expect("remove");
    let out = build(&t, &[]);
    out.ok();
    assert!(!out.stderr.contains("OpenLineage"), "{}", out.stderr);
}
