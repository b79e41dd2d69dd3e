//! Bad input: a clear, located error, exit code 2, and nothing built is touched.

mod common;
use common::*;

fn built() -> TestProject {
    let t = TestProject::new(&[
        (
            "lakeflow.yml",
            "name: proj\nprofile: proj\nmodels:\n  proj:\n    +materialized: external\n",
        ),
        (
            "models/bronze/orders.sql",
            "select range as id from range(10)",
        ),
        (
            "models/silver/orders_clean.sql",
            "select id * 2 as id2\nfrom {{ ref('orders') }}\n",
        ),
    ]);
    t.run(&["build"]).ok();
    t
}

/// Runs a failing build and checks the outputs of the good build are unchanged and readable.
fn assert_refused(t: &TestProject, expect: &[&str]) -> String {
    let file = t.lake("dev/silver/orders_clean.parquet");
    let before = mtime(&file);
    let run = t.run(&["build"]);
    assert_eq!(
        run.code, 2,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    for e in expect {
        assert!(run.stderr.contains(e), "expected {e:?} in:\n{}", run.stderr);
    }
    assert_eq!(mtime(&file), before, "outputs must not be touched");
    let catalog = read_only(&t.catalog());
    assert_eq!(
        query_i64(&catalog, "select count(*) from silver.orders_clean"),
        10
    );
    run.stderr
}

#[test]
fn broken_yaml_names_file_and_line() {
    let t = built();
    t.write(
        "models/schema.yml",
        "version: 2\nmodels:\n  - name: orders\n    config: {materialized: table\n",
    );
    let err = assert_refused(&t, &["error[LF101]", "models/schema.yml:5"]);
    assert!(err.contains("help:"), "{err}");
}

#[test]
fn jinja_errors_name_file_and_line() {
    let t = built();
    t.write(
        "models/silver/orders_clean.sql",
        "select id * 2 as id2\nfrom {{ ref('orders') }}\nwhere {{ undefined_thing }} > 0\n",
    );
    assert_refused(
        &t,
        &[
            "error[LF202]",
            "models/silver/orders_clean.sql:3",
            "undefined_thing",
        ],
    );

    t.write(
        "models/silver/orders_clean.sql",
        "select 1\n{% if true %}\nfrom x\n",
    );
    assert_refused(&t, &["error[LF202]", "models/silver/orders_clean.sql"]);
}

#[test]
fn missing_ref_suggests_the_closest_names() {
    let t = built();
    t.write(
        "models/silver/orders_clean.sql",
        "select 1 as id2\n-- typo below\nfrom {{ ref('order') }}\n",
    );
    assert_refused(
        &t,
        &[
            "error[LF203]",
            "models/silver/orders_clean.sql:3",
            "'order'",
            "did you mean 'orders'",
        ],
    );
}

#[test]
fn cycle_prints_the_whole_cycle() {
    let t = built();
    t.write("models/silver/x.sql", "select * from {{ ref('y') }}");
    t.write("models/silver/y.sql", "select * from {{ ref('z') }}");
    t.write("models/silver/z.sql", "select * from {{ ref('x') }}");
    assert_refused(&t, &["error[LF301]", "x -> y -> z -> x"]);
}

#[test]
fn undefined_source_and_unknown_materialization() {
    let t = built();
    t.write(
        "models/silver/s.sql",
        "select * from {{ source('raw', 'nope') }}",
    );
    assert_refused(
        &t,
        &["source 'raw.nope' is not defined", "models/silver/s.sql:1"],
    );
    t.write(
        "models/silver/s.sql",
        "{{ config(materialized='snapshotz') }} select 1",
    );
    assert_refused(&t, &["error[LF205]", "unknown materialization 'snapshotz'"]);
}

#[test]
fn missing_profile_and_bad_vars() {
    let t = built();
    std::fs::remove_file(t.path().join("profiles.yml")).unwrap();
    let run = t
        .command(&["build"])
        .env("HOME", t.path())
        .output()
        .unwrap();
    let run = Run::from(run);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no profiles.yml found"),
        "{}",
        run.stderr
    );

    t.write("profiles.yml", PROFILE);
    let run = t.run(&["build", "--vars", "{a: [unclosed"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("--vars is not valid YAML"),
        "{}",
        run.stderr
    );
}
