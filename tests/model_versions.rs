//! Versioned models (`versions:` in a schema file): `ref('model')` reaches the latest
//! version, `ref('model', v=2)` / `version=2` the one asked for; each version is its own
//! node `model.<project>.<model>.v<v>` built as `<model>_v<v>`, and the model's name selects
//! all of them. What dbt-core 1.11 + dbt-duckdb 1.11 built from the same files.

mod common;
use common::*;

#[test]
fn refs_reach_the_latest_or_the_asked_for_version() {
    let t = TestProject::new(&[
        ("dbt_project.yml", "name: p\nversion: '1.0'\nprofile: p\n"),
        (
            "profiles.yml",
            "p:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: p.duckdb\n",
        ),
        ("models/dim_x_v1.sql", "select 1 as id, 'one' as label\n"),
        ("models/dim_x_v2.sql", "select 2 as id\n"),
        (
            "models/schema.yml",
            "version: 2\nmodels:\n  - name: dim_x\n    description: versioned\n    latest_version: 1\n    versions:\n      - v: 1\n      - v: 2\n",
        ),
        (
            "models/uses.sql",
            "select (select id from {{ ref('dim_x') }}) as latest_id, (select id from {{ ref('dim_x', v=2) }}) as v2_id, (select id from {{ ref('dim_x', version=1) }}) as v1_id\n",
        ),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    t.run(&["build"]).ok();
    let c = read_only(&t.path().join("p.duckdb"));
    assert_eq!(
        query_strings(
            &c,
            "select concat_ws(' ', latest_id, v2_id, v1_id) from main.uses"
        ),
        ["1 2 1"]
    );
    assert_eq!(
        query_strings(
            &c,
            "select table_name from information_schema.tables where table_schema = 'main' order by 1"
        ),
        ["dim_x_v1", "dim_x_v2", "uses"]
    );
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(t.path().join("target/manifest.json")).expect("manifest"),
    )
    .expect("json");
    let v1 = &manifest["nodes"]["model.p.dim_x.v1"];
    assert_eq!(v1["name"], "dim_x");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["latest_version"], 1);
    assert_eq!(v1["alias"], "dim_x_v1");
    assert_eq!(v1["fqn"], serde_json::json!(["p", "dim_x", "v1"]));
    assert_eq!(
        manifest["nodes"]["model.p.uses"]["depends_on"]["nodes"],
        serde_json::json!(["model.p.dim_x.v1", "model.p.dim_x.v2"])
    );
    let ls = t.run(&["ls", "-s", "dim_x"]);
    ls.ok();
    let mut listed: Vec<&str> = ls.stdout.lines().collect();
    listed.sort();
    assert_eq!(listed, ["p.dim_x.v1", "p.dim_x.v2"]);
}
