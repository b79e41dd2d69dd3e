//! `lakeflow serve`: the latest replica over HTTP, behind bearer tokens, read-only, switching
//! to each newly published replica without a restart.

mod common;
use common::*;
use std::io::{BufRead, Read, Write};
use std::process::{Child, Stdio};

const TOKEN: &str = "bi:0123456789abcdef-secret";
const SECRET: &str = "0123456789abcdef-secret";

/// A running `lakeflow serve`, killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(t: &TestProject, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--bind", "127.0.0.1:0"];
        args.extend(extra);
        let mut child = t
            .command(&args)
            .env("LAKEFLOW_SERVE_TOKENS", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lakeflow serve");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Server { child, addr }
    }

    /// (status, body) of one request.
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
        let (status, _, body) = self.call_raw(method, path, token, body);
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// (status, headers, body) of one request, a chunked body put together.
    fn call_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, String, Vec<u8>) {
        let mut s = std::net::TcpStream::connect(&self.addr).expect("connect");
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .ok();
        // A server may answer (413) and close before it read all of a large body: what it
        // sent is the answer.
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let split = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(out.len());
        let head = String::from_utf8_lossy(&out[..split]).into_owned();
        let mut rest = out.get(split + 4..).unwrap_or_default().to_vec();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            rest = dechunk(&rest).unwrap_or_else(|| panic!("a cut chunked body after {head}"));
        }
        (status, head, rest)
    }

    fn query(&self, sql: &str) -> (u16, serde_json::Value) {
        let (status, body) = self.call(
            "POST",
            "/v1/query",
            Some(SECRET),
            &serde_json::json!({ "sql": sql }).to_string(),
        );
        (
            status,
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}")),
        )
    }

    fn stderr(mut self) -> String {
        let _ = self.child.kill();
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        err
    }
}

/// A chunked HTTP body put together; None when it does not end with the last chunk.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).ok()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

fn project() -> TestProject {
    let t = TestProject::new(&[
        (
            "models/gold/totals.sql",
            "{{ config(materialized='external') }} select range % 3 as k, sum(range) * {{ var('f', 1) }} as total from range(1000) group by 1",
        ),
        (
            "models/gold/digits.sql",
            "{{ config(materialized='external') }} select range as n from range(10)",
        ),
        (
            "models/gold/numbers.sql",
            "{{ config(materialized='table') }} select n, 'x' || n as s, case when n = 0 then 'nan'::double else n end as d from {{ ref('digits') }} where n < 5",
        ),
        (
            "models/gold/evens.sql",
            "select * from {{ ref('numbers') }} where n % 2 = 0",
        ),
        (
            "models/gold/schema.yml",
            "version: 2\nmodels:\n  - name: numbers\n    description: The first five numbers.\n    columns:\n      - name: n\n        description: The number itself.\n        data_tests: [not_null, unique]\n",
        ),
    ]);
    let profile = PROFILE.replace(
        "      threads: 4\n    prod:",
        "      threads: 4\n      publish: {to: replica.duckdb}\n    prod:",
    );
    t.write("profiles.yml", &profile);
    t
}

