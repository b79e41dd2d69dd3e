//! Enforced model contracts (`contract: {enforced: true}`), checked as dbt-core 1.11 checks
//! them before a model is built.

mod common;
use common::*;

/// An enforced contract is checked before the model is built: a column whose type differs,
/// one the contract lacks, or one the query lacks is the model's error, in dbt's words and
/// table; a model that keeps its contract builds.
#[test]
fn enforced_contracts_fail_only_the_model_that_breaks_them() {
    let t = TestProject::new(&[
        ("dbt_project.yml", "name: p\nversion: '1.0'\nprofile: p\n"),
        (
            "profiles.yml",
            "p:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: p.duckdb\n",
        ),
        (
            "models/kept.sql",
            "{{ config(materialized='table') }}\nselect 1::bigint as id, 'a' as label\n",
        ),
        (
            "models/broken.sql",
            "{{ config(materialized='table') }}\nselect 1 as id, 'x' as extra\n",
        ),
        (
            "models/schema.yml",
            "version: 2\nmodels:\n  - name: kept\n    config:\n      contract: {enforced: true}\n    columns:\n      - name: id\n        data_type: bigint\n      - name: label\n        data_type: text\n  - name: broken\n    config:\n      contract: {enforced: true}\n    columns:\n      - name: id\n        data_type: bigint\n      - name: label\n        data_type: varchar\n",
        ),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    let run = t.run(&["build"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    for line in [
        "This model has an enforced contract that failed.",
        "| column_name | definition_type | contract_type | mismatch_reason       |",
        "| id          | INTEGER         | BIGINT        | data type mismatch    |",
        "| label       |                 | VARCHAR       | missing in definition |",
        "| extra       | VARCHAR         |               | missing in contract   |",
    ] {
        assert!(run.stdout.contains(line), "{line:?} in:\n{}", run.stdout);
    }
    let c = read_only(&t.path().join("p.duckdb"));
    assert_eq!(query_i64(&c, "select id from main.kept"), 1);
    assert_eq!(
        query_i64(
            &c,
            "select count(*) from information_schema.tables where table_name = 'broken'"
        ),
        0
    );
}
