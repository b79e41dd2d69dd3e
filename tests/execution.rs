//! Running: failures skip only their descendants; one writer per catalog; a killed build
//! leaves the previous outputs readable.

mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn failed_model_skips_descendants_and_independent_models_still_run() {
    let t = TestProject::new(&[
        (
            "lakeflow.yml",
            "name: proj\nprofile: proj\nmodels:\n  proj:\n    +materialized: external\n",
        ),
        ("models/bronze/good.sql", "select 1 as id"),
        ("models/bronze/bad.sql", "select cast('x' as integer) as id"),
        (
            "models/silver/after_bad.sql",
            "select * from {{ ref('bad') }}",
        ),
        (
            "models/gold/after_after_bad.sql",
            "select * from {{ ref('after_bad') }}",
        ),
        (
            "models/silver/after_good.sql",
            "select * from {{ ref('good') }}",
        ),
        (
            "models/gold/both.sql",
            "select * from {{ ref('good') }} union all select * from {{ ref('after_bad') }}",
        ),
    ]);
    let run = t.run(&["build"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("2 succeeded, 1 failed, 3 skipped"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Conversion Error"),
        "the DuckDB error is shown:\n{}",
        run.stdout
    );
    assert!(t.lake("dev/silver/after_good.parquet").is_file());
    assert!(!t.lake("dev/silver/after_bad.parquet").exists());

    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(t.path().join("target/run_results.json")).unwrap(),
    )
    .unwrap();
    let status_of = |name: &str| {
        results["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["unique_id"] == format!("model.proj.{name}"))
            .map(|r| r["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(status_of("bad"), "error");
    assert_eq!(status_of("after_bad"), "skipped");
    assert_eq!(status_of("after_after_bad"), "skipped");
    assert_eq!(status_of("both"), "skipped");
    assert_eq!(status_of("good"), "success");
}

#[test]
fn json_log_format_prints_one_event_per_model() {
    let t = TestProject::new(&[
        (
            "models/a.sql",
            "{{ config(materialized='table') }} select * from range(5)",
        ),
        ("models/b.sql", "select * from {{ ref('a') }}"),
    ]);
    let run = t.run(&["run", "--log-format", "json"]);
    run.ok();
    let events: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["name"], "a");
    assert_eq!(events[0]["rows"], 5);
    assert_eq!(events[1]["name"], "b");
    assert_eq!(events[2]["event"], "run_finished");
}

/// Under `--log-format json` warnings and notes are events in the JSON stream (every stdout
/// line parses), not text lines; in text mode they stay `warning: ...` on stderr.
#[test]
fn json_log_format_carries_warnings_and_notes_as_events() {
    let t = TestProject::new(&[
        ("models/a.sql", "select 1 as id"),
        ("models/b.sql", "select * from {{ ref('a') }}"),
        (
            "models/schema.yml",
            "version: 2\nmodels:\n  - name: b\n    columns:\n      - name: id\n        data_tests:\n          - relationships:\n              to: ref('a')\n              field: id\n",
        ),
    ]);
    let run = t.run(&[
        "build",
        "-s",
        "b",
        "nothing_is_named_this",
        "--log-format",
        "json",
    ]);
    let events: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let of = |kind: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["event"] == kind)
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        of("warning"),
        vec!["the selector 'nothing_is_named_this' matches no model".to_string()],
        "{}",
        run.stdout
    );
    assert_eq!(of("note").len(), 1, "{}", run.stdout);
    assert!(of("note")[0].contains("is left out: it reads 'a'"));
    assert!(!run.stderr.contains("warning:"), "{}", run.stderr);

    let text = t.run(&["build", "-s", "b", "nothing_is_named_this"]);
    assert!(
        text.stderr
            .contains("warning: the selector 'nothing_is_named_this' matches no model"),
        "{}",
        text.stderr
    );
}

#[test]
fn unselected_upstream_that_was_never_built_is_a_clear_error() {
    let t = TestProject::new(&[
        ("models/a.sql", "select 1 as id"),
        ("models/b.sql", "select * from {{ ref('a') }}"),
    ]);
    let run = t.run(&["run", "-s", "b"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .contains("upstream model 'a' is not selected and has never been built"),
        "{}",
        run.stdout
    );
    t.run(&["run"]).ok();
    t.run(&["run", "-s", "b"]).ok();
}

/// A slow model is killed mid-write; meanwhile a second build is refused.
#[test]
fn killed_build_keeps_previous_outputs_and_second_writer_is_refused() {
    let t = TestProject::new(&[
        (
            "lakeflow.yml",
            "name: proj\nprofile: proj\nmodels:\n  proj:\n    +materialized: external\n",
        ),
        (
            "models/silver/big.sql",
            "select range as id from range(1000)",
        ),
        (
            "models/gold/part.sql",
            "{{ config(partition_by=['k']) }} select range % 3 as k, range as id from range(30)",
        ),
    ]);
    t.run(&["build"]).ok();
    let file = t.lake("dev/silver/big.parquet");
    let before = std::fs::read(&file).unwrap();

    t.write(
        "models/silver/big.sql",
        "select range as id, repeat(md5(range::varchar), 20) as pad from range(3000000000)",
    );
    t.write(
        "models/gold/part.sql",
        "{{ config(partition_by=['k']) }} select range % 3 as k, range as id, repeat(md5(range::varchar), 20) as pad from range(3000000000)",
    );
    let mut child = t
        .command(&["build"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lake_silver = t.lake("dev/silver");
    let started = Instant::now();
    let writing = || {
        std::fs::read_dir(&lake_silver).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".lf-tmp-")
        })
    };
    while !writing() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the slow build never started writing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let second = t.run(&["build"]);
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert!(
        second.stderr.contains("is being written by pid"),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains("lakeflow build"),
        "{}",
        second.stderr
    );

    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();

    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "the previous file is intact"
    );
    let catalog = read_only(&t.catalog());
    assert_eq!(query_i64(&catalog, "select count(*) from silver.big"), 1000);
    assert_eq!(query_i64(&catalog, "select count(*) from gold.part"), 30);
    drop(catalog);

    // The next build cleans the leftovers and succeeds.
    t.write("models/silver/big.sql", "select range as id from range(7)");
    t.write(
        "models/gold/part.sql",
        "{{ config(partition_by=['k']) }} select range % 3 as k, range as id from range(9)",
    );
    t.run(&["build"]).ok();
    let leftovers = std::fs::read_dir(&lake_silver)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".lf-tmp-")
        })
        .count();
    assert_eq!(leftovers, 0);
    let catalog = read_only(&t.catalog());
    assert_eq!(query_i64(&catalog, "select count(*) from silver.big"), 7);
    assert_eq!(query_i64(&catalog, "select count(*) from gold.part"), 9);
}

