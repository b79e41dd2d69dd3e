//! Jinja and configuration as dbt users write them, checked on the compiled SQL and the data.

mod common;
use common::*;

fn compiled(t: &TestProject, path: &str) -> String {
    std::fs::read_to_string(t.path().join("target/compiled/proj").join(path))
        .expect("compiled file")
}

#[test]
fn config_precedence_folder_then_schema_yml_then_sql() {
    let t = TestProject::new(&[
        (
            "lakeflow.yml",
            "name: proj\nprofile: proj\nmodels:\n  proj:\n    +materialized: view\n    silver:\n      +materialized: external\n      +tags: [s]\n",
        ),
        ("models/silver/from_folder.sql", "select 1 as x"),
        ("models/silver/from_yaml.sql", "select 2 as x"),
        (
            "models/silver/from_sql.sql",
            "{{ config(materialized='table', tags=['t']) }} select 3 as x",
        ),
        ("models/other.sql", "select 4 as x"),
        (
            "models/schema.yml",
            "version: 2\nmodels:\n  - name: from_yaml\n    config:\n      materialized: table\n      alias: renamed\n",
        ),
    ]);
    let run = t.run(&["ls", "--output", "json"]);
    run.ok();
    let by_name: std::collections::HashMap<String, serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| (v["name"].as_str().unwrap().to_string(), v))
        .collect();
    assert_eq!(by_name["from_folder"]["materialized"], "external");
    assert_eq!(by_name["from_yaml"]["materialized"], "table");
    assert_eq!(by_name["from_yaml"]["relation"], "\"silver\".\"renamed\"");
    assert_eq!(by_name["from_sql"]["materialized"], "table");
    assert_eq!(by_name["from_sql"]["tags"], serde_json::json!(["s", "t"]));
    assert_eq!(by_name["other"]["materialized"], "view");
    assert_eq!(by_name["other"]["relation"], "\"main\".\"other\"");
    t.run(&["build"]).ok();
    let c = read_only(&t.catalog());
    assert_eq!(query_i64(&c, "select x from silver.renamed"), 2);
    assert_eq!(query_i64(&c, "select x from silver.from_folder"), 1);
}

