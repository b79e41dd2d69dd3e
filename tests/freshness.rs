//! `lakeflow source freshness`: the statuses dbt gives for the same sources and thresholds
//! (table settings over the source's, `filter`, `freshness: null`), target/sources.json in
//! dbt's v3 shape, and a non-zero exit when a source is past `error_after` or unreadable.

mod common;
use common::*;

#[test]
fn source_freshness_matches_dbt_statuses_and_writes_sources_json() {
    let t = TestProject::dbt(
        "name: fr\nversion: '1.0'\nprofile: fr\n",
        "fr:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: fr.duckdb, threads: 1}\n",
    );
    t.write(
        "models/src.yml",
        "version: 2\nsources:\n  - name: raw\n    schema: main\n    loaded_at_field: loaded_at\n    freshness:\n      warn_after: {count: 1, period: hour}\n      error_after: {count: 2, period: day}\n    tables:\n      - name: fresh\n      - name: stale\n      - name: old\n        freshness:\n          error_after: {count: 5, period: day}\n      - name: filtered\n        loaded_at_field: ts\n        freshness:\n          filter: \"kind = 'a'\"\n      - name: nofresh\n        freshness: null\n",
    );
    {
        let c = duckdb::Connection::open(t.path().join("fr.duckdb")).expect("catalog");
        c.execute_batch(
            "create table fresh as select now()::timestamp as loaded_at;
             create table stale as select now()::timestamp - interval 3 hour as loaded_at;
             create table old as select now()::timestamp - interval 4 day as loaded_at;
             create table filtered as select * from (values (now()::timestamp - interval 5 day, 'a'), (now()::timestamp, 'b')) t(ts, kind);
             create table nofresh as select 1 as loaded_at;",
        )
        .expect("sources");
    }
    let run = t.run(&["source", "freshness"]);
    assert_eq!(run.code, 1, "filtered is past error_after\n{}", run.stdout);
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(t.path().join("target/sources.json")).expect("sources.json"),
    )
    .expect("json");
    assert_eq!(
        doc["metadata"]["dbt_schema_version"],
        "https://schemas.getdbt.com/dbt/sources/v3.json"
    );
    let got: Vec<(String, String)> = doc["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["unique_id"].as_str().unwrap_or_default().to_string(),
                r["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let want = [
        ("source.fr.raw.filtered", "error"),
        ("source.fr.raw.fresh", "pass"),
        ("source.fr.raw.old", "warn"),
        ("source.fr.raw.stale", "warn"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(got, want);
    let old = &doc["results"][2];
    assert_eq!(old["criteria"]["error_after"]["count"], 5);
    assert_eq!(old["criteria"]["warn_after"]["period"], "hour");
    let age = old["max_loaded_at_time_ago_in_s"].as_f64().expect("age");
    assert!(
        (4.0 * 86_400.0..4.0 * 86_400.0 + 600.0).contains(&age),
        "{age}"
    );
    // Only the fresh ones selected: exit 0.
    t.run(&["source", "freshness", "--select", "source:raw.fresh"])
        .ok();
}
