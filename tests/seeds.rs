//! Seeds: CSV files under `seed-paths`, loaded with DuckDB's CSV reader, refable like models.

mod common;
use common::*;

const CUSTOMERS: &str = "id,name,note,zip\r\n1,Ada,\"likes, commas\",01234\r\n2,Bo,\"two\r\nlines\",99999\r\n3,\"Cy \"\"the\"\" third\",,00042\r\n";

fn project() -> TestProject {
    let t = TestProject::new(&[
        ("seeds/customers.csv", CUSTOMERS),
        (
            "seeds/ref/countries.csv",
            "code;label\nDE;Germany\nFR;France\n",
        ),
        (
            "models/gold/customer_countries.sql",
            "select c.id, c.name, k.label from {{ ref('customers') }} c cross join {{ ref('countries') }} k where k.code = 'DE'",
        ),
    ]);
    t.write(
        "lakeflow.yml",
        "name: proj\nprofile: proj\nseeds:\n  proj:\n    customers:\n      +column_types: {zip: varchar}\n    ref:\n      +delimiter: ';'\n",
    );
    t
}

#[test]
fn seeds_load_with_quoting_crlf_delimiters_and_column_types() {
    let t = project();
    let out = t.run(&["seed"]);
    out.ok();
    assert!(out.stdout.contains("main.customers"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("customer_countries"),
        "seed ran a model:\n{}",
        out.stdout
    );
    let c = read_only(&t.catalog());
    assert_eq!(query_i64(&c, "select count(*) from main.customers"), 3);
    assert_eq!(
        query_strings(&c, "select zip from main.customers order by id"),
        vec!["01234", "99999", "00042"],
        "column_types keeps leading zeros"
    );
    assert_eq!(
        query_strings(&c, "select note from main.customers where id = 2"),
        vec!["two\r\nlines"]
    );
    assert_eq!(
        query_strings(&c, "select name from main.customers where id = 3"),
        vec!["Cy \"the\" third"]
    );
    assert_eq!(
        query_i64(&c, "select count(*) from main.customers where note is null"),
        1
    );
    assert_eq!(
        query_strings(&c, "select label from ref.countries order by code"),
        vec!["Germany", "France"]
    );
    assert_eq!(
        query_strings(
            &c,
            "select data_type from duckdb_columns() where table_name = 'customers' and column_name = 'id'"
        ),
        vec!["INTEGER"],
        "whole numbers that fit are INTEGER, as in dbt-duckdb"
    );
}

#[test]
fn run_leaves_seeds_alone_and_build_loads_them_first() {
    let t = project();
    // `run` runs models only: without the seeds, the model's upstream tables are missing.
    let r = t.run(&["run"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let b = t.run(&["build"]);
    b.ok();
    let seed_at = b
        .stdout
        .find("main.customers")
        .expect("seed in build output");
    let model_at = b
        .stdout
        .find("gold.customer_countries")
        .expect("model in build output");
    assert!(seed_at < model_at, "{}", b.stdout);
    let c = read_only(&t.catalog());
    assert_eq!(
        query_strings(
            &c,
            "select string_agg(name || ':' || label, ',' order by id) from gold.customer_countries"
        ),
        vec!["Ada:Germany,Bo:Germany,Cy \"the\" third:Germany"]
    );
    drop(c);
    // Selection works on seeds like on models; the manifest says what each node is.
    let ls = t.run(&["ls", "--select", "+customer_countries"]);
    let mut listed: Vec<&str> = ls.ok().stdout.lines().collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            "proj.customers",
            "proj.gold.customer_countries",
            "proj.ref.countries"
        ]
    );
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(t.path().join("target/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["nodes"]["seed.proj.customers"]["resource_type"],
        "seed"
    );
    assert_eq!(
        manifest["nodes"]["model.proj.customer_countries"]["resource_type"],
        "model"
    );
}

#[test]
fn a_seed_and_a_model_with_one_name_is_an_error() {
    let t = project();
    t.write("models/customers.sql", "select 1");
    let r = t.run(&["build"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("two models or seeds are named 'customers'"),
        "{}",
        r.stderr
    );
    // A disabled one may share the name (dbt sets disabled nodes aside): refs reach the
    // enabled one.
    t.write(
        "models/customers.sql",
        "{{ config(enabled=false) }} select 1",
    );
    t.write(
        "models/reads_customers.sql",
        "select count(*) as n from {{ ref('customers') }}",
    );
    t.run(&["build"]).ok();
    let c = read_only(&t.catalog());
    assert!(query_i64(&c, "select n from reads_customers") > 1);
}
