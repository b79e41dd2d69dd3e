//! `lakeflow docs generate` and `lakeflow docs serve`, end to end: target/catalog.json in
//! dbt's catalog v1 shape (relations and columns as DuckDB has them), the self-contained
//! target/index.html with the project's data embedded (checked in headless Chromium too), and
//! the read-only HTTP server.

mod common;
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A description no data tag may hold as markup.
const HOSTILE: &str = "One row per order. Not markup: </script><!-- <script>";

/// A dbt project: a seed, a staging view over it, a table over the view and a source (a table
/// made here in the catalog before the build), with descriptions and a test; built, and its
/// docs generated.
fn shop() -> TestProject {
    let t = TestProject::dbt(
        "name: shop\nversion: '1.0'\nconfig-version: 2\nprofile: shop\n",
        "shop:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: shop.duckdb, threads: 2}\n",
    );
    t.write(
        "seeds/raw_orders.csv",
        "id,customer_id,amount\n1,10,12.5\n2,11,7.25\n3,10,3.0\n",
    );
    t.write(
        "models/staging/stg_orders.sql",
        "{{ config(materialized='view') }}\nselect id, customer_id, amount from {{ ref('raw_orders') }}\n",
    );
    t.write(
        "models/orders.sql",
        "{{ config(materialized='table') }}\n\
         select o.id, o.customer_id, c.name as customer_name, o.amount as \"AMOUNT_USD\"\n\
         from {{ ref('stg_orders') }} o\n\
         left join {{ source('crm', 'customers') }} c on c.id = o.customer_id\n",
    );
    t.write(
        "models/schema.yml",
        &format!(
            "version: 2\nsources:\n  - name: crm\n    schema: crm\n    tables:\n      - name: customers\n        description: Customers from the CRM\nmodels:\n  - name: orders\n    description: \"{HOSTILE}\"\n    columns:\n      - name: id\n        description: The order id\n        data_tests:\n          - not_null\n      - name: AMOUNT_USD\n        description: Amount in dollars\n"
        ),
    );
    {
        let c = duckdb::Connection::open(t.path().join("shop.duckdb")).expect("catalog");
        c.execute_batch(
            "create schema crm;
             create table crm.customers (id integer, name varchar);
             insert into crm.customers values (10, 'Ann'), (11, 'Bob');
             comment on table crm.customers is 'CRM customers';
             comment on column crm.customers.name is 'Full name';",
        )
        .expect("source table");
    }
    t.run(&["build"]).ok();
    let out = t.run(&["docs", "generate"]);
    out.ok();
    assert!(
        out.stdout.contains("index.html") && out.stdout.contains("4 relations"),
        "{}",
        out.stdout
    );
    t
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (name, index, type) of each column of a catalog entry, by index.
fn columns(entry: &Value) -> Vec<(String, i64, String)> {
    let mut out: Vec<(String, i64, String)> = entry["columns"]
        .as_object()
        .expect("columns")
        .iter()
        .map(|(k, c)| {
            assert_eq!(c["name"].as_str(), Some(k.as_str()), "{c}");
            let t = c["type"].as_str().expect("type").to_string();
            (k.clone(), c["index"].as_i64().expect("index"), t)
        })
        .collect();
    out.sort_by_key(|c| c.1);
    out
}

fn cols(list: &[(&str, i64, &str)]) -> Vec<(String, i64, String)> {
    list.iter()
        .map(|(n, i, t)| (n.to_string(), *i, t.to_string()))
        .collect()
}

#[test]
fn generate_writes_the_catalog_and_a_self_contained_page() {
    let t = shop();
    let target = t.path().join("target");
    let catalog = read_json(&target.join("catalog.json"));
    let meta = &catalog["metadata"];
    assert_eq!(
        meta["dbt_schema_version"],
        "https://schemas.getdbt.com/dbt/catalog/v1.json"
    );
    assert!(meta["dbt_version"].is_string() && meta["generated_at"].is_string());
    assert_eq!(meta["invocation_id"].as_str().map(str::len), Some(36));
    assert!(catalog["errors"].is_null());

    let nodes = catalog["nodes"].as_object().expect("nodes");
    let mut ids: Vec<&str> = nodes.keys().map(String::as_str).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "model.shop.orders",
            "model.shop.stg_orders",
            "seed.shop.raw_orders"
        ],
        "tests and lakeflow's own tables are not relations of the project"
    );
    let orders = &nodes["model.shop.orders"];
    assert_eq!(orders["unique_id"], "model.shop.orders");
    assert_eq!(orders["metadata"]["type"], "BASE TABLE");
    assert_eq!(orders["metadata"]["schema"], "main");
    assert_eq!(orders["metadata"]["name"], "orders");
    assert_eq!(orders["metadata"]["database"], "shop");
    assert!(orders["metadata"]["comment"].is_null() && orders["metadata"]["owner"].is_null());
    assert_eq!(orders["stats"]["has_stats"]["value"], false);
    assert_eq!(
        columns(orders),
        cols(&[
            ("id", 1, "INTEGER"),
            ("customer_id", 2, "INTEGER"),
            ("customer_name", 3, "VARCHAR"),
            ("AMOUNT_USD", 4, "DOUBLE"),
        ]),
        "columns keyed as DuckDB stores them, 1-based, with DuckDB's type names"
    );
    let stg = &nodes["model.shop.stg_orders"];
    assert_eq!(stg["metadata"]["type"], "VIEW");
    assert_eq!(
        columns(stg),
        cols(&[
            ("id", 1, "INTEGER"),
            ("customer_id", 2, "INTEGER"),
            ("amount", 3, "DOUBLE"),
        ])
    );
    assert_eq!(
        nodes["seed.shop.raw_orders"]["metadata"]["type"],
        "BASE TABLE"
    );

    let sources = catalog["sources"].as_object().expect("sources");
    assert_eq!(sources.len(), 1, "{sources:?}");
    let customers = &sources["source.shop.crm.customers"];
    assert_eq!(customers["metadata"]["type"], "BASE TABLE");
    assert_eq!(customers["metadata"]["schema"], "crm");
    assert_eq!(customers["metadata"]["comment"], "CRM customers");
    assert_eq!(customers["columns"]["name"]["comment"], "Full name");
    assert!(customers["columns"]["id"]["comment"].is_null());

    // The page: the template with the data in its data tag, no markup in the data.
    let page = std::fs::read_to_string(target.join("index.html")).expect("index.html");
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/docs/index.html"),
    )
    .expect("template");
    assert!(!page.contains("__LAKEFLOW_DOCS_DATA__"));
    assert_eq!(
        page.matches("</script").count(),
        template.matches("</script").count(),
        "the data must not close a script tag"
    );
    assert!(!page.contains(HOSTILE));
    assert!(page.contains(r"Not markup: \u003c/script>\u003c!-- \u003cscript>"));
    let open = r#"<script id="lakeflow-data" type="application/json">"#;
    let start = page.find(open).expect("data tag") + open.len();
    let len = page[start..]
        .find("</script>")
        .expect("end of the data tag");
    let data: Value = serde_json::from_str(&page[start..start + len]).expect("data is JSON");
    assert_eq!(data["catalog"], catalog);
    assert_eq!(
        data["manifest"]["nodes"]["model.shop.orders"]["description"],
        HOSTILE
    );
    assert!(data["manifest"].get("macros").is_none());
    assert!(
        data["run_results"]["results"].is_array(),
        "the build's results"
    );
    assert!(data["generated_at"].is_string());
}

