//! Snapshots (dbt's SCD type 2), as dbt-duckdb 1.11 builds them: `{% snapshot %}` blocks with
//! the timestamp and check strategies, single and list `unique_key`, `target_schema`,
//! `invalidate_hard_deletes` and `hard_deletes: new_record`; refable by models, run by
//! `build` in DAG order and by `lakeflow snapshot`. Every expected row below is what dbt
//! built from the same files over the same two runs (times taken from the run's clock are
//! compared as null / not null).

mod common;
use common::*;

const SNAPSHOTS: &str = "{% snapshot orders_ts %}
{{ config(target_schema='snapshots', unique_key='id', strategy='timestamp', updated_at='updated_at', invalidate_hard_deletes=True) }}
select * from {{ ref('orders') }}
{% endsnapshot %}

{% snapshot orders_check %}
{{ config(unique_key=['id'], strategy='check', check_cols=['status'], hard_deletes='new_record') }}
select id, status from {{ ref('orders') }}
{% endsnapshot %}
";

/// orders_ts after the two runs, as dbt built it (the deleted order 2 is checked apart: it is
/// closed at the run's time).
fn assert_timestamp_versions(c: &duckdb::Connection) {
    assert_eq!(
        query_strings(
            c,
            "select concat_ws(' ', id, status, dbt_valid_from, coalesce(dbt_valid_to::varchar, 'current'), dbt_scd_id) from snapshots.orders_ts where id <> 2 order by id, dbt_valid_from",
        ),
        [
            "1 new 2024-01-01 00:00:00 2024-01-02 00:00:00 8bd6037542377309505ab720e545f24e",
            "1 shipped 2024-01-02 00:00:00 current 37079bbc2903f67ad53b23fcc5e5622c",
            "3 new 2024-01-02 00:00:00 current 6320007932efdc38ff3c952b7712bce2",
        ]
    );
}

/// orders_check after the two runs, as dbt built it.
fn assert_check_versions(c: &duckdb::Connection) {
    assert_eq!(
        query_strings(
            c,
            "select concat_ws(' ', id, status, dbt_valid_to is null, dbt_is_deleted) from main.orders_check order by id, dbt_valid_from",
        ),
        [
            "1 new false False",
            "1 shipped true False",
            "2 new false False",
            "2 new true True",
            "3 new true False",
        ]
    );
}

