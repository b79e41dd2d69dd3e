//! A dbt-duckdb project, unmodified (`dbt_project.yml`, `profiles.yml`, seeds, staging views,
//! mart tables, Jinja set/for, docs blocks, generic/singular/user tests), built by lakeflow and
//! compared with what `dbt build` left (`tests/fixtures/dbt_shop/expected/`, made by
//! `scripts/dbt-expected`): the same relations, column types, rows, and status per node.

mod common;

use common::{TestProject, query_strings, read_only};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const PATCH_FILE: &str = "models/staging/schema.yml";
const PATCH_FROM: &str = "values: ['placed', 'shipped', 'completed', 'return_pending', 'returned']";
const PATCH_TO: &str = "values: ['placed', 'shipped', 'completed', 'return_pending']";

fn expected(scenario: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dbt_shop/expected")
        .join(scenario)
}

fn read_csv_lines(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .skip(1)
        .map(|l| l.splitn(4, ',').map(str::to_string).collect())
        .collect()
}

/// `kind.name` -> (status, failures) of the last run, from target/run_results.json.
fn statuses(p: &TestProject) -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(p.path().join("target/run_results.json")).expect("results");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    doc["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            let id = r["unique_id"].as_str().expect("id");
            let parts: Vec<&str> = id.split('.').collect();
            let failures = r["failures"]
                .as_u64()
                .map(|n| n.to_string())
                .unwrap_or_default();
            (
                format!("{}.{}", parts[0], parts[2]),
                (r["status"].as_str().expect("status").to_string(), failures),
            )
        })
        .collect()
}

fn expected_statuses(scenario: &str) -> BTreeMap<String, (String, String)> {
    read_csv_lines(&expected(scenario).join("results.csv"))
        .into_iter()
        .map(|f| {
            (
                f[0].clone(),
                (f[1].clone(), f.get(2).cloned().unwrap_or_default()),
            )
        })
        .collect()
}

/// Every relation of the catalog (but lakeflow's own), its kind and columns, as dbt's
/// `relations.csv` lists them; and every relation's rows against the expected CSV.
fn assert_same_relations(p: &TestProject, scenario: &str) {
    let conn = read_only(&p.path().join("shop.duckdb"));
    let actual = query_strings(
        &conn,
        "select table_schema || ',' || table_name || ',' || case table_type when 'VIEW' then 'view' else 'table' end
         from information_schema.tables where table_schema <> '_lakeflow' order by all",
    );
    let wanted: Vec<Vec<String>> = read_csv_lines(&expected(scenario).join("relations.csv"));
    let wanted_names: Vec<String> = wanted.iter().map(|f| f[..3].join(",")).collect();
    assert_eq!(actual, wanted_names, "relations differ from dbt's");
    for f in &wanted {
        let (schema, name, columns) = (&f[0], &f[1], &f[3]);
        let described = query_strings(
            &conn,
            &format!(
                "select string_agg(column_name || ' ' || column_type, '; ') from (describe \"{schema}\".\"{name}\")"
            ),
        );
        assert_eq!(&described[0], columns, "columns of {schema}.{name}");
        let csv = expected(scenario)
            .join("data")
            .join(format!("{schema}.{name}.csv"));
        let diff = common::query_i64(
            &conn,
            &format!(
                "with a as (select columns(*)::varchar from \"{schema}\".\"{name}\"),
                      b as (select * from read_csv('{}', header = true, all_varchar = true))
                 select count(*) from ((from a except all from b) union all (from b except all from a))",
                csv.display()
            ),
        );
        assert_eq!(diff, 0, "rows of {schema}.{name} differ from dbt's");
    }
}

#[test]
fn builds_a_dbt_project_like_dbt_build() {
    let p = TestProject::fixture("dbt_shop");
    let run = p.run(&["build"]);
    run.ok();
    assert!(
        run.stdout
            .contains("Tests: 18 passed, 3 warned, 0 failed, 0 skipped (21 tests)"),
        "{}",
        run.stdout
    );
    assert_eq!(statuses(&p), expected_statuses("pass"));
    assert_same_relations(&p, "pass");
    // The failing rows of the stored test are queryable; the docs block reached the manifest.
    let manifest =
        std::fs::read_to_string(p.path().join("target/manifest.json")).expect("manifest");
    assert!(manifest.contains("return_pending | the customer asked for a return"));
    // A second build replaces everything in place and gives the same result.
    p.run(&["build"]).ok();
    assert_same_relations(&p, "pass");
}