#[test]
fn the_page_works_in_a_browser() {
    let t = shop();
    let page = t.path().join("target/index.html");
    browser_check(
        "docs.mjs",
        &[&page.to_string_lossy(), "orders", "stg_orders"],
        10 * 1024,
    );
}

/// The server, killed when the test ends (passing or not).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `request` as it is and returns (status, headers, body).
fn http(port: u16, request: &str) -> (u16, String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("send");
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).expect("read the reply");
    let end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers: {}", String::from_utf8_lossy(&reply)));
    let head = String::from_utf8_lossy(&reply[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head}"));
    (status, head, reply[end + 4..].to_vec())
}

fn get(port: u16, path: &str) -> (u16, String, Vec<u8>) {
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    )
}

#[test]
fn serve_serves_target_read_only() {
    let t = shop();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut server = Server(
        t.command(&["docs", "serve", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lakeflow docs serve"),
    );
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = server.0.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = server.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("docs serve exited ({status}) before serving:\n{err}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "docs serve does not answer on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let target = t.path().join("target");
    let (status, head, body) = get(port, "/");
    assert_eq!(status, 200, "{head}");
    assert_eq!(
        body,
        std::fs::read(target.join("index.html")).expect("page")
    );
    for header in [
        "Content-Type: text/html; charset=utf-8",
        "Cache-Control: no-store",
        "Connection: close",
    ] {
        assert!(head.contains(header), "{head}");
    }
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );

    let (status, head, body) = get(port, "/manifest.json");
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("Content-Type: application/json"), "{head}");
    let manifest: Value = serde_json::from_slice(&body).expect("JSON");
    assert!(manifest["nodes"]["model.shop.orders"].is_object());

    let (status, head, body) = http(port, "HEAD /catalog.json HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200, "{head}");
    assert!(body.is_empty());
    let size = std::fs::metadata(target.join("catalog.json"))
        .expect("catalog")
        .len();
    assert!(head.contains(&format!("Content-Length: {size}")), "{head}");

    // Nothing outside target/ is served, however the path is spelled.
    let project_file = std::fs::read(t.path().join("dbt_project.yml")).expect("project file");
    for path in [
        "/../dbt_project.yml",
        "/%2e%2e/dbt_project.yml",
        "/%2E%2E%2Fdbt_project.yml",
        "/compiled/../../dbt_project.yml",
        "//etc/passwd",
        "/%2e%2e/x",
        "/nothing.json",
        "/compiled",
    ] {
        let (status, head, body) = get(port, path);
        assert!(status == 404 || status == 400, "{path}: {head}");
        assert_ne!(body, project_file, "{path}");
        assert!(!String::from_utf8_lossy(&body).contains("root:"), "{path}");
    }

    let (status, head, _) = http(
        port,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_eq!(status, 405, "{head}");
    assert!(head.contains("Allow: GET, HEAD"), "{head}");
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(http(port, &big).0, 431);
    assert_eq!(http(port, "nonsense\r\n\r\n").0, 400);
}

#[test]
fn serve_without_a_page_says_to_generate_it() {
    let t = TestProject::new(&[("models/a.sql", "select 1 as x")]);
    let out = run_bounded(
        &t,
        &["docs", "serve", "--port", "0"],
        Duration::from_secs(60),
    );
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("LF711") && out.stderr.contains("docs generate"),
        "{}",
        out.stderr
    );
}
