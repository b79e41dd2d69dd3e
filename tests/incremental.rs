//! Incremental models on Parquet and Delta: every run's result equals a full refresh on the
//! same input (random batch sequences), failures leave the table as it was, schema changes
//! follow `on_schema_change`, and a small merge rewrites few files.

mod common;
use common::*;

const PROFILE: &str = "inc:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: dev.duckdb, external_root: lake_dev, threads: 4}\n    full: {type: duckdb, path: full.duckdb, external_root: lake_full, threads: 4}\n";

const SOURCES: &str = "version: 2\nsources:\n  - name: landing\n    tables:\n      - name: events\n        meta: {external_location: \"read_csv('landing/*.csv', header = true, columns = {'id': 'BIGINT', 'v': 'BIGINT', 'updated_at': 'TIMESTAMP', 'day': 'DATE', 'batch': 'INTEGER'})\"}\n";

/// Latest version per id: the new rows plus the current row of their ids, best one kept.
/// Late rows (older `updated_at`) lose to what is there; duplicate ids within a batch are
/// resolved by the same order. The result therefore equals a full refresh.
const LATEST: &str = "{{ config(materialized='incremental', format='delta', unique_key='id', incremental_strategy='merge', target_file_size='1KB') }}
with new_rows as (
    select id, v, updated_at, batch from {{ source('landing', 'events') }}
    {% if is_incremental() %}
    where batch > (select max(batch) from {{ this }})
    {% endif %}
),
candidates as (
    select * from new_rows
    {% if is_incremental() %}
    union all
    select id, v, updated_at, batch from {{ this }} where id in (select id from new_rows)
    {% endif %}
)
select * from candidates
qualify row_number() over (partition by id order by updated_at desc, batch desc, v desc) = 1
";

/// Daily totals: the days that got rows are recomputed from all of their rows; `config` says
/// how they replace the old ones.
fn daily(config: &str) -> String {
    format!(
        "{{{{ config(materialized='incremental', format='delta', {config}) }}}}
select day, count(*) as n, sum(v) as total, max(batch) as batch
from {{{{ source('landing', 'events') }}}}
{{% if is_incremental() %}}
where day in (select day from {{{{ source('landing', 'events') }}}} where batch > (select max(batch) from {{{{ this }}}}))
{{% endif %}}
group by day
"
    )
}

/// Every row, appended: Parquet and Delta.
const LOG_PARQUET: &str = "{{ config(materialized='incremental', format='parquet') }}
select * from {{ source('landing', 'events') }}
{% if is_incremental() %}
where batch > (select max(batch) from {{ this }})
{% endif %}
";
const LOG_DELTA: &str = "{{ config(materialized='incremental', format='delta', incremental_strategy='append', partition_by='day') }}
select * from {{ source('landing', 'events') }}
{% if is_incremental() %}
where batch > (select max(batch) from {{ this }})
{% endif %}
";

const MODELS: &[&str] = &[
    "latest",
    "latest_parquet",
    "latest_dv",
    "daily",
    "daily_parquet",
    "daily_dv",
    "daily_partitions",
    "log_parquet",
    "log_delta",
];

/// Deletion vectors (merge-on-read) instead of copy-on-write.
const DV: &str = "table_properties={'delta.enableDeletionVectors': 'true'}";

fn project() -> TestProject {
    let t = TestProject::new(&[
        ("lakeflow.yml", "name: inc\nprofile: inc\n"),
        ("profiles.yml", PROFILE),
        ("models/sources.yml", SOURCES),
        ("models/silver/latest.sql", LATEST),
        (
            "models/silver/daily.sql",
            &daily("unique_key='day', incremental_strategy='delete+insert'"),
        ),
        (
            "models/silver/daily_partitions.sql",
            &daily("partition_by='day', incremental_strategy='insert_overwrite'"),
        ),
        ("models/silver/log_parquet.sql", LOG_PARQUET),
        ("models/silver/log_delta.sql", LOG_DELTA),
        (
            "models/silver/latest_parquet.sql",
            &LATEST.replace("format='delta'", "format='parquet'"),
        ),
        (
            "models/silver/latest_dv.sql",
            &LATEST.replace(
                "target_file_size='1KB'",
                &format!("target_file_size='1KB', {DV}"),
            ),
        ),
        (
            "models/silver/daily_parquet.sql",
            &daily(
                "unique_key='day', incremental_strategy='delete+insert', target_file_size='1KB'",
            )
            .replace("format='delta'", "format='parquet'"),
        ),
        (
            "models/silver/daily_dv.sql",
            &daily(&format!(
                "unique_key='day', incremental_strategy='delete+insert', {DV}"
            )),
        ),
    ]);
    std::fs::create_dir_all(t.path().join("landing")).expect("landing");
    t
}

