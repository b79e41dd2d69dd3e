//! The artifacts in dbt's schemas: a project with seeds, models, data and unit tests, a
//! snapshot, a source with freshness and an exposure is built, its freshness checked and its
//! docs generated; `manifest.json` (v12), `run_results.json` (v6), `sources.json` (v3) and
//! `catalog.json` (v1) must load with dbt-artifacts-parser, the package tools use to read
//! them, and say what dbt would (parent and child maps, checksums, unit tests in their own
//! section).

mod common;
use common::*;

#[test]
fn artifacts_load_with_dbt_artifacts_parser() {
    let t = TestProject::dbt(
        "name: shop\nversion: '1.0'\nconfig-version: 2\nprofile: shop\n",
        "shop:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: shop.duckdb, threads: 2}\n",
    );
    t.write(
        "seeds/raw_orders.csv",
        "id,amount,updated_at\n1,10,2024-01-01\n2,20,2024-01-02\n",
    );
    t.write(
        "macros/cents.sql",
        "{% macro cents(col) %}({{ col }} * 100){% endmacro %}\n",
    );
    t.write(
        "models/orders.sql",
        "select id, {{ cents('amount') }} as amount_cents from {{ ref('raw_orders') }}\n",
    );
    t.write(
        "models/schema.yml",
        "version: 2\nsources:\n  - name: raw\n    schema: main\n    loaded_at_field: updated_at::timestamp\n    freshness: {warn_after: {count: 1, period: day}}\n    tables:\n      - name: raw_orders\nmodels:\n  - name: orders\n    description: Orders.\n    columns:\n      - name: id\n        data_tests: [not_null]\nunit_tests:\n  - name: cents_are_hundredths\n    model: orders\n    given:\n      - input: ref('raw_orders')\n        rows: [{id: 1, amount: 2}]\n    expect:\n      rows: [{id: 1, amount_cents: 200}]\nexposures:\n  - name: board\n    type: dashboard\n    owner: {name: ops}\n    depends_on: [ref('orders')]\n",
    );
    t.write(
        "models/semantic.yml",
        "version: 2\ngroups:\n  - name: finance\n    owner: {name: Fin, email: fin@x.com}\nsemantic_models:\n  - name: orders_sm\n    model: ref('orders')\n    entities: [{name: id, type: primary}]\n    measures: [{name: cents, agg: sum, expr: amount_cents}]\nmetrics:\n  - name: revenue\n    label: Revenue\n    type: simple\n    type_params: {measure: cents}\nsaved_queries:\n  - name: rev_q\n    query_params: {metrics: [revenue]}\n",
    );
    t.write(
        "analyses/revenue.sql",
        "select sum(amount_cents) from {{ ref('orders') }}\n",
    );
    t.write(
        "snapshots/orders_snap.sql",
        "{% snapshot orders_snap %}\n{{ config(unique_key='id', strategy='check', check_cols='all', target_schema='main') }}\nselect * from {{ ref('raw_orders') }}\n{% endsnapshot %}\n",
    );
    t.run(&["build"]).ok();
    let fresh = t.run(&["source", "freshness"]);
    assert_eq!(fresh.code, 0, "warn only: {}", fresh.stdout);
    // docs generate compiles (rewriting the manifest) and writes the catalog.
    let run_results = std::fs::read(t.path().join("target/run_results.json")).expect("results");
    t.run(&["docs", "generate"]).ok();
    std::fs::write(t.path().join("target/run_results.json"), run_results).expect("keep");
    let out = python(
        r#"
import json, sys
from dbt_artifacts_parser import parser
d = sys.argv[1]
load = lambda n: json.load(open(f"{d}/{n}"))
m = parser.parse_manifest(load("manifest.json"))
r = parser.parse_run_results(load("run_results.json"))
s = parser.parse_sources(load("sources.json"))
c = parser.parse_catalog(load("catalog.json"))
print(type(m).__name__, type(r).__name__, type(s).__name__, type(c).__name__)
raw = load("manifest.json")
print(sorted(raw["unit_tests"]))
print(raw["child_map"]["model.shop.orders"])
print(raw["parent_map"]["exposure.shop.board"])
print(raw["nodes"]["model.shop.orders"]["depends_on"]["macros"])
print(raw["nodes"]["model.shop.orders"]["checksum"]["name"])
print(sorted(x.unique_id for x in r.results if x.status.value in ("success", "pass")))
print(raw["parent_map"]["analysis.shop.revenue"], raw["nodes"]["analysis.shop.revenue"]["path"])
print(sorted(list(raw["metrics"]) + list(raw["semantic_models"]) + list(raw["saved_queries"]) + list(raw["groups"])), raw["parent_map"]["semantic_model.shop.orders_sm"])
"#,
        &[&t.path().join("target").to_string_lossy()],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "ManifestV12 RunResultsV6 SourcesV3 CatalogV1",
        "{out}"
    );
    assert_eq!(
        lines[1], "['unit_test.shop.orders.cents_are_hundredths']",
        "{out}"
    );
    assert_eq!(
        lines[2],
        "['analysis.shop.revenue', 'exposure.shop.board', 'semantic_model.shop.orders_sm', 'test.shop.not_null_orders_id.84ef11d8fe', 'unit_test.shop.orders.cents_are_hundredths']",
        "{out}"
    );
    assert_eq!(lines[3], "['model.shop.orders']", "{out}");
    assert_eq!(lines[4], "['macro.shop.cents']", "{out}");
    assert_eq!(lines[5], "sha256", "{out}");
    assert!(
        lines[6].contains("'unit_test.shop.orders.cents_are_hundredths'"),
        "{out}"
    );
    assert!(lines[6].contains("'snapshot.shop.orders_snap'"), "{out}");
    assert_eq!(
        lines[7], "['model.shop.orders'] analysis/revenue.sql",
        "{out}"
    );
    assert_eq!(
        lines[8],
        "['group.shop.finance', 'metric.shop.revenue', 'saved_query.shop.rev_q', 'semantic_model.shop.orders_sm'] ['model.shop.orders']",
        "{out}"
    );
}