#[test]
fn serves_the_latest_replica_read_only_behind_tokens() {
    let t = project();
    // Before anything is published the server is up and not ready.
    let early = Server::start(&t, &[]);
    assert_eq!(early.call("GET", "/v1/health", None, "").0, 200);
    assert_eq!(early.call("GET", "/v1/ready", None, "").0, 503);
    drop(early);
    t.run(&["build"]).ok();
    let s = Server::start(&t, &["--timeout", "1", "--max-rows", "3"]);
    let (status, ready) = s.call("GET", "/v1/ready", None, "");
    assert_eq!(status, 200, "{ready}");

    // No token, a wrong one: refused.
    for token in [None, Some("0123456789abcdef-wrong!")] {
        let (status, _) = s.call("POST", "/v1/query", token, r#"{"sql": "select 1"}"#);
        assert_eq!(status, 401);
        assert_eq!(s.call("GET", "/v1/relations", token, "").0, 401);
    }
    let (status, body) = s.query("select sum(total)::bigint as t from gold.totals");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0]["t"], 499500);
    // NaN and NULL stay valid JSON; more rows than --max-rows are cut and said so.
    let (_, body) = s.query("select d, null as nothing from gold.numbers order by n");
    assert_eq!(body["rows"].as_array().unwrap().len(), 3);
    assert_eq!(body["truncated"], true);
    assert!(body["rows"][0]["d"].is_string(), "{body}");
    assert!(body["rows"][0]["nothing"].is_null(), "{body}");
    let (status, csv) = s.call(
        "POST",
        "/v1/query",
        Some(SECRET),
        r#"{"sql": "select n, s from gold.numbers order by n limit 2", "format": "csv"}"#,
    );
    assert_eq!((status, csv.as_str()), (200, "n,s\n0,x0\n1,x1\n"));
    // Parameters are bound, never spliced; with them too only one SELECT runs.
    let (status, body) = s.call(
        "POST",
        "/v1/query",
        Some(SECRET),
        r#"{"sql": "select n from gold.numbers where n >= ? and s <> $2 order by n", "params": [3, "x4"]}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""rows":[{"n":3}]"#), "{body}");
    for sql in [
        "copy (select ?) to 'out.csv'",
        "select ?; select 2",
        "select 1) as q, (select ?",
    ] {
        let body = serde_json::json!({"sql": sql, "params": [1]}).to_string();
        assert_eq!(
            s.call("POST", "/v1/query", Some(SECRET), &body).0,
            400,
            "{sql}"
        );
    }
    let (_, relations) = s.call("GET", "/v1/relations", Some(SECRET), "");
    assert!(relations.contains("\"relation\":\"totals\""), "{relations}");
    let (_, build) = s.call("GET", "/v1/build", Some(SECRET), "");
    assert!(build.contains("model.proj.totals"), "{build}");

    // Writes, other files, extensions and endless queries are refused; the server stays up.
    for sql in [
        "copy (select 1) to 'out.csv'",
        "attach 'other.duckdb' as o",
        "install httpfs",
        "create table x as select 1",
        "select * from read_csv('/etc/passwd')",
        "select count(*) from range(1000000000000) a, range(1000) b",
    ] {
        let (status, body) = s.query(sql);
        assert!(status == 400 || status == 408, "{sql}: {status} {body}");
    }
    assert!(!t.path().join("out.csv").exists());
    assert_eq!(
        s.call("POST", "/v1/query", Some(SECRET), "{not json").0,
        400
    );
    let huge = format!(r#"{{"sql": "select '{}'"}}"#, "x".repeat(2 << 20));
    assert_eq!(s.call("POST", "/v1/query", Some(SECRET), &huge).0, 413);
    // A request head past 16 KiB, or one that never ends, is refused; the server stays up.
    let mut big = std::net::TcpStream::connect(&s.addr).unwrap();
    let _ = write!(
        big,
        "GET /v1/ready HTTP/1.1\r\nX-Big: {}",
        "a".repeat(40_000)
    );
    let mut answer = String::new();
    let _ = big.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let mut garbage = std::net::TcpStream::connect(&s.addr).unwrap();
    let _ = write!(garbage, "NOT HTTP\r\n\r\n");
    let mut answer = String::new();
    let _ = garbage.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(s.query("select 1 as one").1["rows"][0]["one"], 1);
    let page = s.call("GET", "/", None, "");
    assert!(page.0 == 200 && page.1.contains("<textarea"), "{}", page.1);

    // A new build is published: the next query reads it, without a restart.
    let before = s.query("select 1").1["build_id"].clone();
    t.run(&["build", "--vars", "{f: 2}"]).ok();
    let mut switched = false;
    for _ in 0..50 {
        let (_, body) = s.query("select sum(total)::bigint as t from gold.totals");
        if body["build_id"] != before {
            assert_eq!(body["rows"][0]["t"], 999000, "{body}");
            switched = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(switched, "the server kept serving build {before}");

    // A damaged replica put in place (say, a partial copy) is never switched to: the server
    // keeps serving the last good build.
    let served = s.query("select 1").1["build_id"].clone();
    let replica = t.path().join("replica.duckdb");
    let tmp = t.path().join("damaged.duckdb");
    std::fs::write(&tmp, b"not a database, or only the first bytes of one").unwrap();
    std::fs::rename(&tmp, &replica).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (status, body) = s.query("select sum(total)::bigint as t from gold.totals");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["build_id"], served);
    assert_eq!(body["rows"][0]["t"], 999000);
    assert_eq!(s.call("GET", "/v1/ready", None, "").0, 200);

    // The audit log names the token, never its secret.
    let log = s.stderr();
    assert!(log.contains("token=bi status=200 rows=1 ms="), "{log}");
    assert!(!log.contains(SECRET), "{log}");
    assert!(log.contains("was not switched to"), "{log}");
}

/// The SQL of a wide gold table: most of DuckDB's common types, NULLs and NaN.
const WIDE: &str = "select range as id, 'name ' || range as name, \
    case when range % 1000 = 0 then 'nan'::double else range / 7 end as ratio, \
    (range / 1000)::decimal(18,3) as amount, date '2026-01-01' + (range % 365)::int as day, \
    timestamp '2026-01-01 00:00:00' + to_seconds(range) as ts, [range, range + 1] as pair, \
    {'k': range % 5, 'v': 'v' || range % 3} as rec, \
    case when range % 2 = 0 then null else range end as sometimes \
    from range(200000)";

#[test]
fn results_stream_as_json_csv_arrow_and_parquet_within_the_limits() {
    let t = project();
    t.write(
        "models/gold/wide.sql",
        &format!("{{{{ config(materialized='external') }}}} {WIDE}"),
    );
    t.write(
        "models/silver/salaries.sql",
        "{{ config(materialized='external') }} select 'ann' as who, 100000 as pay",
    );
    t.write(
        "tokens.txt",
        "# gold only\ngold:gold-only-0123456789abcdef:gold\n",
    );
    t.run(&["build"]).ok();
    let s = Server::start(
        &t,
        &[
            "--max-rows",
            "250000",
            "--memory-limit",
            "300MB",
            "--tokens-file",
            "tokens.txt",
        ],
    );
    let ask = |sql: &str, format: &str| {
        s.call_raw(
            "POST",
            "/v1/query",
            Some(SECRET),
            &serde_json::json!({"sql": sql, "format": format}).to_string(),
        )
    };
    let header = |head: &str, name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
            .unwrap_or_else(|| panic!("no {name} in {head}"))
    };
    let build = s.query("select 1").1["build_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Parquet: DuckDB reads back the very rows the table has, with its types.
    let (status, head, body) = ask("select * from gold.wide", "parquet");
    assert_eq!(status, 200, "{head}");
    assert_eq!(header(&head, "X-Lakeflow-Rows"), "200000");
    assert_eq!(header(&head, "X-Lakeflow-Build"), build);
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    let file = t.path().join("result.parquet");
    std::fs::write(&file, &body).unwrap();
    let conn = memory();
    let from_file = format!("read_parquet('{}')", file.display());
    assert_eq!(
        query_i64(
            &conn,
            &format!("select count(*) from (select * from {from_file} except all {WIDE})")
        ),
        0
    );
    assert_eq!(
        query_i64(&conn, &format!("select count(*) from {from_file}")),
        200000
    );
    assert_eq!(
        query_strings(
            &conn,
            &format!(
                "select typeof(amount) || ' ' || typeof(rec) || ' ' || typeof(ts) from {from_file} limit 1"
            )
        ),
        ["DECIMAL(18,3) STRUCT(k BIGINT, v VARCHAR) TIMESTAMP"]
    );

    // Arrow IPC: pyarrow reads the stream, with the build id in its schema.
    let (status, head, body) = ask("select * from gold.wide order by id", "arrow");
    assert_eq!(status, 200, "{head}");
    let file = t.path().join("result.arrows");
    std::fs::write(&file, &body).unwrap();
    let out = python(
        "import sys, pyarrow as pa, pyarrow.compute as pc\n\
         t = pa.ipc.open_stream(open(sys.argv[1], 'rb')).read_all()\n\
         print(t.num_rows, pc.sum(t['id']).as_py(), t['sometimes'].null_count, t.schema.metadata[b'lakeflow.build_id'].decode(), t.column('pair')[3].as_py())",
        &[file.to_str().unwrap()],
    );
    assert_eq!(
        out.trim(),
        format!("200000 {} 100000 {build} [3, 4]", 199999u64 * 200000 / 2)
    );

    // JSON and CSV stream row by row.
    let (status, head, body) = ask(
        "select id, ratio, sometimes from gold.wide order by id",
        "json",
    );
    assert_eq!(status, 200, "{head}");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 200000);
    assert_eq!(rows[1000]["ratio"], "nan");
    assert!(rows[2]["sometimes"].is_null());
    assert_eq!(json["truncated"], false);
    let (_, _, body) = ask("select id, name from gold.wide order by id", "csv");
    let csv = String::from_utf8(body).unwrap();
    assert_eq!(csv.lines().count(), 200001);
    assert_eq!(csv.lines().nth(200000), Some("199999,name 199999"));

    // More rows than --max-rows: cut there, and said so in every format.
    let (_, head, body) = ask("select * from range(300000)", "parquet");
    assert_eq!(header(&head, "X-Lakeflow-Truncated"), "true");
    std::fs::write(t.path().join("cut.parquet"), &body).unwrap();
    assert_eq!(
        query_i64(
            &conn,
            &format!(
                "select count(*) from read_parquet('{}')",
                t.path().join("cut.parquet").display()
            )
        ),
        250000
    );
    let (_, _, body) = ask("select * from range(300000)", "json");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (json["rows"].as_array().unwrap().len(), &json["truncated"]),
        (250000, &serde_json::Value::Bool(true))
    );

    // A query past the memory limit fails alone; the server stays up.
    let (status, _, body) = ask("select list(range) from range(200000000)", "arrow");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body)
            .to_lowercase()
            .contains("memory")
    );
    assert_eq!(s.query("select 1 as one").1["rows"][0]["one"], 1);
    let (status, _, _) = ask("select 1", "xml");
    assert_eq!(status, 400);
    let (status, _) = s.call(
        "POST",
        "/v1/query",
        Some(SECRET),
        r#"{"sql": "select 1", "format": 5}"#,
    );
    assert_eq!(status, 400);

    // Files outside the lake are out of reach unless the server is told a folder.
    std::fs::create_dir_all(t.path().join("extra")).unwrap();
    std::fs::write(t.path().join("extra/x.csv"), "a\n1\n2\n").unwrap();
    let csv_sql = format!(
        "select count(*) as n from read_csv('{}')",
        t.path().join("extra/x.csv").display()
    );
    assert_eq!(s.query(&csv_sql).0, 400);
    let wider = Server::start(&t, &["--allow-read", "extra"]);
    let (status, body) = wider.query(&csv_sql);
    assert_eq!(
        (status, &body["rows"][0]["n"]),
        (200, &serde_json::json!(2)),
        "{body}"
    );
    assert_eq!(wider.query("select * from read_csv('/etc/passwd')").0, 400);
    drop(wider);

    // A token limited to gold reads gold and nothing else, and lists only gold.
    let gold = "gold-only-0123456789abcdef";
    let as_gold = |sql: &str| {
        s.call(
            "POST",
            "/v1/query",
            Some(gold),
            &serde_json::json!({"sql": sql}).to_string(),
        )
    };
    let (status, body) = as_gold("select count(*) as n from gold.wide");
    assert!(
        status == 200 && body.contains(r#""n":200000"#),
        "{status} {body}"
    );
    assert_eq!(
        s.query("select pay from silver.salaries").1["rows"][0]["pay"],
        100000
    );
    for sql in [
        "select pay from silver.salaries",
        "select * from gold.wide where id in (select pay from silver.salaries)",
        "select * from duckdb_tables()",
        "select * from information_schema.columns",
        "show all tables",
        "select * from query_table('silver.salaries')",
    ] {
        let (status, body) = as_gold(sql);
        assert_eq!(status, 403, "{sql}: {body}");
    }
    let lake = t.path().join("lake");
    let files = parquet_files(&lake);
    let silver_file = files
        .iter()
        .find(|f| f.to_string_lossy().contains("salaries"))
        .expect("the silver model's file");
    for sql in ["select * from '{}'", "select * from read_parquet('{}')"] {
        let sql = sql.replace("{}", &silver_file.display().to_string());
        assert_eq!(as_gold(&sql).0, 403, "{sql}");
        assert_eq!(s.query(&sql).0, 200, "{sql}");
    }
    for path in ["/v1/relations", "/v1/build"] {
        let (status, body) = s.call("GET", path, Some(gold), "");
        assert!(
            status == 200 && body.contains("wide") && !body.contains("salaries"),
            "{path}: {body}"
        );
        assert!(s.call("GET", path, Some(SECRET), "").1.contains("salaries"));
    }
    let log = s.stderr();
    assert!(log.contains("token=gold status=403"), "{log}");
    assert!(!log.contains(gold), "{log}");
}