/// A batch: inserts of new ids, updates of old ones, late rows (older timestamps than what
/// the table has), duplicate ids within the batch, spread over a few days.
fn write_batch(t: &TestProject, rng: &mut Rng, batch: u32) {
    let mut text = String::from("id,v,updated_at,day,batch\n");
    let rows = 5 + rng.below(20);
    for _ in 0..rows {
        let id = 1 + rng.below(25);
        let v = rng.below(1000);
        // Timestamps drift forward with the batch, but reach back up to a day: late rows.
        let hours = u64::from(batch) * 6 + rng.below(30);
        let ts = format!("2024-01-{:02} {:02}:00:00", 1 + hours / 24, hours % 24);
        let day = 1 + rng.below(4);
        text.push_str(&format!("{id},{v},{ts},2024-02-0{day},{batch}\n"));
        if rng.below(5) == 0 {
            // The same id again in this batch, same time.
            text.push_str(&format!("{id},{},{ts},2024-02-0{day},{batch}\n", v + 1));
        }
    }
    t.write(&format!("landing/batch_{batch:03}.csv"), &text);
}

fn sorted_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = parquet_files(dir);
    files.sort();
    files
}

/// Rows of `model` in the incremental catalog that differ from the full refresh.
fn differing(t: &TestProject, model: &str) -> (i64, i64) {
    let conn = memory();
    conn.execute_batch(&format!(
        "attach '{}' as inc (read_only); attach '{}' as rebuilt (read_only);",
        t.path().join("dev.duckdb").display(),
        t.path().join("full.duckdb").display()
    ))
    .expect("attach");
    let rows = query_i64(
        &conn,
        &format!("select count(*) from rebuilt.silver.{model}"),
    );
    let diff = diff_rows(
        &conn,
        &format!("inc.silver.{model}"),
        &format!("rebuilt.silver.{model}"),
    );
    (diff, rows)
}

#[test]
fn every_incremental_run_equals_a_full_refresh() {
    for seed in [7u64, 1_234_567, 42_424_242, 987_654_321] {
        let t = project();
        let mut rng = Rng(seed);
        for batch in 1..=5u32 {
            write_batch(&t, &mut rng, batch);
            let inc = t.run(&["build"]);
            inc.ok();
            t.run(&["build", "--target", "full", "--full-refresh"]).ok();
            for model in MODELS {
                let (diff, rows) = differing(&t, model);
                assert!(rows > 0, "seed {seed} batch {batch}: {model} is empty");
                assert_eq!(
                    diff, 0,
                    "seed {seed} batch {batch}: {model} differs from a full refresh\n{}",
                    inc.stdout
                );
            }
            if batch > 1 {
                // Later runs took the incremental path, not a rebuild.
                assert!(inc.stdout.contains("incremental merge:"), "{}", inc.stdout);
                // Parquet folders replaced files; deletion-vector tables marked rows.
                assert!(inc.stdout.contains(" files replaced ("), "{}", inc.stdout);
                assert!(
                    inc.stdout.contains("with rows deleted in place"),
                    "{}",
                    inc.stdout
                );
            }
        }
        // The Delta tables kept one version per run.
        let history = t.run(&["delta", "history", "latest", "--json"]);
        assert_eq!(history.stdout.lines().count(), 5, "{}", history.stdout);
        assert!(history.stdout.contains("\"MERGE\""), "{}", history.stdout);
        // A run with nothing new writes no file and no version.
        let files = sorted_files(&t.path().join("lake_dev"));
        t.run(&["build"]).ok();
        assert_eq!(sorted_files(&t.path().join("lake_dev")), files);
        let history = t.run(&["delta", "history", "log_delta", "--json"]);
        assert_eq!(history.stdout.lines().count(), 5, "{}", history.stdout);
    }
}

