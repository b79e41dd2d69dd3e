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

/// Constraints of an enforced contract are DuckDB's: the table is created with them, as
/// dbt-duckdb creates it (the DDL below is what dbt-duckdb 1.11 left in its catalog for the
/// same files), and rows that break one fail the model, leaving the table it had.
#[test]
fn contract_constraints_are_enforced_as_dbt_duckdb_enforces_them() {
    let t = TestProject::dbt(
        "name: cons\nversion: '1.0'\nprofile: cons\n",
        "cons:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: cons.duckdb, threads: 1}\n",
    );
    t.write(
        "models/good.sql",
        "{{ config(materialized='table') }}\nselect {{ var('amount', 5) }} as amount, 1 as id, 'a' as code\n",
    );
    t.write(
        "models/bad_null.sql",
        "{{ config(materialized='table') }}\nselect cast(null as integer) as id, 1 as amount\n",
    );
    t.write(
        "models/schema.yml",
        "version: 2\nmodels:\n  - name: good\n    config: {contract: {enforced: true}}\n    constraints:\n      - type: unique\n        columns: [id, code]\n    columns:\n      - name: id\n        data_type: integer\n        constraints: [{type: not_null}, {type: primary_key}]\n      - name: amount\n        data_type: integer\n        constraints: [{type: check, expression: \"amount > 0\"}]\n      - name: code\n        data_type: varchar\n  - name: bad_null\n    config: {contract: {enforced: true}}\n    columns:\n      - name: id\n        data_type: integer\n        constraints: [{type: not_null}]\n      - name: amount\n        data_type: integer\n",
    );
    let first = t.run(&["run"]);
    assert_ne!(first.code, 0);
    assert!(
        first.stdout.contains("NOT NULL constraint failed"),
        "{}",
        first.stdout
    );
    let ddl = |t: &TestProject| {
        let c = read_only(&t.path().join("cons.duckdb"));
        query_strings(
            &c,
            "select sql || ' ' || (select count(*) from main.good) from duckdb_tables() where table_name = 'good'",
        )
    };
    assert_eq!(
        ddl(&t),
        [
            "CREATE TABLE good(id INTEGER PRIMARY KEY, amount INTEGER, code VARCHAR, CHECK((amount > 0)), UNIQUE(id, code)); 1"
        ]
    );
    // On a view DuckDB checks no constraint: the run says so, as dbt warns.
    t.write(
        "models/good.sql",
        "{{ config(materialized='view') }}\nselect 5 as amount, 1 as id, 'a' as code\n",
    );
    let view = t.run(&["run", "--select", "good"]);
    view.ok();
    assert!(
        view.stdout
            .contains("constraints are not enforced on a view"),
        "{}",
        view.stdout
    );
    t.write(
        "models/good.sql",
        "{{ config(materialized='table') }}\nselect {{ var('amount', 5) }} as amount, 1 as id, 'a' as code\n",
    );
    t.run(&["run", "--select", "good"]).ok();
    // A rebuild whose rows break the check fails, and the table stays as it was.
    let again = t.run(&["run", "--select", "good", "--vars", "{amount: -1}"]);
    assert_ne!(again.code, 0);
    assert!(
        again.stdout.contains("CHECK constraint failed"),
        "{}",
        again.stdout
    );
    assert_eq!(
        ddl(&t),
        [
            "CREATE TABLE good(id INTEGER PRIMARY KEY, amount INTEGER, code VARCHAR, CHECK((amount > 0)), UNIQUE(id, code)); 1"
        ]
    );
}
