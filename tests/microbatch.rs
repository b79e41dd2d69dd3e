//! Microbatch models, `incremental_predicates`, `merge_update_columns` /
//! `merge_exclude_columns` and the `full_refresh: false` config, as catalog tables (a dbt
//! project) and as Delta tables (the same models with `format='delta'`). The expected rows
//! are what dbt-duckdb 1.11 built from the same files and the same two runs.

mod common;
use common::*;

const FIRST: &str = "id,ts,v,w\n1,2024-01-01 10:00:00,a,1\n2,2024-01-02 11:00:00,b,2\n3,2024-01-03 12:00:00,c,3\n4,2024-01-04 13:00:00,d,4\n5,2024-01-05 14:00:00,e,5\n";
const SECOND: &str = "id,ts,v,w\n1,2024-01-01 10:00:00,A,10\n2,2024-01-02 11:00:00,B,20\n3,2024-01-03 12:00:00,C,30\n4,2024-01-04 13:00:00,D,40\n5,2024-01-05 14:00:00,E,50\n6,2024-01-05 15:00:00,F,60\n";

/// The models; `extra` goes into every incremental model's config (`, format='delta'`).
fn models(extra: &str) -> Vec<(String, String)> {
    let inc = |cfg: &str, body: &str| {
        format!("{{{{ config(materialized='incremental', {cfg}{extra}) }}}}\n{body}\n")
    };
    let all = "select id, ts, v, w from {{ source('landing', 'events') }}";
    vec![
        (
            "models/sources.yml".into(),
            "version: 2\nsources:\n  - name: landing\n    meta:\n      external_location: \"read_csv('landing/events.csv', header = true, columns = {'id': 'INTEGER', 'ts': 'TIMESTAMP', 'v': 'VARCHAR', 'w': 'INTEGER'})\"\n    tables:\n      - name: events\n        config: {event_time: ts}\n".into(),
        ),
        (
            "models/stg_events.sql".into(),
            "{{ config(materialized='view', event_time='ts') }}\nselect * from {{ source('landing', 'events') }}\n".into(),
        ),
        (
            "models/mb.sql".into(),
            inc(
                "incremental_strategy='microbatch', event_time='ts', batch_size='day', begin='2024-01-01', lookback=1",
                "select id, ts, v || '!' as v, w from {{ ref('stg_events') }}",
            ),
        ),
        (
            "models/mb_source.sql".into(),
            inc(
                "incremental_strategy='microbatch', event_time='ts', batch_size='day', begin='2024-01-01'",
                "select id, ts, lower(v) as v, w from {{ source('landing', 'events') }}",
            ),
        ),
        (
            "models/merged.sql".into(),
            inc(
                "incremental_strategy='merge', unique_key='id', merge_update_columns=['v']",
                all,
            ),
        ),
        (
            "models/merged_ex.sql".into(),
            inc(
                "incremental_strategy='merge', unique_key='id', merge_exclude_columns=['w'], incremental_predicates=['DBT_INTERNAL_DEST.id > 1']",
                all,
            ),
        ),
        (
            "models/delins.sql".into(),
            inc(
                "incremental_strategy='delete+insert', unique_key='id', incremental_predicates=['id > 2']",
                all,
            ),
        ),
        (
            "models/nofr.sql".into(),
            inc(
                "full_refresh=false",
                &format!(
                    "{all}\n{{% if is_incremental() %}} where id > (select max(id) from {{{{ this }}}}) {{% endif %}}"
                ),
            ),
        ),
    ]
}

fn rows(c: &duckdb::Connection, table: &str) -> String {
    query_strings(
        c,
        &format!(
            "select string_agg(id || ':' || v || ':' || w || ':' || strftime(ts, '%d'), ' ' order by id, v, w) from main.{table}"
        ),
    )
    .concat()
}