#[test]
fn a_failed_incremental_run_leaves_the_table_as_it_was() {
    let t = project();
    let mut rng = Rng(5);
    write_batch(&t, &mut rng, 1);
    t.run(&["build"]).ok();
    let before = |m: &str| {
        let c = read_only(&t.path().join("dev.duckdb"));
        query_i64(&c, &format!("select count(*) from silver.{m}"))
    };
    let counts: Vec<i64> = MODELS.iter().map(|m| before(m)).collect();
    let files_before = sorted_files(&t.path().join("lake_dev"));
    // A batch with a value that breaks the CSV reader's declared type.
    t.write(
        "landing/batch_002.csv",
        "id,v,updated_at,day,batch\n1,not-a-number,2024-01-09 00:00:00,2024-02-01,2\n",
    );
    let run = t.run(&["build"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let after: Vec<i64> = MODELS.iter().map(|m| before(m)).collect();
    assert_eq!(after, counts, "every table kept its rows");
    assert_eq!(
        sorted_files(&t.path().join("lake_dev")),
        files_before,
        "no file of the failed run is left behind"
    );
    let history = t.run(&["delta", "history", "latest", "--json"]);
    assert_eq!(history.stdout.lines().count(), 1, "no new version");
}

#[test]
fn merge_refuses_duplicate_keys_and_delete_insert_keeps_them() {
    let t = TestProject::new(&[
        ("lakeflow.yml", "name: inc\nprofile: inc\n"),
        ("profiles.yml", PROFILE),
        ("models/sources.yml", SOURCES),
        (
            "models/silver/m.sql",
            "{{ config(materialized='incremental', format='delta', unique_key='id', incremental_strategy=var('strategy')) }}\nselect id, v, batch from {{ source('landing', 'events') }}\n{% if is_incremental() %} where batch > (select max(batch) from {{ this }}) {% endif %}",
        ),
    ]);
    t.write(
        "landing/batch_001.csv",
        "id,v,updated_at,day,batch\n1,10,2024-01-01 00:00:00,2024-02-01,1\n2,20,2024-01-01 00:00:00,2024-02-01,1\n",
    );
    t.run(&["build", "--vars", "{strategy: merge}"]).ok();
    t.write(
        "landing/batch_002.csv",
        "id,v,updated_at,day,batch\n2,21,2024-01-02 00:00:00,2024-02-01,2\n2,22,2024-01-02 00:00:00,2024-02-01,2\n",
    );
    let run = t.run(&["build", "--vars", "{strategy: merge}"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains(
            "the new rows have 2 rows for unique_key (id) = (2); merge needs one row per key"
        ),
        "{}",
        run.stdout
    );
    let run = t.run(&["build", "--vars", "{strategy: delete+insert}"]);
    run.ok();
    let c = read_only(&t.path().join("dev.duckdb"));
    assert_eq!(
        query_strings(
            &c,
            "select string_agg(id || ':' || v, ' ' order by id, v) from silver.m"
        ),
        vec!["1:10 2:21 2:22"]
    );
}

#[test]
fn on_schema_change_fail_ignore_append_and_sync() {
    let model = |cols: &str, mode: &str| {
        format!(
            "{{{{ config(materialized='incremental', format=var('fmt'), on_schema_change='{mode}') }}}}\nselect {cols} from {{{{ source('landing', 'events') }}}}\n{{% if is_incremental() %}} where batch > (select max(batch) from {{{{ this }}}}) {{% endif %}}"
        )
    };
    for fmt in ["delta", "parquet"] {
        let t = TestProject::new(&[
            ("lakeflow.yml", "name: inc\nprofile: inc\n"),
            ("profiles.yml", PROFILE),
            ("models/sources.yml", SOURCES),
            ("models/silver/f.sql", &model("id, v, batch", "fail")),
            ("models/silver/i.sql", &model("id, v, batch", "ignore")),
            (
                "models/silver/a.sql",
                &model("id, v, batch", "append_new_columns"),
            ),
            (
                "models/silver/s.sql",
                &model("id, v, batch", "sync_all_columns"),
            ),
        ]);
        let vars = format!("{{fmt: {fmt}}}");
        t.write(
            "landing/batch_001.csv",
            "id,v,updated_at,day,batch\n1,10,2024-01-01 00:00:00,2024-02-01,1\n",
        );
        t.run(&["build", "--vars", &vars]).ok();
        // The model now yields `day` instead of `v`.
        for (name, mode) in [
            ("f", "fail"),
            ("i", "ignore"),
            ("a", "append_new_columns"),
            ("s", "sync_all_columns"),
        ] {
            t.write(
                &format!("models/silver/{name}.sql"),
                &model("id, day, batch", mode),
            );
        }
        t.write(
            "landing/batch_002.csv",
            "id,v,updated_at,day,batch\n2,20,2024-01-02 00:00:00,2024-02-02,2\n",
        );
        let run = t.run(&["build", "--vars", &vars]);
        assert_eq!(run.code, 1, "{fmt}: only `fail` fails\n{}", run.stdout);
        assert!(
            run.stdout.contains("on_schema_change is 'fail'")
                && run.stdout.contains("new column day DATE")
                && run.stdout.contains("column v is gone"),
            "{fmt}: {}",
            run.stdout
        );
        assert!(
            run.stdout.contains("3 succeeded, 1 failed"),
            "{}",
            run.stdout
        );
        let c = read_only(&t.path().join("dev.duckdb"));
        let rows = |sql: &str| query_strings(&c, sql);
        assert_eq!(
            rows("select string_agg(coalesce(v::varchar, '-'), ' ' order by id) from silver.i"),
            vec!["10 -"],
            "{fmt}: ignore keeps the table's columns"
        );
        assert_eq!(
            rows(
                "select string_agg(coalesce(v::varchar, '-') || '/' || coalesce(day::varchar, '-'), ' ' order by id) from silver.a"
            ),
            vec!["10/- -/2024-02-02"],
            "{fmt}: append_new_columns adds day"
        );
        assert_eq!(
            rows(
                "select string_agg(column_name, ',' order by column_index) from duckdb_columns() where schema_name = 'silver' and table_name = 's'"
            ),
            vec!["id,day,batch"],
            "{fmt}: sync_all_columns drops v"
        );
        assert_eq!(
            rows("select string_agg(coalesce(day::varchar, '-'), ' ' order by id) from silver.s"),
            vec!["- 2024-02-02"]
        );
    }
}

#[test]
fn a_small_merge_rewrites_few_files() {
    let t = TestProject::new(&[
        ("lakeflow.yml", "name: inc\nprofile: inc\n"),
        ("profiles.yml", PROFILE),
        (
            "models/silver/big.sql",
            "{{ config(materialized='incremental', format='delta', unique_key='id', incremental_strategy='merge', target_file_size='64KB', options={'row_group_size': 10000}) }}\n{% if is_incremental() %}\nselect id, -1 as v from range(100000, 100050) t(id)\n{% else %}\nselect id, hash(id) % 1000000 as v from range(0, 200000) t(id) order by id\n{% endif %}",
        ),
    ]);
    t.run(&["build"]).ok();
    let files = |t: &TestProject| parquet_files(&t.path().join("lake_dev/dev/silver/big")).len();
    let total = files(&t);
    assert!(total >= 5, "the table has several files: {total}");
    let run = t.run(&["build"]);
    run.ok();
    let history = t.run(&["delta", "history", "big", "--json"]);
    let last: serde_json::Value =
        serde_json::from_str(history.stdout.lines().next().expect("a commit")).expect("json");
    assert_eq!(last["operation"], "MERGE");
    let removed = last["files_removed"].as_u64().expect("files_removed");
    assert!(
        (1..=2).contains(&removed),
        "50 neighbouring keys live in one or two files of {total}, not {removed}: {}",
        run.stdout
    );
    let c = read_only(&t.path().join("dev.duckdb"));
    assert_eq!(
        query_i64(&c, "select count(*) from silver.big where v = -1"),
        50
    );
    assert_eq!(query_i64(&c, "select count(*) from silver.big"), 200_000);
}

/// dbt projects: an incremental model without `format`/`location` is a table inside the
/// catalog, as in dbt-duckdb. The expected rows are what `dbt build` (dbt-duckdb 1.11) left
/// for the same two runs.
#[test]
fn dbt_project_incremental_tables_match_dbt_duckdb() {
    let t = TestProject::new(&[]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("dbt project only");
    t.write(
        "dbt_project.yml",
        "name: dinc\nversion: '1.0'\nconfig-version: 2\nprofile: dinc\n",
    );
    t.write(
        "profiles.yml",
        "dinc:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: dinc.duckdb, threads: 2}\n",
    );
    t.write(
        "models/sources.yml",
        "version: 2\nsources:\n  - name: landing\n    meta:\n      external_location: \"read_csv('landing/*.csv', header = true)\"\n    tables:\n      - name: events\n",
    );
    t.write(
        "models/latest.sql",
        "{{ config(materialized='incremental', unique_key='id') }}\nselect id, v, batch from {{ source('landing', 'events') }}\n{% if is_incremental() %}\nwhere batch > (select max(batch) from {{ this }})\n{% endif %}\n",
    );
    t.write(
        "models/log.sql",
        "{{ config(materialized='incremental', on_schema_change='append_new_columns') }}\nselect id, v, batch{% if var('extra', false) %}, v * 2 as doubled{% endif %} from {{ source('landing', 'events') }}\n{% if is_incremental() %}\nwhere batch > (select max(batch) from {{ this }})\n{% endif %}\n",
    );
    t.write("landing/b1.csv", "id,v,batch\n1,10,1\n2,20,1\n");
    t.run(&["build"]).ok();
    t.write("landing/b2.csv", "id,v,batch\n2,21,2\n3,30,2\n");
    t.run(&["build", "--vars", "{extra: true}"]).ok();
    let c = read_only(&t.path().join("dinc.duckdb"));
    assert_eq!(
        query_i64(
            &c,
            "select count(*) from duckdb_tables() where table_name in ('latest', 'log')"
        ),
        2,
        "catalog tables, not views"
    );
    assert_eq!(
        query_strings(
            &c,
            "select string_agg(id || ':' || v || ':' || batch, ' ' order by all) from main.latest"
        ),
        vec!["1:10:1 2:21:2 3:30:2"]
    );
    assert_eq!(
        query_strings(
            &c,
            "select string_agg(id || ':' || v || ':' || coalesce(doubled::varchar, '-'), ' ' order by id, v) from main.log"
        ),
        vec!["1:10:- 2:20:- 2:21:42 3:30:60"]
    );
    drop(c);
    // --full-refresh rebuilds from all input.
    t.run(&[
        "build",
        "--full-refresh",
        "--select",
        "log",
        "--vars",
        "{extra: true}",
    ])
    .ok();
    let c = read_only(&t.path().join("dinc.duckdb"));
    assert_eq!(
        query_strings(
            &c,
            "select string_agg(coalesce(doubled::varchar, '-'), ' ' order by id, v) from main.log"
        ),
        vec!["20 40 42 60"]
    );
}

#[test]
fn a_killed_incremental_run_leaves_the_previous_version_intact() {
    let slow = "select range as id, repeat(md5(range::varchar), 20) as pad from range(3000000000)";
    let model = |fmt: &str| {
        format!(
            "{{{{ config(materialized='incremental', format='{fmt}') }}}}\n{{% if is_incremental() %}}\n{slow}\n{{% else %}}\nselect range as id, 'x' as pad from range(1000)\n{{% endif %}}\n"
        )
    };
    let t = TestProject::new(&[
        ("lakeflow.yml", "name: inc\nprofile: inc\n"),
        ("profiles.yml", PROFILE),
        ("models/silver/d.sql", &model("delta")),
        ("models/silver/p.sql", &model("parquet")),
    ]);
    t.run(&["build"]).ok();
    let mut child = t
        .command(&["build"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the slow build");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    child.kill().expect("kill");
    child.wait().expect("reap");
    let c = read_only(&t.path().join("dev.duckdb"));
    for m in ["d", "p"] {
        assert_eq!(
            query_i64(&c, &format!("select count(*) from silver.{m}")),
            1000,
            "{m} still reads the first build"
        );
    }
    drop(c);
    let history = t.run(&["delta", "history", "d", "--json"]);
    assert_eq!(history.stdout.lines().count(), 1, "no new Delta version");
    // The next run goes on from there (here: a rebuild, the slow branch is not wanted).
    t.run(&["build", "--full-refresh"]).ok();
    let c = read_only(&t.path().join("dev.duckdb"));
    assert_eq!(query_i64(&c, "select count(*) from silver.p"), 1000);
}

/// How many commits the Delta log at `table` holds.
fn delta_commits(table: &std::path::Path) -> usize {
    std::fs::read_dir(table.join("_delta_log"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn runs_killed_after_a_model_committed_neither_lose_nor_duplicate_a_batch() {
    // A slow model after the appending ones keeps the run alive once they committed, so a
    // kill lands between a model's commit and the end of the run (where the run records
    // what it built, and publishes).
    let slow = "{{ config(materialized='table') }}
select (select count(*) from {{ ref('log_parquet') }}) + (select count(*) from {{ ref('log_delta') }}) as n,
       (select sum(hash(range)) from range(400000000)) as h
";
    let t = TestProject::new(&[
        ("lakeflow.yml", "name: inc\nprofile: inc\n"),
        ("profiles.yml", PROFILE),
        ("models/sources.yml", SOURCES),
        ("models/silver/log_parquet.sql", LOG_PARQUET),
        ("models/silver/log_delta.sql", LOG_DELTA),
        ("models/gold/slow.sql", slow),
    ]);
    std::fs::create_dir_all(t.path().join("landing")).expect("landing");
    let mut rng = Rng(99);
    write_batch(&t, &mut rng, 1);
    t.run(&["build"]).ok();
    let parquet = t.path().join("lake_dev/dev/silver/log_parquet.parquet");
    let delta = t.path().join("lake_dev/dev/silver/log_delta");
    for batch in 2..=9u32 {
        write_batch(&t, &mut rng, batch);
        let link = std::fs::read_link(&parquet).ok();
        let commits = delta_commits(&delta);
        let mut child = t
            .command(&["build"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start a build");
        let started = std::time::Instant::now();
        // Kill as soon as the Parquet model's new version is in place, as soon as both are,
        // or after a random delay.
        let random = std::time::Duration::from_millis(rng.below(2500));
        loop {
            let parquet_done = std::fs::read_link(&parquet).ok() != link;
            let delta_done = delta_commits(&delta) > commits;
            let due = match batch % 3 {
                0 => parquet_done,
                1 => parquet_done && delta_done,
                _ => started.elapsed() >= random,
            };
            if due || child.try_wait().expect("poll").is_some() {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(120),
                "batch {batch}: the models never committed"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let _ = child.kill();
        child.wait().expect("reap");
        if batch % 2 == 0 {
            // Sometimes a run completes between kills, sometimes the next one is killed too.
            t.run(&["build"]).ok();
        }
    }
    t.run(&["build"]).ok();
    t.run(&["build", "--target", "full", "--full-refresh"]).ok();
    for model in ["log_parquet", "log_delta"] {
        let (diff, rows) = differing(&t, model);
        assert!(rows > 0, "{model} is empty");
        assert_eq!(
            diff, 0,
            "{model}: a batch was lost or duplicated by a killed run"
        );
    }
}