#[test]
fn snapshots_keep_every_version_as_dbt_does() {
    let t = TestProject::new(&[
        ("dbt_project.yml", "name: p\nversion: '1.0'\nprofile: p\n"),
        (
            "profiles.yml",
            "p:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: p.duckdb\n",
        ),
        (
            "seeds/orders.csv",
            "id,status,updated_at\n1,new,2024-01-01 00:00:00\n2,new,2024-01-01 00:00:00\n",
        ),
        ("snapshots/orders.sql", SNAPSHOTS),
        (
            "models/current_orders.sql",
            "select id, status, dbt_valid_to is null as current from {{ ref('orders_ts') }}\n",
        ),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    t.run(&["build"]).ok();
    // Order 1 changes, 2 goes away, 3 arrives.
    t.write(
        "seeds/orders.csv",
        "id,status,updated_at\n1,shipped,2024-01-02 00:00:00\n3,new,2024-01-02 00:00:00\n",
    );
    t.run(&["build"]).ok();

    let c = read_only(&t.path().join("p.duckdb"));
    assert_timestamp_versions(&c);
    // The deleted order is closed at the run's time.
    assert_eq!(
        query_strings(
            &c,
            "select concat_ws(' ', dbt_scd_id, dbt_valid_to > dbt_valid_from) from snapshots.orders_ts where id = 2",
        ),
        ["f8e4dcba7004839b9c5b44a77923cd0a true"]
    );
    assert_check_versions(&c);
    assert_eq!(
        query_strings(
            &c,
            "select string_agg(column_name || ' ' || data_type, ', ' order by ordinal_position) from information_schema.columns where table_name = 'orders_check'",
        ),
        [
            "id INTEGER, status VARCHAR, dbt_scd_id VARCHAR, dbt_updated_at TIMESTAMP, dbt_valid_from TIMESTAMP, dbt_valid_to TIMESTAMP, dbt_is_deleted VARCHAR"
        ]
    );
    assert_eq!(
        query_strings(
            &c,
            "select concat_ws(' ', id, status, current) from main.current_orders order by all",
        ),
        ["1 new false", "1 shipped true", "2 new false", "3 new true"]
    );
    drop(c);

    // `lakeflow snapshot` runs the snapshots only; with nothing changed, nothing is added.
    let run = t.run(&["snapshot"]);
    run.ok();
    assert!(
        run.stdout.contains("snapshots.orders_ts (snapshot"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("main.orders (table"), "{}", run.stdout);
    let c = read_only(&t.path().join("p.duckdb"));
    assert_eq!(query_i64(&c, "select count(*) from snapshots.orders_ts"), 4);
    assert_eq!(query_i64(&c, "select count(*) from main.orders_check"), 5);
}

#[test]
fn a_snapshot_without_a_strategy_fails_alone() {
    let t = TestProject::new(&[
        ("dbt_project.yml", "name: p\nversion: '1.0'\nprofile: p\n"),
        (
            "profiles.yml",
            "p:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: p.duckdb\n",
        ),
        (
            "snapshots/s.sql",
            "{% snapshot s %}\n{{ config(unique_key='id') }}\nselect 1 as id\n{% endsnapshot %}\n",
        ),
        ("models/fine.sql", "select 1 as x\n"),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    let run = t.run(&["build"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("a snapshot needs `strategy`"),
        "{}",
        run.stdout
    );
    let c = read_only(&t.path().join("p.duckdb"));
    assert_eq!(query_i64(&c, "select x from main.fine"), 1);
}

/// A snapshot with `format: delta` or `parquet` keeps its versions as files, each run one
/// new version (Delta: one commit), and holds exactly the rows the catalog snapshot above
/// (and dbt) holds after the same runs.
#[test]
fn snapshots_as_delta_and_parquet_keep_the_same_versions() {
    let snapshots = SNAPSHOTS
        .replace(
            "invalidate_hard_deletes=True)",
            "invalidate_hard_deletes=True, format='delta')",
        )
        .replace(
            "hard_deletes='new_record')",
            "hard_deletes='new_record', format='parquet')",
        );
    let t = TestProject::new(&[
        ("dbt_project.yml", "name: p\nversion: '1.0'\nprofile: p\n"),
        (
            "profiles.yml",
            "p:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: p.duckdb\n      external_root: lake\n",
        ),
        (
            "seeds/orders.csv",
            "id,status,updated_at\n1,new,2024-01-01 00:00:00\n2,new,2024-01-01 00:00:00\n",
        ),
        ("snapshots/orders.sql", &snapshots),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    t.run(&["build"]).ok();
    t.write(
        "seeds/orders.csv",
        "id,status,updated_at\n1,shipped,2024-01-02 00:00:00\n3,new,2024-01-02 00:00:00\n",
    );
    t.run(&["build"]).ok();
    let c = read_only(&t.path().join("p.duckdb"));
    assert_timestamp_versions(&c);
    assert_check_versions(&c);
    // Views over files, not tables; the Delta table has one commit per run.
    assert_eq!(
        query_i64(
            &c,
            "select count(*) from duckdb_views() where view_name in ('orders_ts', 'orders_check')"
        ),
        2
    );
    let location = query_strings(
        &c,
        "select location from _lakeflow.models where name = 'orders_ts'",
    )
    .concat();
    drop(c);
    let commits = std::fs::read_dir(std::path::Path::new(&location).join("_delta_log"))
        .expect("delta log")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
        })
        .count();
    assert_eq!(commits, 2, "one commit per run");
}
