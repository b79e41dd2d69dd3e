//! dbt unit tests (`unit_tests:` in schema files): the model on fixed inputs (dict, CSV or SQL
//! rows, typed like the real inputs), `overrides` of vars, env vars and `is_incremental` with `this` as
//! an input, compared with the expected rows; a unit test runs before its model in a build,
//! and a failing one skips the model and what depends on it. The statuses are those
//! dbt-duckdb 1.11 gave for the same project.

mod common;
use common::*;

const UNIT: &str = "unit_tests:
  - name: test_scaled
    model: scaled
    overrides:
      vars: {factor: 3}
    given:
      - input: ref('orders')
        rows:
          - {id: 1, amount: 5, email: q@a.com}
          - {id: 2, amount: 7}
    expect:
      rows:
        - {id: 1, amount: 15, domain: a.com}
        - {id: 2, amount: 21, domain: null}
  - name: test_incr
    model: incr
    overrides:
      macros: {is_incremental: true}
    given:
      - input: ref('orders')
        rows: [{id: 1, amount: 1}, {id: 5, amount: 50}]
      - input: this
        rows: [{id: 3, amount: 30}]
    expect:
      rows: [{id: 5, amount: 50}]
  - name: test_bonus
    model: bonus_m
    overrides:
      macros: {bonus: 42}
    given: []
    expect:
      rows: [{b: 42}]
";

const FAILING: &str = "
  - name: test_scaled_csv_fails
    model: scaled
    given:
      - input: ref('orders')
        format: csv
        rows: |
          id,amount,email
          1,5,z@b.com
    expect:
      format: csv
      rows: |
        id,domain
        1,WRONG
";

fn project() -> TestProject {
    let t = TestProject::new(&[
        (
            "dbt_project.yml",
            "name: p\nversion: '1.0'\nprofile: p\nvars:\n  factor: 1\n",
        ),
        (
            "profiles.yml",
            "p:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: p.duckdb\n",
        ),
        (
            "seeds/orders.csv",
            "id,amount,email\n1,10,a@x.com\n2,20,b@y.org\n",
        ),
        (
            "models/scaled.sql",
            "select id, amount * {{ var('factor') }} as amount, split_part(email, '@', 2) as domain from {{ ref('orders') }}\n",
        ),
        (
            "models/incr.sql",
            "{{ config(materialized='incremental', unique_key='id') }}\nselect id, amount from {{ ref('orders') }}\n{% if is_incremental() %} where id > (select max(id) from {{ this }}) {% endif %}\n",
        ),
        ("models/after.sql", "select * from {{ ref('scaled') }}\n"),
        ("macros/bonus.sql", "{% macro bonus() %}0{% endmacro %}\n"),
        ("models/bonus_m.sql", "select {{ bonus() }} as b\n"),
        ("models/unit.yml", UNIT),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    t
}

fn statuses(t: &TestProject) -> Vec<String> {
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(t.path().join("target/run_results.json")).expect("results"),
    )
    .expect("json");
    let mut out: Vec<String> = results["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["unique_id"].as_str().unwrap_or_default(),
                r["status"].as_str().unwrap_or_default()
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn unit_tests_run_before_their_models_and_gate_them() {
    let t = project();
    // The incremental model's unit test reads `this`, which does not exist before its first
    // build: an error (dbt's too), which skips the model.
    let run = t.run(&["build"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        statuses(&t),
        [
            "model.p.after success",
            "model.p.bonus_m success",
            "model.p.incr skipped",
            "model.p.scaled success",
            "seed.p.orders success",
            "unit_test.p.bonus_m.test_bonus pass",
            "unit_test.p.incr.test_incr error",
            "unit_test.p.scaled.test_scaled pass",
        ]
    );
    // Once the model exists, its unit test passes and it builds.
    t.run(&["run", "-s", "incr"]).ok();
    t.run(&["build", "-s", "incr"]).ok();
    assert_eq!(
        statuses(&t),
        ["model.p.incr success", "unit_test.p.incr.test_incr pass"]
    );

    // A failing unit test skips its model and what reads it, and says what differs.
    t.write("models/unit.yml", &format!("{UNIT}{FAILING}"));
    let run = t.run(&["build", "-s", "scaled+"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("missing | 1 | WRONG") && run.stdout.contains("unexpected | 1 | b.com"),
        "{}",
        run.stdout
    );
    let s = statuses(&t);
    assert!(
        s.contains(&"unit_test.p.scaled.test_scaled_csv_fails fail".to_string()),
        "{s:?}"
    );
    assert!(s.contains(&"model.p.scaled skipped".to_string()), "{s:?}");
    assert!(s.contains(&"model.p.after skipped".to_string()), "{s:?}");

    // `lakeflow run` builds models without their unit tests.
    t.run(&["run", "-s", "scaled"]).ok();
}

/// `overrides: env_vars` replace what `env_var()` reads while the unit test renders the model;
/// the model itself still reads the environment.
#[test]
fn unit_tests_override_env_vars() {
    let t = project();
    t.write(
        "models/region_m.sql",
        "select '{{ env_var('LF_UNIT_REGION', 'eu') }}' as region\n",
    );
    t.write(
        "models/unit.yml",
        "unit_tests:\n  - name: test_region\n    model: region_m\n    overrides:\n      env_vars: {LF_UNIT_REGION: us}\n    given: []\n    expect:\n      rows: [{region: us}]\n",
    );
    t.run(&["build", "--select", "region_m"]).ok();
    let c = read_only(&t.path().join("p.duckdb"));
    assert_eq!(
        query_strings(&c, "select region from main.region_m"),
        ["eu"]
    );
    assert!(
        statuses(&t).contains(&"unit_test.p.region_m.test_region pass".to_string()),
        "{:?}",
        statuses(&t)
    );
}

/// A unit test follows the model it tests: selecting a model its fixtures stand for does not
/// select it (as `dbt ls`).
#[test]
fn unit_tests_follow_their_model_not_their_inputs() {
    let t = project();
    let run = t.run(&["ls", "--select", "orders"]);
    run.ok();
    assert!(!run.stdout.contains("test_scaled"), "{}", run.stdout);
    let run = t.run(&["ls", "--select", "scaled"]);
    run.ok();
    assert!(run.stdout.contains("test_scaled"), "{}", run.stdout);
}