#[test]
fn macros_return_vars_env_vars_this_and_target() {
    let t = TestProject::new(&[
        (
            "lakeflow.yml",
            "name: proj\nprofile: proj\nvars:\n  factor: 3\n  label: base\n",
        ),
        (
            "macros/util.sql",
            "{% macro numbers(n) %}{{ return(range(n) | list) }}{% endmacro %}\n\
             {% macro times(col) -%}{{ col }} * {{ var('factor') }}{%- endmacro %}\n\
             {% macro pick(flag) %}{% if flag %}{{ return('yes') }}{% endif %}{{ return('no') }}{% endmacro %}\n",
        ),
        (
            "models/m.sql",
            "select {{ times('2') }} as six, '{{ pick(true) }}' as y, '{{ pick(false) }}' as n,\n\
             {{ numbers(4) | length }} as four, '{{ var('label') }}' as label,\n\
             '{{ env_var('LF_TEST_COLOR', 'none') }}' as color, '{{ this }}' as me, '{{ target.name }}' as tgt",
        ),
    ]);
    let out = t
        .command(&["run", "--vars", "{label: cli}"])
        .env("LF_TEST_COLOR", "teal")
        .output()
        .unwrap();
    Run::from(out).ok();
    let c = read_only(&t.catalog());
    let row: (i64, String, String, i64, String, String, String, String) = c
        .query_row("select * from main.m", [], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .unwrap();
    assert_eq!(
        row,
        (
            6,
            "yes".into(),
            "no".into(),
            4,
            "cli".into(),
            "teal".into(),
            "\"main\".\"m\"".into(),
            "dev".into()
        )
    );
}

#[test]
fn ephemeral_models_are_inlined_including_chains_and_existing_with() {
    let t = TestProject::new(&[
        (
            "models/e1.sql",
            "{{ config(materialized='ephemeral') }} select range as id from range(5)",
        ),
        (
            "models/e2.sql",
            "{{ config(materialized='ephemeral') }} select id from {{ ref('e1') }} where id > 1",
        ),
        (
            "models/m.sql",
            "with x as (select * from {{ ref('e2') }}) select count(*) as n from x",
        ),
    ]);
    t.run(&["run"]).ok();
    let sql = compiled(&t, "models/m.sql");
    assert!(
        sql.find("__lf_ephemeral__e1 as").unwrap() < sql.find("__lf_ephemeral__e2 as").unwrap(),
        "{sql}"
    );
    let c = read_only(&t.catalog());
    assert_eq!(query_i64(&c, "select n from main.m"), 3);
    assert_eq!(
        query_i64(
            &c,
            "select count(*) from information_schema.tables where table_name like 'e%'"
        ),
        0
    );
}

#[test]
fn user_external_location_macro_replaces_the_default() {
    let t = TestProject::new(&[
        (
            "lakeflow.yml",
            "name: proj\nprofile: proj\nmodels:\n  proj:\n    +materialized: external\n",
        ),
        (
            "macros/external_location.sql",
            "{% macro external_location(relation, config) -%}\n\
             {%- set root = config.get('external_root', target.external_root, validator=validation.any[basestring]) -%}\n\
             {%- set layer = model['fqn'][1] -%}\n\
             {{ return(root ~ '/' ~ target.name ~ '/custom_' ~ layer ~ '/' ~ model['alias'] ~ '.' ~ config.get('format', 'parquet')) }}\n\
             {%- endmacro %}",
        ),
        ("models/silver/x.sql", "select 42 as answer"),
        (
            "models/silver/y.sql",
            "{{ config(location='dev/pinned/y.parquet') }} select 1 as one",
        ),
    ]);
    t.run(&["build"]).ok();
    assert!(t.lake("dev/custom_silver/x.parquet").is_file());
    assert!(
        t.lake("dev/pinned/y.parquet").is_file(),
        "`location` config wins over the macro"
    );
    let c = read_only(&t.catalog());
    assert_eq!(query_i64(&c, "select answer from silver.x"), 42);
}

#[test]
fn production_paths_are_refused_to_other_targets() {
    let t = TestProject::new(&[
        (
            "lakeflow.yml",
            "name: proj\nprofile: proj\nmodels:\n  proj:\n    +materialized: external\n",
        ),
        (
            "models/silver/x.sql",
            "{{ config(location='silver/x.parquet') }} select 1 as one",
        ),
    ]);
    let run = t.run(&["build"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("inside the production root"),
        "{}",
        run.stderr
    );
    assert!(!t.lake("silver/x.parquet").exists());
    t.run(&["build", "--target", "prod"]).ok();
    assert!(t.lake("silver/x.parquet").is_file());
}

#[test]
fn sources_read_files_relative_to_the_project() {
    let t = TestProject::new(&[
        ("data/people.csv", "id,name\n1,ada\n2,bob\n"),
        (
            "models/sources.yml",
            "version: 2\nsources:\n  - name: raw\n    meta:\n      external_location: data/{name}.csv\n    tables:\n      - name: people\n  - name: fn\n    tables:\n      - name: people\n        meta:\n          external_location: \"read_csv('data/{name}.csv', header = true)\"\n",
        ),
        (
            "models/a.sql",
            "select count(*) as n from {{ source('raw', 'people') }}",
        ),
        (
            "models/b.sql",
            "select count(*) as n from {{ source('fn', 'people') }}",
        ),
    ]);
    let out = t.command(&["run"]).current_dir("/").output().unwrap();
    Run::from(out).ok();
    let c = read_only(&t.catalog());
    assert_eq!(query_i64(&c, "select n from main.a"), 2);
    assert_eq!(query_i64(&c, "select n from main.b"), 2);
}

#[test]
fn dbt_project_with_profiles_dir_and_dbt_schema_naming() {
    let t = TestProject::new(&[]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).unwrap();
    std::fs::remove_file(t.path().join("profiles.yml")).unwrap();
    t.write(
        "dbt_project.yml",
        "name: jaffle\nversion: '1.0'\nprofile: jaffle\nmodel-paths: [\"models\"]\nmodels:\n  jaffle:\n    marts:\n      +materialized: table\n      +schema: marts\n",
    );
    t.write(
        "prof/profiles.yml",
        "jaffle:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: \"{{ env_var('LF_T_DB', 'x.duckdb') }}\"\n      schema: analytics\n",
    );
    t.write("models/staging/stg.sql", "select 1 as id");
    t.write("models/marts/mart.sql", "select * from {{ ref('stg') }}");
    let profiles = t.path().join("prof");
    let out = t
        .command(&["build", "--profiles-dir", &profiles.to_string_lossy()])
        .env("LF_T_DB", t.path().join("j.duckdb"))
        .output()
        .unwrap();
    Run::from(out).ok();
    let c = read_only(&t.path().join("j.duckdb"));
    assert_eq!(query_i64(&c, "select id from analytics.stg"), 1);
    assert_eq!(query_i64(&c, "select id from analytics_marts.mart"), 1);
}
