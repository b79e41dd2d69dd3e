//! `state:` selection against a manifest dbt wrote: `tests/fixtures/dbt_state/manifest.json`
//! is dbt-core 1.11's `dbt parse` of the project below (dbt's own macros left out). Each
//! change picks what `dbt ls --select ... --state` picked for the same change.

mod common;
use common::*;

const FILES: &[(&str, &str)] = &[
    (
        "dbt_project.yml",
        "name: shop\nversion: '1.0'\nconfig-version: 2\nprofile: shop\nmodels:\n  shop:\n    +materialized: view\n    marts:\n      +materialized: table\n",
    ),
    (
        "profiles.yml",
        "shop:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: shop.duckdb, threads: 1}\n",
    ),
    ("seeds/raw_orders.csv", "id,amount\n1,10\n2,20\n"),
    (
        "macros/cents.sql",
        "{% macro cents(col) %}({{ col }} * 100){% endmacro %}\n",
    ),
    (
        "models/staging/stg_orders.sql",
        "select id, amount from {{ ref('raw_orders') }}\n",
    ),
    (
        "models/marts/orders.sql",
        "select id, {{ cents('amount') }} as amount_cents from {{ ref('stg_orders') }}\n",
    ),
    (
        "models/marts/customers.sql",
        "{{ config(tags=['daily']) }}\nselect 1 as customer_id\n",
    ),
    (
        "models/schema.yml",
        "version: 2\nmodels:\n  - name: orders\n    description: Orders in cents.\n    columns:\n      - name: id\n        data_tests: [not_null, unique]\n",
    ),
];

fn project() -> TestProject {
    let t = TestProject::new(&[]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("dbt project only");
    for (path, text) in FILES {
        t.write(path, text);
    }
    t
}

fn picked(t: &TestProject, selector: &str) -> Vec<String> {
    let state = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dbt_state");
    let state = state.to_string_lossy().into_owned();
    let run = t.run(&["ls", "--select", selector, "--state", &state]);
    run.ok();
    let mut out: Vec<String> = run.stdout.lines().map(str::to_string).collect();
    out.sort();
    out
}

fn edit(t: &TestProject, path: &str, f: impl Fn(&str) -> String) {
    let text = std::fs::read_to_string(t.path().join(path)).expect("read");
    t.write(path, &f(&text));
}

#[test]
fn state_against_a_dbt_manifest_picks_what_dbt_picks() {
    let orders = [
        "shop.marts.orders",
        "shop.not_null_orders_id",
        "shop.unique_orders_id",
    ];
    let t = project();
    assert!(picked(&t, "state:modified").is_empty(), "nothing changed");
    // Whitespace around the SQL is not a change; the SQL is.
    edit(&t, "models/staging/stg_orders.sql", |s| format!("{s}\n\n"));
    assert!(picked(&t, "state:modified").is_empty());
    let t = project();
    edit(&t, "models/marts/orders.sql", |s| format!("{s}-- x\n"));
    assert_eq!(picked(&t, "state:modified"), orders);
    assert_eq!(picked(&t, "state:modified.body"), orders);
    // A macro the model calls.
    let t = project();
    edit(&t, "macros/cents.sql", |s| s.replace("* 100", "* 1000"));
    assert_eq!(picked(&t, "state:modified"), orders);
    assert_eq!(picked(&t, "state:modified.macros"), orders);
    assert!(picked(&t, "state:modified.body").is_empty());
    // A folder config in the project file.
    let t = project();
    edit(&t, "dbt_project.yml", |s| {
        s.replace("+materialized: view", "+materialized: table")
    });
    assert_eq!(picked(&t, "state:modified"), ["shop.staging.stg_orders"]);
    assert_eq!(
        picked(&t, "state:modified.configs"),
        ["shop.staging.stg_orders"]
    );
    // The seed's CSV.
    let t = project();
    edit(&t, "seeds/raw_orders.csv", |s| format!("{s}3,30\n"));
    assert_eq!(picked(&t, "state:modified"), ["shop.raw_orders"]);
    // A new model.
    let t = project();
    t.write("models/new_one.sql", "select 2 as x\n");
    assert_eq!(picked(&t, "state:new"), ["shop.new_one"]);
    assert_eq!(picked(&t, "state:modified"), ["shop.new_one"]);
}

/// `lakeflow retry` runs again what errored or was skipped, with `result:` reading the last
/// run's results.
#[test]
fn retry_runs_again_what_failed() {
    let t = project();
    t.write(
        "models/marts/customers.sql",
        "select {{ var('n', 'nope') }} as customer_id\n",
    );
    let first = t.run(&["build"]);
    assert_ne!(first.code, 0, "customers fails: {}", first.stdout);
    let target = t.path().join("target").to_string_lossy().into_owned();
    let run = t.run(&["ls", "--select", "result:error", "--state", &target]);
    run.ok();
    assert_eq!(run.stdout.trim(), "shop.marts.customers");
    // Fixed: retry builds only that model (and its tests, of which it has none).
    t.write("models/marts/customers.sql", "select 1 as customer_id\n");
    let again = t.run(&["retry"]);
    again.ok();
    assert!(
        again.stdout.contains("retrying 1 nodes"),
        "{}",
        again.stdout
    );
    assert!(again.stdout.contains("main.customers"), "{}", again.stdout);
    assert!(!again.stdout.contains("main.orders"), "{}", again.stdout);
    let done = t.run(&["retry"]);
    done.ok();
    assert!(done.stdout.contains("nothing to retry"), "{}", done.stdout);
}

/// A `--state` folder or run results of the wrong shape is refused, never read as "nothing
/// was there" (which would select everything, or retry nothing).
#[test]
fn state_and_run_results_of_the_wrong_shape_are_refused() {
    let t = project();
    let bad = t.path().join("bad");
    std::fs::create_dir_all(&bad).expect("mkdir");
    std::fs::write(bad.join("manifest.json"), r#"{"nodes": 5}"#).expect("write");
    let dir = bad.to_string_lossy().into_owned();
    let run = t.run(&["ls", "--select", "state:modified", "--state", &dir]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("error[LF304]"), "{}", run.stderr);
    assert!(run.stderr.contains("no `nodes`"), "{}", run.stderr);
    std::fs::write(bad.join("manifest.json"), r#"{"nodes": {}}"#).expect("write");
    std::fs::write(bad.join("run_results.json"), "[]").expect("write");
    let run = t.run(&["ls", "--select", "result:error", "--state", &dir]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("no `results` list"), "{}", run.stderr);
    t.write("target/run_results.json", "[]");
    let run = t.run(&["retry"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("error[LF308]"), "{}", run.stderr);
}