/// Two runs (the second over changed rows and a narrower window), then a full refresh of
/// `nofr`; the tables as dbt-duckdb left them.
fn two_runs_match_dbt(t: &TestProject, catalog: &str) {
    t.write("landing/events.csv", FIRST);
    t.run(&[
        "build",
        "--event-time-start",
        "2024-01-01",
        "--event-time-end",
        "2024-01-06",
    ])
    .ok();
    t.write("landing/events.csv", SECOND);
    let second = t.run(&[
        "build",
        "--event-time-start",
        "2024-01-03",
        "--event-time-end",
        "2024-01-05",
    ]);
    second.ok();
    assert!(
        second.stdout.contains("microbatch: 2 batches"),
        "{}",
        second.stdout
    );
    // run_results' `batch_results`, as dbt writes them.
    let results = t.run_results();
    let mb = results["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["unique_id"].as_str().is_some_and(|u| u.ends_with(".mb")))
        .expect("mb's result");
    assert_eq!(
        mb["batch_results"],
        serde_json::json!({"successful": [
            ["2024-01-03T00:00:00+00:00", "2024-01-04T00:00:00+00:00"],
            ["2024-01-04T00:00:00+00:00", "2024-01-05T00:00:00+00:00"]
        ], "failed": []})
    );
    t.run(&["build", "--full-refresh", "--select", "nofr"]).ok();
    let c = read_only(&t.path().join(catalog));
    // The second run rebuilt 01-03 and 01-04 only: row 5 keeps its first value, row 6
    // (01-05) is outside the window.
    assert_eq!(
        rows(&c, "mb"),
        "1:a!:1:01 2:b!:2:02 3:C!:30:03 4:D!:40:04 5:e!:5:05"
    );
    assert_eq!(
        rows(&c, "mb_source"),
        "1:a:1:01 2:b:2:02 3:c:30:03 4:d:40:04 5:e:5:05"
    );
    // merge_update_columns: a matched row takes only `v` from the new row.
    assert_eq!(
        rows(&c, "merged"),
        "1:A:1:01 2:B:2:02 3:C:3:03 4:D:4:04 5:E:5:05 6:F:60:05"
    );
    // merge_exclude_columns keeps `w`; the predicate leaves id 1 unmatched, so it is
    // inserted again beside the old row.
    assert_eq!(
        rows(&c, "merged_ex"),
        "1:A:10:01 1:a:1:01 2:B:2:02 3:C:3:03 4:D:4:04 5:E:5:05 6:F:60:05"
    );
    // delete+insert with `id > 2`: ids 1 and 2 are not deleted, so they appear twice.
    assert_eq!(
        rows(&c, "delins"),
        "1:A:10:01 1:a:1:01 2:B:20:02 2:b:2:02 3:C:30:03 4:D:40:04 5:E:50:05 6:F:60:05"
    );
    // full_refresh=false: --full-refresh did not rebuild it (the old values stay).
    assert_eq!(
        rows(&c, "nofr"),
        "1:a:1:01 2:b:2:02 3:c:3:03 4:d:4:04 5:e:5:05 6:F:60:05"
    );
}

#[test]
fn catalog_tables_match_dbt_duckdb() {
    let t = TestProject::dbt(
        "name: mb\nversion: '1.0'\nconfig-version: 2\nprofile: mb\n",
        "mb:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: mb.duckdb, threads: 2}\n",
    );
    for (path, text) in models("") {
        t.write(&path, &text);
    }
    two_runs_match_dbt(&t, "mb.duckdb");
    let c = read_only(&t.path().join("mb.duckdb"));
    assert_eq!(
        query_i64(
            &c,
            "select count(*) from duckdb_tables() where table_name in ('mb', 'merged', 'nofr')"
        ),
        3,
        "catalog tables"
    );
}

#[test]
fn delta_tables_match_dbt_duckdb_with_one_commit_per_batch() {
    let t = TestProject::new(&[]);
    for (path, text) in models(", format='delta'") {
        t.write(&path, &text);
    }
    two_runs_match_dbt(&t, "catalog.duckdb");
    // The first run's 5 batches after the create, then 2: one commit each.
    let c = read_only(&t.path().join("catalog.duckdb"));
    let location = query_strings(
        &c,
        "select location from _lakeflow.models where name = 'mb'",
    )
    .concat();
    drop(c);
    let log = std::path::Path::new(&location).join("_delta_log");
    let commits = std::fs::read_dir(&log)
        .expect("delta log")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
        })
        .count();
    assert_eq!(commits, 5 + 2, "one commit per batch");
}

#[test]
fn microbatch_configs_and_flags_are_checked() {
    let t = TestProject::new(&[(
        "models/m.sql",
        "{{ config(materialized='incremental', incremental_strategy='microbatch', event_time='ts', batch_size='day', format='delta') }}\nselect timestamp '2024-01-01' as ts",
    )]);
    let r = t.run(&["build", "--event-time-start", "yesterday"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("error[LF307]"), "{}", r.stderr);
    assert!(r.stderr.contains("yesterday"), "{}", r.stderr);
    // No `begin` and no --event-time-start: the first build does not know where to start.
    let r = t.run(&["build"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("`begin`"), "{}", r.stdout);
    t.write(
        "models/m.sql",
        "{{ config(materialized='incremental', incremental_strategy='microbatch', event_time='ts', batch_size='week', begin='2024-01-01') }}\nselect 1",
    );
    let r = t.run(&["build"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("error[LF205]"), "{}", r.stderr);
    assert!(r.stderr.contains("batch_size 'week'"), "{}", r.stderr);
}
