//! init, debug, clean, the other external formats, and profile settings reaching DuckDB.

mod common;
use common::*;

#[test]
fn init_scaffolds_a_project_that_builds() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lakeflow"))
        .args(["init", "my_lake"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    Run::from(out).ok();
    let project = dir.path().join("my_lake");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lakeflow"))
        .arg("build")
        .current_dir(&project)
        .env_remove("LAKEFLOW_TARGET")
        .output()
        .unwrap();
    let run = Run::from(out);
    run.ok();
    assert!(run.stdout.contains("3 succeeded"), "{}", run.stdout);
    let c = read_only(&project.join("catalog/dev.duckdb"));
    // One of the four landed orders has a negative amount and is filtered out in silver.
    assert_eq!(query_i64(&c, "select count(*) from silver.orders_clean"), 3);
    assert_eq!(
        query_i64(&c, "select sum(orders)::bigint from gold.daily_revenue"),
        3
    );
    assert!(
        project
            .join("lake/dev/gold/daily_revenue.parquet")
            .is_file()
    );

    let again = std::process::Command::new(env!("CARGO_BIN_EXE_lakeflow"))
        .args(["init", "my_lake"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let again = Run::from(again);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
}

#[test]
fn debug_reports_each_check() {
    let t = TestProject::new(&[("models/a.sql", "select 1 as x")]);
    let run = t.run(&["debug"]);
    run.ok();
    for check in [
        "OK    project",
        "OK    profile",
        "OK    models: 1 models compile",
        "OK    catalog",
        "OK    external_root",
    ] {
        assert!(
            run.stdout.contains(check),
            "{check} missing in:\n{}",
            run.stdout
        );
    }
    t.write("models/b.sql", "select * from {{ ref('nope') }}");
    std::fs::remove_dir_all(t.path().join("lake")).unwrap();
    std::fs::write(
        t.path().join("lake"),
        "a file where the lake folder should be",
    )
    .unwrap();
    let run = t.run(&["debug"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("FAIL  models"), "{}", run.stdout);
    assert!(run.stdout.contains("FAIL  external_root"), "{}", run.stdout);
}

#[test]
fn clean_removes_target_only() {
    let t = TestProject::new(&[(
        "models/a.sql",
        "{{ config(materialized='external') }} select 1 as x",
    )]);
    t.run(&["build"]).ok();
    assert!(t.path().join("target/manifest.json").is_file());
    t.run(&["clean"]).ok();
    assert!(!t.path().join("target").exists());
    assert!(
        t.lake("dev/a.parquet").is_file(),
        "clean never touches the lake"
    );
}

#[test]
fn csv_and_json_external_formats_round_trip() {
    let t = TestProject::new(&[
        (
            "models/as_csv.sql",
            "{{ config(materialized='external', format='csv', options={'delimiter': ';'}) }} select range as id, 'v' || range as v from range(4)",
        ),
        (
            "models/as_json.sql",
            "{{ config(materialized='external', format='json') }} select range as id from range(3)",
        ),
        (
            "models/reads_both.sql",
            "select (select count(*) from {{ ref('as_csv') }}) + (select count(*) from {{ ref('as_json') }}) as n",
        ),
    ]);
    t.run(&["build"]).ok();
    let csv = std::fs::read_to_string(t.lake("dev/as_csv.csv")).unwrap();
    assert!(csv.starts_with("id;v\n0;v0\n"), "{csv}");
    assert!(t.lake("dev/as_json.json").is_file());
    let c = read_only(&t.catalog());
    assert_eq!(query_i64(&c, "select n from main.reads_both"), 7);
}

#[test]
fn memory_limit_and_temp_directory_let_large_models_spill() {
    let t = TestProject::new(&[
        (
            "models/big_sort.sql",
            "{{ config(materialized='external') }} select range as id, md5(range::varchar) as h from range(6000000) order by h",
        ),
        (
            "models/settings_seen.sql",
            "{{ config(materialized='table') }} select current_setting('memory_limit') as mem, current_setting('temp_directory') as tmp",
        ),
    ]);
    t.write(
        "profiles.yml",
        "proj:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: catalog.duckdb\n      external_root: lake\n      settings:\n        memory_limit: 100MB\n        temp_directory: spill\n        preserve_insertion_order: false\n",
    );
    // Run from elsewhere: a relative temp_directory is still under the project.
    let out = t.command(&["build"]).current_dir("/").output().unwrap();
    Run::from(out).ok();
    let c = read_only(&t.catalog());
    assert_eq!(
        query_i64(&c, "select count(*) from main.big_sort"),
        6_000_000
    );
    let (mem, tmp): (String, String) = c
        .query_row("select mem, tmp from main.settings_seen", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(
        mem.starts_with("95.") || mem.starts_with("100"),
        "memory_limit reached DuckDB: {mem}"
    );
    assert_eq!(
        tmp,
        t.path().join("spill").to_string_lossy(),
        "temp_directory reached DuckDB"
    );
}

/// dbt's CI flags and environment: `--fail-fast` skips what has not started after the first
/// error, `--warn-error` makes a warning test fail, and `DBT_PROFILES_DIR` / `DBT_TARGET`
/// stand in for `--profiles-dir` / `--target`.
#[test]
fn fail_fast_warn_error_and_dbt_environment_variables() {
    let t = TestProject::new(&[
        ("dbt_project.yml", "name: p\nversion: '1.0'\nprofile: p\n"),
        (
            "prof/profiles.yml",
            "p:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: dev.duckdb\n    other:\n      type: duckdb\n      path: other.duckdb\n",
        ),
        ("models/z_bad.sql", "select * from no_such_table\n"),
        ("models/base.sql", "select null as x\n"),
        ("models/z_ok.sql", "select * from {{ ref('base') }}\n"),
        (
            "models/schema.yml",
            "version: 2\nmodels:\n  - name: z_ok\n    columns:\n      - name: x\n        data_tests:\n          - not_null:\n              config: {severity: warn}\n",
        ),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    let run = |args: &[&str]| {
        Run::from(
            t.command(args)
                .env("DBT_PROFILES_DIR", t.path().join("prof"))
                .env("DBT_TARGET", "other")
                .output()
                .expect("run"),
        )
    };
    // Without --fail-fast the independent model builds, into the DBT_TARGET's catalog.
    let r = run(&["run", "--threads", "1"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(t.path().join("other.duckdb").is_file());
    assert!(!t.path().join("dev.duckdb").exists());
    assert!(r.stdout.contains("OK    main.z_ok"), "{}", r.stdout);

    // With it, what waits behind the failure's run does not start.
    let r = run(&["run", "--threads", "1", "--fail-fast"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("SKIP  main.z_ok"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("skipped: --fail-fast after 'z_bad' did not succeed"),
        "{}",
        r.stdout
    );

    // The warning test warns; with --warn-error it fails.
    let r = run(&["test", "-s", "z_ok"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("WARN  test not_null_z_ok_x"),
        "{}",
        r.stdout
    );
    let r = run(&["test", "-s", "z_ok", "--warn-error"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("FAIL  test not_null_z_ok_x"),
        "{}",
        r.stdout
    );
}

/// `lakeflow run-operation` runs one macro against the catalog (its queries change it), with
/// `--args`; `lakeflow parse` writes the manifest without building anything.
#[test]
fn run_operation_and_parse() {
    let t = TestProject::new(&[
        ("dbt_project.yml", "name: p\nversion: '1.0'\nprofile: p\n"),
        (
            "profiles.yml",
            "p:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: p.duckdb\n",
        ),
        (
            "macros/ops.sql",
            "{% macro log_table(table, days=7) %}{% do run_query(\"create or replace table main.op_log as select '\" ~ table ~ \"' as t, \" ~ days ~ \" as d\") %}{{ log('logged ' ~ table, info=True) }}{% endmacro %}\n",
        ),
        ("models/m.sql", "select 1 as x\n"),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    let run = t.run(&["run-operation", "log_table", "--args", "{table: orders}"]);
    run.ok();
    assert!(
        format!("{}{}", run.stdout, run.stderr).contains("logged orders"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    let c = read_only(&t.path().join("p.duckdb"));
    assert_eq!(
        query_strings(&c, "select t || ' ' || d from main.op_log"),
        ["orders 7"]
    );
    drop(c);
    let run = t.run(&["run-operation", "no_such_macro"]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("no_such_macro"), "{}", run.stderr);

    let run = t.run(&["parse"]);
    run.ok();
    let manifest =
        std::fs::read_to_string(t.path().join("target/manifest.json")).expect("manifest");
    assert!(manifest.contains("\"model.p.m\""), "{manifest}");
    let c = read_only(&t.path().join("p.duckdb"));
    assert_eq!(
        query_i64(
            &c,
            "select count(*) from information_schema.tables where table_name = 'm'"
        ),
        0
    );
}

/// `--empty`: every model is built from refs and sources that read no rows, so the project's
/// SQL and columns are checked without the data (dbt's `--empty`).
#[test]
fn empty_builds_models_with_their_columns_and_no_rows() {
    let t = TestProject::new(&[
        ("dbt_project.yml", "name: p\nversion: '1.0'\nprofile: p\n"),
        (
            "profiles.yml",
            "p:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: p.duckdb\n",
        ),
        ("seeds/orders.csv", "id,amount\n1,10\n2,20\n"),
        (
            "models/m.sql",
            "{{ config(materialized='table') }}\nselect id, amount * 2 as doubled, {{ flags.EMPTY }} as was_empty from {{ ref('orders') }}\n",
        ),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    t.run(&["build", "--empty"]).ok();
    let c = read_only(&t.path().join("p.duckdb"));
    assert_eq!(query_i64(&c, "select count(*) from main.m"), 0);
    assert_eq!(
        query_strings(
            &c,
            "select string_agg(column_name, ',' order by ordinal_position) from information_schema.columns where table_name = 'm'"
        ),
        ["id,doubled,was_empty"]
    );
    // Seeds still load (they are not refs).
    assert_eq!(query_i64(&c, "select count(*) from main.orders"), 2);
    drop(c);
    t.run(&["build"]).ok();
    let c = read_only(&t.path().join("p.duckdb"));
    assert_eq!(query_i64(&c, "select count(*) from main.m"), 2);
}

/// `lakeflow show` prints a model's first rows, or those of inline SQL with refs, from the
/// catalog as it is; more than one model is a clear error.
#[test]
fn show_prints_a_models_or_inline_sqls_first_rows() {
    let t = TestProject::new(&[
        ("dbt_project.yml", "name: p\nversion: '1.0'\nprofile: p\n"),
        (
            "profiles.yml",
            "p:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: p.duckdb\n",
        ),
        ("seeds/orders.csv", "id,amount\n1,10\n2,20\n3,30\n"),
        (
            "models/big.sql",
            "select id, amount from {{ ref('orders') }} where amount > 15\n",
        ),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    t.run(&["seed"]).ok();
    let run = t.run(&["show", "-s", "big", "--format", "csv", "--limit", "1"]);
    run.ok();
    assert_eq!(run.stdout.trim(), "id,amount\n2,20", "{}", run.stdout);
    let run = t.run(&[
        "show",
        "--inline",
        "select sum(amount) as total from {{ ref('orders') }}",
        "--format",
        "csv",
    ]);
    run.ok();
    assert_eq!(run.stdout.trim(), "total\n60", "{}", run.stdout);
    let run = t.run(&["show", "-s", "orders", "big"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("error[LF305]"), "{}", run.stderr);
}

#[test]
fn compile_writes_the_compiled_folder_whole_then_rewrites_only_what_changed() {
    let t = TestProject::new(&[
        ("models/a.sql", "select 1 as x"),
        ("models/sub/b.sql", "select x from {{ ref('a') }}"),
    ]);
    t.run(&["compile"]).ok();
    let dir = t.path().join("target/compiled/proj/models");
    let a = dir.join("a.sql");
    let b = dir.join("sub/b.sql");
    assert_eq!(std::fs::read_to_string(&a).unwrap().trim(), "select 1 as x");
    assert!(
        std::fs::read_to_string(&b)
            .unwrap()
            .contains("from \"main\".\"a\"")
    );
    let stamp = |p: &std::path::Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let (a_before, b_before) = (stamp(&a), stamp(&b));
    std::thread::sleep(std::time::Duration::from_millis(20));
    t.write("models/a.sql", "select 2 as x");
    t.run(&["compile"]).ok();
    assert_eq!(std::fs::read_to_string(&a).unwrap().trim(), "select 2 as x");
    assert_ne!(stamp(&a), a_before, "the changed model's file is rewritten");
    assert_eq!(
        stamp(&b),
        b_before,
        "an unchanged model's file is left as it was"
    );
    let leftovers: Vec<_> = std::fs::read_dir(t.path().join("target/compiled"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "proj")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