#[test]
fn serves_https_with_a_certificate_and_key() {
    let t = project();
    t.run(&["build"]).ok();
    let dir = t.path().join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .current_dir(&dir)
        .output()
        .expect("openssl (scripts/test installs it) makes a test certificate");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let serve_tls = |key: &std::path::Path| {
        let mut c = t.command(&[
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ]);
        c.env("LAKEFLOW_SERVE_TOKENS", TOKEN);
        c
    };
    let mut child = serve_tls(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _server = Server {
        child,
        addr: String::new(),
    };
    let addr = line
        .split("https://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no https address in {line:?}"))
        .to_string();
    // A client that trusts the certificate gets answers; the token travels encrypted.
    let out = python(
        r#"
import json, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
req = urllib.request.Request('https://' + sys.argv[1] + '/v1/query', method='POST',
    data=json.dumps({'sql': 'select sum(total)::bigint as t from gold.totals'}).encode(),
    headers={'Authorization': 'Bearer ' + sys.argv[3]})
with urllib.request.urlopen(req, context=ctx) as r:
    print(r.status, json.loads(r.read())['rows'][0]['t'])
with urllib.request.urlopen('https://' + sys.argv[1] + '/v1/ready', context=ctx) as r:
    print(r.status)
"#,
        &[&addr, cert.to_str().unwrap(), SECRET],
    );
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["200", "499500", "200"]
    );
    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = std::net::TcpStream::connect(&addr).unwrap();
    let _ = write!(plain, "GET /v1/ready HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // A key that is not one is refused at start, naming the file.
    std::fs::write(dir.join("bad.pem"), "not a key").unwrap();
    let out = serve_tls(&dir.join("bad.pem")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("LF606") && err.contains("bad.pem"),
        "{err}"
    );
}

