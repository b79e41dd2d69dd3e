//! `--defer --state DIR [--favor-state]`: refs to models that are not selected (and, without
//! `--favor-state`, not built in this target) read the relations the state's run built, as
//! dbt's deferral does; `--defer` without `--state` is refused.

mod common;
use common::*;

fn project() -> TestProject {
    // Both targets in one catalog file, each in its own schema.
    let t = TestProject::dbt(
        "name: shop\nversion: '1.0'\nconfig-version: 2\nprofile: shop\n",
        "shop:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: shop.duckdb, schema: dev, threads: 1}\n    prod: {type: duckdb, path: shop.duckdb, schema: prod, threads: 1}\n",
    );
    t.write(
        "models/stg_orders.sql",
        "{{ config(materialized='table') }}\nselect * from (values (1, '{{ target.name }}'), (2, '{{ target.name }}')) t(id, built_in)\n",
    );
    t.write(
        "models/orders.sql",
        "{{ config(materialized='table') }}\nselect id, built_in from {{ ref('stg_orders') }}\n",
    );
    t
}

fn built_in(t: &TestProject, relation: &str) -> Vec<String> {
    let c = read_only(&t.path().join("shop.duckdb"));
    query_strings(
        &c,
        &format!("select string_agg(distinct built_in, ',') from {relation}"),
    )
}

#[test]
fn deferred_refs_read_the_state_targets_relations() {
    let t = project();
    t.run(&["build", "--target", "prod"]).ok();
    let state = t.path().join("prod-state");
    std::fs::rename(t.path().join("target"), &state).expect("keep prod's target");
    let state = state.to_string_lossy().into_owned();
    // Without --defer, orders cannot run: its upstream was never built in dev.
    let alone = t.run(&["build", "--select", "orders"]);
    assert_ne!(alone.code, 0);
    assert!(
        alone.stdout.contains("never been built"),
        "{}",
        alone.stdout
    );
    // With it, dev's orders reads prod's stg_orders.
    t.run(&["build", "--select", "orders", "--defer", "--state", &state])
        .ok();
    assert_eq!(built_in(&t, "dev.orders"), ["prod"]);
    let compiled = std::fs::read_to_string(t.path().join("target/compiled/shop/models/orders.sql"))
        .expect("compiled");
    assert!(compiled.contains("\"prod\".\"stg_orders\""), "{compiled}");
    // Once dev has its own stg_orders, it is preferred, unless --favor-state.
    t.run(&["build", "--select", "stg_orders"]).ok();
    t.run(&["build", "--select", "orders", "--defer", "--state", &state])
        .ok();
    assert_eq!(built_in(&t, "dev.orders"), ["dev"]);
    t.run(&[
        "build",
        "--select",
        "orders",
        "--defer",
        "--favor-state",
        "--state",
        &state,
    ])
    .ok();
    assert_eq!(built_in(&t, "dev.orders"), ["prod"]);
    let refused = t.run(&["build", "--select", "orders", "--defer"]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("LF304"), "{}", refused.stderr);
}
