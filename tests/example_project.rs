//! The example project built end to end on a local lake, read back through the catalog.

mod common;
use common::*;

fn example(rows: u64) -> TestProject {
    let t = TestProject::example();
    t.example_data(rows);
    t
}

const EXTERNAL: &[(&str, &str)] = &[
    ("bronze.raw_users", "bronze/raw_users.parquet"),
    ("bronze.raw_products", "bronze/raw_products.parquet"),
    ("silver.users", "silver/users.parquet"),
    ("silver.products", "silver/products.parquet"),
    ("gold.daily_revenue", "gold/daily_revenue.parquet"),
    ("gold.funnel_daily", "gold/funnel_daily.parquet"),
    ("gold.user_activity", "gold/user_activity.parquet"),
];

#[test]
fn build_writes_parquet_and_catalog_views_return_the_files_rows() {
    let t = example(6_000);
    let run = t.run(&["build"]);
    run.ok();
    assert!(
        run.stdout.contains("11 succeeded, 0 failed, 0 skipped"),
        "{}",
        run.stdout
    );

    let catalog = read_only(&t.path().join("catalog/dev.duckdb"));
    // The dev target writes under lake/dev/, never under the production lake/<layer>/.
    assert!(!t.lake("bronze").exists());
    for (view, file) in EXTERNAL {
        let path = t.lake(&format!("dev/{file}"));
        assert!(path.is_file(), "{} missing", path.display());
        let in_view = query_i64(&catalog, &format!("select count(*) from {view}"));
        let in_file = query_i64(
            &memory(),
            &format!("select count(*) from read_parquet('{}')", path.display()),
        );
        assert_eq!(in_view, in_file, "{view}");
        assert!(in_view > 0, "{view} is empty");
        // The same rows, not only the same count.
        let diff = query_i64(
            &catalog,
            &format!(
                "select count(*) from ((from {view} except all from read_parquet('{p}')) union all (from read_parquet('{p}') except all from {view}))",
                p = path.display()
            ),
        );
        assert_eq!(diff, 0, "{view} differs from its file");
    }

    // bronze.raw_events is incremental: a folder of files, one per build that added rows.
    let raw = t.lake("dev/bronze/raw_events.parquet");
    assert!(raw.is_dir(), "{} is a folder", raw.display());
    assert_eq!(
        query_i64(&catalog, "select count(*) from bronze.raw_events"),
        query_i64(
            &memory(),
            &format!(
                "select count(*) from read_parquet('{}/*.parquet')",
                raw.display()
            )
        )
    );

    // silver.events is partitioned by day: one folder per day, all rows reachable.
    let events_dir = t.lake("dev/silver/events");
    let days = std::fs::read_dir(&events_dir).expect("events dir").count();
    assert_eq!(
        days, 30,
        "one partition per day of January's 30 generated days"
    );
    let raw = query_i64(&catalog, "select count(*) from bronze.raw_events");
    let clean = query_i64(&catalog, "select count(*) from silver.events");
    assert!(
        clean < raw && clean > raw * 9 / 10,
        "quality filters drop a few percent: {clean} of {raw}"
    );
    assert_eq!(
        query_i64(
            &catalog,
            "select count(*) - count(distinct event_id) from silver.events"
        ),
        0
    );
    assert_eq!(
        query_i64(
            &catalog,
            "select count(*) from silver.events where user_id is null or price < 0"
        ),
        0
    );

    // Gold agrees with silver.
    let purchases = query_i64(
        &catalog,
        "select count(*) from silver.events e join silver.users u using (user_id) where event_type = 'purchase'",
    );
    assert_eq!(
        query_i64(
            &catalog,
            "select sum(orders)::bigint from gold.daily_revenue"
        ),
        purchases
    );
    assert_eq!(
        query_i64(
            &catalog,
            "select sum(orders)::bigint from gold.country_summary"
        ),
        purchases
    );
    assert_eq!(
        query_i64(
            &catalog,
            "select count(*) from duckdb_tables() where schema_name = 'gold' and table_name = 'country_summary'"
        ),
        1,
        "country_summary is a table inside the catalog"
    );
    assert!(query_i64(&catalog, "select count(*) from gold.top_products") > 0);

    // Artifacts.
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(t.path().join("target/run_results.json")).unwrap(),
    )
    .unwrap();
    let statuses: Vec<&str> = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), 11 + 9, "11 models and 9 data tests");
    assert_eq!(statuses.iter().filter(|s| **s == "success").count(), 11);
    assert_eq!(statuses.iter().filter(|s| **s == "pass").count(), 9);
    let compiled = std::fs::read_to_string(
        t.path()
            .join("target/compiled/shop/models/gold/daily_revenue.sql"),
    )
    .unwrap();
    assert!(
        compiled.contains("__lf_ephemeral__purchases as ("),
        "ephemeral inlined as a CTE:\n{compiled}"
    );
    assert!(t.path().join("target/manifest.json").is_file());
}