#[test]
fn serve_refuses_to_start_without_tokens_or_a_replica() {
    let t = project();
    let out = t
        .command(&["serve"])
        .env_remove("LAKEFLOW_SERVE_TOKENS")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("LF606"));
    let short = t
        .command(&["serve"])
        .env("LAKEFLOW_SERVE_TOKENS", "bi:short")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&short.stderr).contains("16 characters"));
    t.write("profiles.yml", PROFILE);
    let none = t
        .command(&["serve"])
        .env("LAKEFLOW_SERVE_TOKENS", TOKEN)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&none.stderr).contains("publishes no replica"));
}

#[test]
fn the_page_lists_relations_and_runs_queries_in_a_browser() {
    let t = project();
    t.run(&["build"]).ok();
    let s = Server::start(&t, &[]);
    // What the page must show when the relation is opened, as the API returns it.
    let (_, expected) = s.query(r#"select * from "gold"."numbers" limit 100"#);
    let details = serde_json::json!({
        "description": "The first five numbers.",
        "column": "n",
        "column_description": "The number itself.",
        "test": "not_null",
        "status": "pass",
        "parent": "gold.digits",
        "child": "gold.evens",
        "chart_sql": "select s, n from gold.numbers order by n",
    });
    browser_check(
        "serve.mjs",
        &[
            &format!("http://{}/", s.addr),
            SECRET,
            "gold.numbers",
            &expected.to_string(),
            &details.to_string(),
        ],
        5 * 1024,
    );

    // `lakeflow catalog publish` carries the docs and the last test results too (from
    // target/run_results.json), for a server that has only the replica.
    let before = s.query("select 1").1["build_id"].clone();
    t.run(&["catalog", "publish"]).ok();
    let mut models = serde_json::Value::Null;
    for _ in 0..50 {
        let (_, ready) = s.call("GET", "/v1/ready", None, "");
        if !ready.contains(before.as_str().unwrap()) {
            models =
                serde_json::from_str(&s.call("GET", "/v1/models", Some(SECRET), "").1).unwrap();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let numbers = models["models"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["unique_id"] == "model.proj.numbers"))
        .unwrap_or_else(|| panic!("no numbers model after catalog publish: {models}"));
    assert_eq!(numbers["description"], "The first five numbers.");
    assert_eq!(
        numbers["depends_on"],
        serde_json::json!(["model.proj.digits"])
    );
    let tests: Vec<(String, String)> = numbers["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["test"].as_str().unwrap().to_string(),
                t["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        tests,
        [
            ("not_null".to_string(), "pass".to_string()),
            ("unique".to_string(), "pass".to_string())
        ]
    );
}

/// The project on the S3 server `s3`, in `bucket`, publishing its replica there too.
fn publish_to_s3(t: &TestProject, s3: &common::s3::S3, bucket: &str) {
    let profile = s3.profile(bucket, &s3.secret).replace(
        "      threads: 4\n",
        &format!("      threads: 4\n      publish: {{to: 's3://{bucket}/replicas/proj.duckdb'}}\n"),
    );
    t.write("profiles.yml", &profile);
}

#[test]
fn serves_replicas_published_to_s3() {
    let s3 = common::s3::S3::shared();
    let bucket = s3.bucket("serve");
    let t = project();
    publish_to_s3(&t, &s3, &bucket);
    t.run(&["build"]).ok();
    let s = Server::start(&t, &[]);
    let (status, body) = s.query("select sum(total)::bigint as t from gold.totals");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0]["t"], 499500);
    let before = body["build_id"].clone();
    t.run(&["build", "--vars", "{f: 3}"]).ok();
    let mut switched = false;
    for _ in 0..100 {
        let (_, body) = s.query("select sum(total)::bigint as t from gold.totals");
        if body["build_id"] != before {
            assert_eq!(body["rows"][0]["t"], 1498500, "{body}");
            switched = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(switched, "the server kept serving build {before}");
    // The local copies of replicas no query reads any more are gone.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let copies = std::fs::read_dir(t.path().join("target/serve"))
        .unwrap()
        .count();
    assert_eq!(copies, 1);
    let log = s.stderr();
    assert!(!log.contains(&s3.secret), "{log}");
}

#[test]
fn an_s3_outage_keeps_the_served_replica_and_a_new_server_is_not_ready() {
    let mut own = common::s3::OwnServer::start();
    let bucket = own.s3.bucket("outage");
    let t = project();
    publish_to_s3(&t, &own.s3, &bucket);
    t.run(&["build"]).ok();
    let s = Server::start(&t, &[]);
    assert_eq!(
        s.query("select count(*) as n from gold.numbers").1["rows"][0]["n"],
        5
    );
    own.kill();
    // The S3 server is gone: the loaded replica keeps serving what it holds (a table model is
    // copied into the replica) and stays ready; a server started now has nothing to serve.
    std::thread::sleep(std::time::Duration::from_millis(5500));
    assert_eq!(s.call("GET", "/v1/ready", None, "").0, 200);
    let (status, body) = s.query("select count(*) as n from gold.numbers");
    assert_eq!(
        (status, &body["rows"][0]["n"]),
        (200, &serde_json::json!(5)),
        "{body}"
    );
    let fresh = Server::start(&t, &[]);
    assert_eq!(fresh.call("GET", "/v1/ready", None, "").0, 503);
    assert_eq!(fresh.query("select 1").0, 503);
    // Back again: the views over S3 data answer, and the fresh server gets ready.
    own.resume();
    let (status, body) = s.query("select sum(total)::bigint as t from gold.totals");
    assert_eq!(
        (status, &body["rows"][0]["t"]),
        (200, &serde_json::json!(499500)),
        "{body}"
    );
    let mut ready = false;
    for _ in 0..100 {
        if fresh.call("GET", "/v1/ready", None, "").0 == 200 {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ready, "the new server never got ready after S3 came back");
}
