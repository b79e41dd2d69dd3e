//! dbt's naming hooks: a project's `generate_schema_name` / `generate_alias_name` /
//! `generate_database_name` decide where each model and seed lands. The expected relations are
//! the ones `dbt build` (dbt-core 1.11, dbt-duckdb 1.11) created for the same project.

mod common;

use common::{TestProject, query_i64, query_strings, read_only};

const PROJECT: &str = "name: naming_check
version: '1.0'
profile: naming_check
models:
  naming_check:
    staging:
      +schema: staging
    marts:
      +materialized: table
seeds:
  naming_check:
    +schema: raw
";

const PROFILES: &str = "naming_check:
  target: prod
  outputs:
    prod:
      type: duckdb
      path: warehouse.duckdb
      schema: analytics
    dev:
      type: duckdb
      path: warehouse.duckdb
      schema: analytics
";

const NAMING: &str = "{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if node.resource_type == 'seed' -%}
        {{ default__generate_schema_name(custom_schema_name, node) }}
    {%- else -%}
        {{ generate_schema_name_for_env(custom_schema_name, node) }}
    {%- endif -%}
{%- endmacro %}

{% macro generate_alias_name(custom_alias_name=none, node=none) -%}
    {%- if custom_alias_name -%}
        {{ custom_alias_name | trim }}
    {%- elif node.fqn | length > 2 -%}
        {{ node.fqn[1] }}__{{ node.name }}
    {%- else -%}
        {{ node.name }}
    {%- endif -%}
{%- endmacro %}
";

fn project(naming: &str) -> TestProject {
    let t = TestProject::new(&[
        ("dbt_project.yml", PROJECT),
        ("profiles.yml", PROFILES),
        ("macros/naming.sql", naming),
        ("seeds/people.csv", "id,name\n1,a\n2,b\n"),
        (
            "models/staging/stg_people.sql",
            "select * from {{ ref('people') }}",
        ),
        (
            "models/marts/people_count.sql",
            "{{ config(alias='people_final', schema='mart') }} select count(*) as n from {{ ref('stg_people') }}",
        ),
        ("models/top.sql", "select 1 as x"),
    ]);
    // A dbt project: dbt_project.yml alone.
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("remove lakeflow.yml");
    t
}

fn relations(t: &TestProject) -> Vec<String> {
    let conn = read_only(&t.path().join("warehouse.duckdb"));
    query_strings(
        &conn,
        "select table_schema || '.' || table_name from information_schema.tables where table_schema <> '_lakeflow' order by 1",
    )
}

#[test]
fn project_naming_macros_place_models_and_seeds_as_dbt_does() {
    let t = project(NAMING);
    t.run(&["build"]).ok();
    // What dbt-duckdb built for this project and target.
    assert_eq!(
        relations(&t),
        [
            "analytics.top",
            "analytics_raw.people",
            "mart.people_final",
            "staging.staging__stg_people",
        ]
    );
    let conn = read_only(&t.path().join("warehouse.duckdb"));
    assert_eq!(query_i64(&conn, "select n from mart.people_final"), 2);
    drop(conn);

    // Outside prod, generate_schema_name_for_env keeps models in the target schema.
    let t = project(NAMING);
    t.run(&["build", "--target", "dev"]).ok();
    assert_eq!(
        relations(&t),
        [
            "analytics.people_final",
            "analytics.staging__stg_people",
            "analytics.top",
            "analytics_raw.people",
        ]
    );
}

#[test]
fn naming_macros_that_cannot_be_followed_are_located_errors() {
    let t = project(
        "{% macro generate_database_name(custom_database_name=none, node=none) -%}other_db{%- endmacro %}",
    );
    let run = t.run(&["build"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("error[LF217]"), "{}", run.stderr);
    assert!(run.stderr.contains("'other_db'"), "{}", run.stderr);
    assert!(!t.path().join("warehouse.duckdb").exists());

    let t = project(
        "{% macro generate_schema_name(custom_schema_name, node) -%}{%- if node.name != 'top' -%}s{%- endif -%}{%- endmacro %}",
    );
    let run = t.run(&["build"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("error[LF218]: the generate_schema_name macro returned nothing for 'top'"),
        "{}",
        run.stderr
    );
}

/// The database override that names the catalog itself is accepted (dbt-duckdb's default).
#[test]
fn generate_database_name_may_return_the_catalog() {
    let t = project(
        "{% macro generate_database_name(custom_database_name=none, node=none) -%}warehouse{%- endmacro %}",
    );
    t.run(&["build"]).ok();
    assert_eq!(relations(&t).len(), 4);
}

/// Stored test failures go where the project's naming macros put a test with dbt's default
/// custom schema (`dbt_test__audit`): here `dbt_test__audit.staging__<test>`, as dbt-duckdb
/// built it for this project.
#[test]
fn stored_failures_follow_the_naming_macros() {
    let t = project(NAMING);
    t.write(
        "models/staging/schema.yml",
        "version: 2\nmodels:\n  - name: stg_people\n    columns:\n      - name: name\n        data_tests:\n          - accepted_values:\n              values: ['a']\n              config: {store_failures: true, severity: warn}\n",
    );
    t.run(&["build"]).ok();
    assert_eq!(
        relations(&t),
        [
            "analytics.top",
            "analytics_raw.people",
            "dbt_test__audit.staging__accepted_values_stg_people_name__a",
            "mart.people_final",
            "staging.staging__stg_people",
        ]
    );
    let conn = read_only(&t.path().join("warehouse.duckdb"));
    assert_eq!(
        query_strings(
            &conn,
            "select value_field from dbt_test__audit.staging__accepted_values_stg_people_name__a"
        ),
        ["b"]
    );
}