#[test]
fn run_select_silver_plus_rewrites_only_silver_and_gold() {
    let t = example(3_000);
    t.run(&["build"]).ok();
    let bronze = t.lake("dev/bronze/raw_events.parquet");
    let silver = t.lake("dev/silver/users.parquet");
    let gold = t.lake("dev/gold/funnel_daily.parquet");
    let events_link =
        std::fs::read_link(t.lake("dev/silver/events")).expect("partitioned model is a symlink");
    let (b0, s0, g0) = (mtime(&bronze), mtime(&silver), mtime(&gold));
    std::thread::sleep(std::time::Duration::from_millis(1100));

    let run = t.run(&["run", "--select", "silver+"]);
    run.ok();
    assert!(
        !run.stdout.contains("bronze."),
        "no bronze model may run:\n{}",
        run.stdout
    );
    assert!(run.stdout.contains("8 succeeded"), "{}", run.stdout);
    assert_eq!(mtime(&bronze), b0, "bronze untouched");
    assert!(mtime(&silver) > s0, "silver rewritten");
    assert!(mtime(&gold) > g0, "gold rewritten");
    assert_ne!(
        std::fs::read_link(t.lake("dev/silver/events")).unwrap(),
        events_link,
        "new partition version"
    );
    let catalog = read_only(&t.path().join("catalog/dev.duckdb"));
    assert!(query_i64(&catalog, "select count(*) from silver.events") > 0);
}

#[test]
fn prod_target_writes_layer_paths_without_target_prefix() {
    let t = example(1_000);
    let run = t.run(&["build", "--target", "prod", "--select", "+users"]);
    run.ok();
    // The relationships test of events (not selected, never built) cannot run; it is left
    // out with a note instead of failing the build.
    assert!(
        run.stderr.contains(
            "note: test 'relationships_events_user_id__user_id__ref_users_' is left out: it reads 'events'"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("Tests: 2 passed"), "{}", run.stdout);
    assert!(t.lake("silver/users.parquet").is_file());
    assert!(t.lake("bronze/raw_users.parquet").is_file());
    assert!(!t.lake("dev").exists());
}

/// Batches landed into the raw zone over several runs: after each, the incremental build
/// (bronze appends new files; as Delta, silver.users merges changed users) equals a full
/// refresh of the same input, relation by relation.
#[test]
fn landed_batches_build_incrementally_to_what_a_full_refresh_gives() {
    for vars in ["{}", "{lake_format: delta}"] {
        let t = example(8_000);
        t.run(&["build", "--vars", vars]).ok();
        for batch in 1..=2 {
            let dir = t.path().to_string_lossy().into_owned();
            t.run(&[
                "example-data",
                "--batch",
                &batch.to_string(),
                "--rows",
                "1500",
                "--out",
                &dir,
            ])
            .ok();
            let run = t.run(&["build", "--vars", vars]);
            run.ok();
            assert!(
                run.stdout
                    .contains("OK    bronze.raw_events (incremental, 15"),
                "only the new files are read: {}",
                run.stdout
            );
            t.run(&[
                "build",
                "--vars",
                vars,
                "--target",
                "prod",
                "--full-refresh",
            ])
            .ok();
            let c = memory();
            c.execute_batch(&format!(
                "attach '{}' as inc (read_only); attach '{}' as rebuilt (read_only);",
                t.path().join("catalog/dev.duckdb").display(),
                t.path().join("catalog/prod.duckdb").display()
            ))
            .unwrap();
            let relations = query_strings(
                &c,
                "select table_schema || '.' || table_name from information_schema.tables where table_catalog = 'inc' and table_schema in ('bronze', 'silver', 'gold') order by all",
            );
            assert_eq!(relations.len(), 11);
            for r in relations {
                let diff = diff_rows(&c, &format!("inc.{r}"), &format!("rebuilt.{r}"));
                assert_eq!(
                    diff, 0,
                    "{vars} batch {batch}: {r} differs from a full refresh"
                );
            }
            if vars.contains("delta") {
                assert!(
                    run.stdout
                        .contains("incremental merge: 1 files added, 1 replaced"),
                    "{}",
                    run.stdout
                );
            }
        }
    }
}
