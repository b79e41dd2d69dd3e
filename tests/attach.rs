//! `attach:` in the profile, as dbt-duckdb has it: other DuckDB files attached to every
//! connection of the run, so models read (and tests check) their tables.

mod common;

use common::{TestProject, query_i64, read_only};

fn profile(attach: &str) -> String {
    format!(
        "proj:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: catalog.duckdb\n      external_root: lake\n      threads: 2\n      attach:\n{attach}"
    )
}

#[test]
fn attached_databases_are_readable_by_models_on_every_worker() {
    let t = TestProject::new(&[
        (
            "models/a.sql",
            "{{ config(materialized='table') }} select sum(v) as total from crm.main.accounts",
        ),
        (
            "models/b.sql",
            "{{ config(materialized='table') }} select count(*) as n from ledger.accounts",
        ),
    ]);
    let crm = t.path().join("data/crm.duckdb");
    std::fs::create_dir_all(crm.parent().expect("parent")).expect("mkdir");
    {
        let c = duckdb::Connection::open(&crm).expect("open crm");
        c.execute_batch(
            "create table accounts as select range as id, range * 2 as v from range(10)",
        )
        .expect("seed crm");
    }
    // A relative path is taken from the project folder; the second entry reads the same file
    // under its own alias, read-only.
    t.write(
        "profiles.yml",
        &profile(
            "        - path: data/crm.duckdb\n          read_only: true\n        - path: data/crm.duckdb\n          alias: ledger\n          read_only: true\n",
        ),
    );
    t.run(&["run"]).ok();
    let conn = read_only(&t.catalog());
    assert_eq!(query_i64(&conn, "select total from a"), 90);
    assert_eq!(query_i64(&conn, "select n from b"), 10);
}

#[test]
fn an_attach_entry_that_cannot_be_attached_is_a_located_error() {
    let t = TestProject::new(&[("models/a.sql", "select 1 as x")]);
    t.write(
        "profiles.yml",
        &profile("        - path: missing/nothing.duckdb\n          read_only: true\n"),
    );
    let run = t.run(&["run"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("error[LF408]: cannot attach"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("profiles.yml"), "{}", run.stderr);

    t.write("profiles.yml", &profile("        - alias: x\n"));
    let run = t.run(&["run"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("error[LF122]"), "{}", run.stderr);
}