#[test]
fn a_model_can_change_its_materialization_between_runs() {
    let t = TestProject::new(&[("models/silver/m.sql", "select 1 as x")]);
    t.run(&["run"]).ok();
    for (config, x, kind) in [
        ("materialized='table'", 2, "BASE TABLE"),
        ("materialized='external'", 3, "VIEW"),
        ("materialized='table'", 4, "BASE TABLE"),
        ("materialized='view'", 5, "VIEW"),
    ] {
        t.write(
            "models/silver/m.sql",
            &format!("{{{{ config({config}) }}}}\nselect {x} as x"),
        );
        t.run(&["run"]).ok();
        let c = read_only(&t.catalog());
        assert_eq!(query_i64(&c, "select x from silver.m"), x, "{config}");
        assert_eq!(
            query_strings(
                &c,
                "select table_type from information_schema.tables where table_name = 'm'"
            ),
            vec![kind],
            "{config}"
        );
    }
}

#[test]
fn pre_and_post_hooks_run_around_the_model_in_config_order() {
    let t = TestProject::new(&[
        (
            "lakeflow.yml",
            "name: proj\nprofile: proj\nmodels:\n  proj:\n    +materialized: table\n    +pre-hook: \"create table if not exists main.audit (model varchar, n bigint, step varchar)\"\n",
        ),
        (
            "models/orders.sql",
            "{{ config(post_hook=[\"insert into main.audit select '{{ this.identifier }}', count(*), 'post' from {{ this }}\"]) }}\nselect range as id from range(7)",
        ),
        (
            "models/broken.sql",
            // After orders (not beside it): two pre-hooks creating one table at once conflict.
            "{{ config(post_hook=\"insert into main.nope values (1)\") }}\nselect id from {{ ref('orders') }}",
        ),
    ]);
    let run = t.run(&["build"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("post-hook failed") && run.stdout.contains("main.nope"),
        "{}",
        run.stdout
    );
    let c = read_only(&t.catalog());
    assert_eq!(
        query_strings(
            &c,
            "select model || ':' || n || ':' || step from main.audit"
        ),
        vec!["orders:7:post"],
        "the pre-hook made the table, the post-hook saw the built model"
    );
}

#[test]
fn on_run_start_and_end_run_around_the_build() {
    let t = TestProject::new(&[
        (
            "lakeflow.yml",
            "name: proj\nprofile: proj\non-run-start:\n  - \"create table if not exists main.run_log (step varchar, n bigint)\"\non-run-end: \"{{ log_run('end') }}\"\n",
        ),
        (
            "macros/log_run.sql",
            "{% macro log_run(step) %}insert into main.run_log select '{{ step }}', count(*) from main.orders{% endmacro %}",
        ),
        (
            "models/orders.sql",
            "{{ config(materialized='table') }} select range as id from range(3)",
        ),
    ]);
    t.run(&["build"]).ok();
    t.run(&["build"]).ok();
    let c = read_only(&t.catalog());
    assert_eq!(
        query_strings(
            &c,
            "select string_agg(step || ':' || n, ' ') from main.run_log"
        ),
        vec!["end:3 end:3"]
    );
    drop(c);
    t.write(
        "lakeflow.yml",
        "name: proj\nprofile: proj\non-run-start: \"select * from main.nope\"\n",
    );
    let run = t.run(&["build"]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr.contains("on-run-start failed") && run.stderr.contains("main.nope"),
        "{}",
        run.stderr
    );
}

#[test]
fn models_never_take_over_folders_or_files_lakeflow_did_not_write() {
    let t = TestProject::new(&[
        (
            "models/gold/parts.sql",
            "{{ config(materialized='external', partition_by='k') }} select range as id, range % 2 as k from range(6)",
        ),
        (
            "models/gold/appended.sql",
            "{{ config(materialized='incremental', format='parquet') }} select range as id from range(3)",
        ),
        (
            "models/gold/single.sql",
            "{{ config(materialized='external') }} select 1 as x",
        ),
    ]);
    let theirs = [
        t.lake("dev/gold/parts/keep.csv"),
        t.lake("dev/gold/appended.parquet/keep.csv"),
        t.lake("dev/gold/single.parquet"),
    ];
    for f in &theirs {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, format!("kept by a user: {}", f.display())).unwrap();
    }
    for _ in 0..2 {
        let run = t.run(&["build"]);
        assert_eq!(run.code, 1, "{}", run.stdout);
        let out = format!("{}{}", run.stdout, run.stderr);
        for (path, _) in [
            (t.lake("dev/gold/parts"), "LF517"),
            (t.lake("dev/gold/appended.parquet"), "LF517"),
            (t.lake("dev/gold/single.parquet"), "LF518"),
        ] {
            assert!(out.contains(&path.display().to_string()), "{out}");
        }
        assert!(out.contains("lakeflow did not write"), "{out}");
        assert!(out.contains("move"), "{out}");
    }
    for f in &theirs {
        assert_eq!(
            std::fs::read_to_string(f).unwrap(),
            format!("kept by a user: {}", f.display())
        );
    }
    let gold: Vec<String> = std::fs::read_dir(t.lake("dev/gold"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !gold.iter().any(|n| n.contains(".lf-")),
        "nothing written beside them: {gold:?}"
    );
    // Moved away, the models build, and rebuild over their own outputs.
    std::fs::remove_dir_all(t.lake("dev/gold/parts")).unwrap();
    std::fs::remove_dir_all(t.lake("dev/gold/appended.parquet")).unwrap();
    std::fs::remove_file(t.lake("dev/gold/single.parquet")).unwrap();
    for _ in 0..3 {
        t.run(&["build"]).ok();
    }
    let c = read_only(&t.catalog());
    assert_eq!(query_i64(&c, "select count(*) from gold.parts"), 6);
    // Three builds, three rows appended by each.
    assert_eq!(query_i64(&c, "select count(*) from gold.appended"), 9);
}

/// Settings DuckDB keeps per connection (profiling) are passed through as dbt-duckdb does:
/// every connection that runs a model sets them, so the profile of the last query is written.
#[test]
fn per_connection_duckdb_settings_reach_every_worker() {
    let t = TestProject::new(&[(
        "models/a.sql",
        "{{ config(materialized='table') }} select current_setting('enable_profiling') as p, current_setting('profile_output') as o",
    )]);
    let profile = t.path().join("profile.json");
    t.write(
        "profiles.yml",
        &format!(
            "proj:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: catalog.duckdb\n      external_root: lake\n      threads: 2\n      settings:\n        enable_profiling: json\n        profile_output: '{}'\n        memory_limit: 1GB\n",
            profile.display()
        ),
    );
    t.run(&["run"]).ok();
    let text = std::fs::read_to_string(&profile).expect("DuckDB wrote the profile");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("a JSON profile");
    assert!(doc.is_object(), "{text}");
    // The model ran on a worker connection, which had them set too.
    let conn = read_only(&t.catalog());
    assert_eq!(
        query_strings(&conn, "select p || ' ' || o from a"),
        [format!("json {}", profile.display())]
    );
    drop(conn);

    t.write(
        "profiles.yml",
        "proj:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: catalog.duckdb\n      external_root: lake\n      settings:\n        enable_profiling: sideways\n",
    );
    let run = t.run(&["run"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("error[LF401]: invalid DuckDB setting enable_profiling = 'sideways'"),
        "{}",
        run.stderr
    );
}

/// As dbt's queue: of the nodes ready to start, the shallowest go first, ties by unique_id
/// (with one thread, the results come in exactly that order).
#[test]
fn nodes_ready_together_start_by_depth_then_unique_id() {
    let t = TestProject::new(&[
        (
            "models/c.sql",
            "{{ config(materialized='table') }} select 1 as x",
        ),
        (
            "models/e.sql",
            "{{ config(materialized='table') }} select * from {{ ref('c') }}",
        ),
        (
            "models/a.sql",
            "{{ config(materialized='table') }} select 1 as x",
        ),
        (
            "models/d.sql",
            "{{ config(materialized='table') }} select * from {{ ref('a') }}",
        ),
        (
            "models/b.sql",
            "{{ config(materialized='table') }} select 1 as x",
        ),
    ]);
    t.run(&["build", "--threads", "1"]).ok();
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(t.path().join("target/run_results.json")).expect("results"),
    )
    .expect("json");
    let order: Vec<&str> = doc["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["unique_id"].as_str())
        .collect();
    assert_eq!(
        order,
        [
            "model.proj.a",
            "model.proj.b",
            "model.proj.c",
            "model.proj.d",
            "model.proj.e"
        ]
    );
}

/// As dbt: a failing test on a source skips the models that read the source (and what is
/// below them); models that do not read it still run.
#[test]
fn a_failing_source_test_skips_the_models_that_read_the_source() {
    let t = TestProject::new(&[
        (
            "models/sources.yml",
            "version: 2\nsources:\n  - name: raw\n    tables:\n      - name: events\n        meta: {external_location: \"read_csv('events.csv', header = true)\"}\n        columns:\n          - name: id\n            data_tests: [not_null]\n",
        ),
        ("events.csv", "id,v\n1,a\n,b\n"),
        (
            "models/reads.sql",
            "select * from {{ source('raw', 'events') }}",
        ),
        ("models/below.sql", "select * from {{ ref('reads') }}"),
        ("models/other.sql", "select 1 as x"),
    ]);
    let run = t.run(&["build"]);
    assert_ne!(run.code, 0);
    let status = |id: &str| t.status_of(id);
    assert_eq!(status("test.proj.source_not_null_raw_events_id"), "fail");
    assert_eq!(status("model.proj.reads"), "skipped");
    assert_eq!(status("model.proj.below"), "skipped");
    assert_eq!(status("model.proj.other"), "success");
}