#[test]
fn a_failing_test_skips_exactly_what_dbt_skips() {
    let p = TestProject::fixture("dbt_shop");
    let path = p.path().join(PATCH_FILE);
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(text.matches(PATCH_FROM).count(), 1);
    std::fs::write(&path, text.replace(PATCH_FROM, PATCH_TO)).expect("write");
    let run = p.run(&["build"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "Failure in test accepted_values_stg_orders_status__placed__shipped__completed__return_pending"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(statuses(&p), expected_statuses("failing"));
    assert_same_relations(&p, "failing");
}

#[test]
fn test_command_runs_the_tests_of_the_selection_only() {
    let p = TestProject::fixture("dbt_shop");
    p.run(&["build"]).ok();
    let run = p.run(&["test", "--select", "stg_orders"]);
    run.ok();
    let ran: Vec<String> = statuses(&p).into_keys().collect();
    assert_eq!(
        ran,
        vec![
            "test.accepted_values_stg_orders_status__placed__shipped__completed__return_pending__returned",
            "test.not_null_stg_orders_order_id",
            "test.unique_stg_orders_order_id",
        ]
    );
    // Selecting by test type and name works as in dbt.
    let run = p.run(&["test", "--select", "test_type:singular"]);
    run.ok();
    assert_eq!(
        statuses(&p).into_keys().collect::<Vec<_>>(),
        vec!["test.assert_amounts_match_payments"]
    );
    let run = p.run(&["ls", "--select", "test_name:relationships"]);
    assert_eq!(
        run.stdout.trim(),
        "dbt_shop.marts.relationships_orders_customer_id__customer_id__ref_customers_"
    );
}

#[test]
fn state_modified_builds_the_edited_model_and_its_descendants() {
    let p = TestProject::fixture("dbt_shop");
    p.run(&["build"]).ok();
    std::fs::rename(p.path().join("target"), p.path().join("state")).expect("keep state");
    let model = p.path().join("models/staging/stg_payments.sql");
    let sql = std::fs::read_to_string(&model).expect("read");
    std::fs::write(&model, format!("{sql}\n-- edited\n")).expect("edit");
    let state = p.path().join("state");
    p.run(&[
        "build",
        "--select",
        "state:modified+",
        "--state",
        &state.to_string_lossy(),
    ])
    .ok();
    let built: Vec<String> = statuses(&p)
        .into_keys()
        .filter(|k| !k.starts_with("test."))
        .collect();
    assert_eq!(
        built,
        vec![
            "model.customer_segments",
            "model.customers",
            "model.orders",
            "model.stg_payments"
        ]
    );
    // The tests of those models ran with them; those of untouched models did not.
    let tests = statuses(&p);
    assert!(tests.contains_key("test.is_positive_stg_payments_amount"));
    assert!(
        tests.contains_key("test.relationships_orders_customer_id__customer_id__ref_customers_")
    );
    assert!(!tests.contains_key("test.unique_stg_customers_customer_id"));
}

#[test]
fn unsupported_dbt_features_are_named_in_one_line() {
    let p = TestProject::fixture("dbt_shop");
    p.write(
        "packages.yml",
        "packages:\n  - package: dbt-labs/dbt_utils\n    version: 1.3.0\n",
    );
    p.write(
        "models/extra.yml",
        "version: 2\nmodels:\n  - name: orders\n    columns:\n      - name: status\n        data_tests:\n          - dbt_utils.not_constant\n",
    );
    // The test that cannot compile is its own error; the rest compiles (exit 1, as dbt).
    let run = p.run(&["compile"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("Compiled"), "{}", run.stdout);
    let warning: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:") && l.contains("packages.yml"))
        .collect();
    assert_eq!(warning.len(), 1, "{}", run.stderr);
    assert!(
        warning[0].contains(
            "1 packages are declared, 0 installed under dbt_packages/; run `lakeflow deps`"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("the test 'dbt_utils.not_constant' comes from the package 'dbt_utils', which is not installed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("models/extra.yml:7"), "{}", run.stderr);
}

#[test]
fn bad_test_declarations_are_located_errors() {
    let p = TestProject::fixture("dbt_shop");
    p.write(
        "models/extra.yml",
        "version: 2\nmodels:\n  - name: orders\n    columns:\n      - name: status\n        data_tests:\n          - not_a_test\n",
    );
    let run = p.run(&["compile"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("LF210"), "{}", run.stderr);
    assert!(run.stderr.contains("there is no generic test 'not_a_test'"));
    assert!(run.stderr.contains("models/extra.yml:7"), "{}", run.stderr);
    p.write(
        "models/extra.yml",
        "version: 2\nmodels:\n  - name: orders\n    columns:\n      - name: status\n        data_tests:\n          - relationships:\n              to: ref('nope')\n              field: id\n",
    );
    let run = p.run(&["compile"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("LF203"), "{}", run.stderr);
    assert!(run.stderr.contains("models/extra.yml:7"), "{}", run.stderr);
}
