//! Execution-time Jinja, as dbt runs it: a node whose Jinja reads the database (`run_query`,
//! `statement`/`load_result`, `adapter.get_columns_in_relation`, `adapter.get_relation`,
//! `adapter.drop_relation`) is rendered again just before it runs, with a live connection and
//! everything upstream already built. Expected values are what dbt-core 1.11 + dbt-duckdb
//! 1.11 build for the same project.

mod common;

use common::{TestProject, query_i64, query_strings, read_only};

const MACROS: &str = "
{% macro get_vals(rel, col) %}
  {% if not execute %}{{ return([]) }}{% endif %}
  {% call statement('vals', fetch_result=True) %}
    select distinct {{ col }} from {{ rel }} order by 1
  {% endcall %}
  {{ return(load_result('vals')['data'] | map(attribute=0) | list) }}
{% endmacro %}

{% macro stops_at_return() %}{{ return(7) }}{{ this_macro_does_not_exist() }}{% endmacro %}

{% macro takes_any(a) %}{{ a }}-{{ kwargs.get('b', 'none') }}-{{ varargs | length }}{% endmacro %}

{% macro column_list(rel) %}
  {% set names = [] %}
  {% for c in adapter.get_columns_in_relation(rel) %}{% do names.append(c.name ~ ':' ~ c.dtype) %}{% endfor %}
  {{ return(names | join(',')) }}
{% endmacro %}
";

fn project() -> TestProject {
    let t = TestProject::new(&[
        (
            "dbt_project.yml",
            "name: shop\nversion: '1.0'\nprofile: shop\nseeds:\n  shop:\n    scratch:\n      +post-hook: \"{% do adapter.drop_relation(this) %}\"\non-run-end:\n  - \"create or replace table main.run_log as select * from (values {% for r in results %}('{{ r.node.unique_id }}', '{{ r.status }}'){% if not loop.last %}, {% endif %}{% endfor %}) t(uid, status)\"\n  - \"create or replace table main.graph_log as select {{ graph.nodes.values() | selectattr('resource_type', 'equalto', 'model') | list | length }} as models\"\n",
        ),
        (
            "profiles.yml",
            "shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: shop.duckdb\n",
        ),
        ("seeds/colors.csv", "id,color\n1,red\n2,blue\n3,red\n"),
        ("seeds/scratch.csv", "x\n1\n"),
        ("macros/m.sql", MACROS),
        (
            "models/pivot.sql",
            "select\n{% for c in get_vals(ref('colors'), 'color') %}  sum(case when color = '{{ c }}' then 1 else 0 end) as n_{{ c }}{% if not loop.last %},{% endif %}\n{% endfor %}from {{ ref('colors') }}\n",
        ),
        (
            "models/facts.sql",
            "{% set q = run_query('select max(id) as m from ' ~ ref('colors')) %}\nselect '{{ column_list(ref('colors')) }}' as cols,\n  {{ q.columns[0].values()[0] if execute else 0 }} as max_id,\n  {{ 1 if adapter.get_relation(database=target.database, schema='main', identifier='colors') is not none else 0 }} as has_colors,\n  {{ 1 if adapter.get_relation(database=target.database, schema='main', identifier='nope') is none else 0 }} as no_nope,\n  {{ stops_at_return() }} as returned,\n  '{{ takes_any(1, b=2) }}|{{ takes_any(1, 5, 6) }}' as catch_all,\n  {{ set([1, 2]) == set([2, 1]) }} as same_set\n",
        ),
        (
            "models/eph.sql",
            "{{ config(materialized='ephemeral') }}\n{% set colors = ref('colors') %}\nselect {{ run_query('select count(*) from ' ~ colors).rows[0][0] if execute else 0 }} as n\n",
        ),
        ("models/uses_eph.sql", "select n from {{ ref('eph') }}\n"),
        (
            "models/broken.sql",
            "{% if execute %}{{ exceptions.raise_compiler_error('this model is broken on purpose') }}{% endif %}\n",
        ),
        (
            "models/after_broken.sql",
            "select * from {{ ref('broken') }}\n",
        ),
        ("models/plain.sql", "select 1 as x\n"),
        (
            "snapshots/snap.sql",
            "{% snapshot snap %}\n{{ config(unique_key='id', strategy='check', check_cols='all') }}\nselect * from {{ ref('colors') }}\n{% endsnapshot %}\n",
        ),
        ("models/reads_snap.sql", "select * from {{ ref('snap') }}\n"),
        (
            "models/hidden_ref.sql",
            "select {{ run_query('select count(*) from ' ~ ref('colors')).rows[0][0] if execute else 0 }} as n\n",
        ),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    t
}

#[test]
fn nodes_that_read_the_database_render_when_they_run() {
    let t = project();
    let run = t.run(&["build"]);
    // Only the broken model fails (when it compiles, after parsing; what reads it is
    // skipped); the rest builds.
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("this model is broken on purpose"),
        "{}",
        run.stdout
    );
    let conn = read_only(&t.path().join("shop.duckdb"));
    // statement + load_result: one column per distinct value, counted.
    assert_eq!(
        query_strings(&conn, "select n_blue || ' ' || n_red from main.pivot"),
        ["1 2"]
    );
    // get_columns_in_relation, run_query, get_relation, return(), kwargs/varargs, set().
    assert_eq!(
        query_strings(
            &conn,
            "select concat_ws(' ', cols, max_id, has_colors, no_nope, returned, catch_all, same_set) from main.facts"
        ),
        ["id:INTEGER,color:VARCHAR 3 1 1 7 1-2-0|1-none-2 true"]
    );
    // An ephemeral model that queries is rendered live too, inside its reader.
    assert_eq!(query_i64(&conn, "select n from main.uses_eph"), 3);
    assert_eq!(query_i64(&conn, "select x from main.plain"), 1);
    // The seed's post-hook ran after the seed was loaded, and dropped it.
    assert_eq!(
        query_i64(
            &conn,
            "select count(*) from information_schema.tables where table_name in ('scratch', 'broken', 'after_broken')"
        ),
        0
    );
    // The compiled SQL of a deferred node is what ran, with the values the queries gave.
    let compiled = std::fs::read_to_string(t.path().join("target/compiled/shop/models/pivot.sql"))
        .expect("compiled pivot");
    assert!(compiled.contains("color = 'blue'"), "{compiled}");
    let results =
        std::fs::read_to_string(t.path().join("target/run_results.json")).expect("run_results");
    let results: serde_json::Value = serde_json::from_str(&results).expect("json");
    let status = |id: &str| {
        results["results"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["unique_id"] == id))
            .map(|r| r["status"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    assert_eq!(status("model.shop.broken"), "error");
    assert_eq!(status("model.shop.after_broken"), "skipped");
    assert_eq!(status("model.shop.pivot"), "success");
    // `lakeflow compile` renders such a node with a read-only connection, as dbt compile does.
    std::fs::remove_dir_all(t.path().join("target/compiled")).expect("clean compiled");
    let run_compile = t.run(&["compile", "--select", "pivot"]);
    run_compile.ok();
    let compiled = std::fs::read_to_string(t.path().join("target/compiled/shop/models/pivot.sql"))
        .expect("compiled pivot");
    assert!(compiled.contains("color = 'red'"), "{compiled}");
    // on-run-end sees dbt's `results` (one per node run) and `graph`.
    assert_eq!(
        query_strings(
            &conn,
            "select status from main.run_log where uid in ('model.shop.pivot', 'model.shop.broken', 'model.shop.after_broken') order by uid"
        ),
        ["skipped", "error", "success"]
    );
    assert_eq!(query_i64(&conn, "select models from main.graph_log"), 9);
    // A model reads a snapshot built before it.
    assert_eq!(status("snapshot.shop.snap"), "success");
    assert_eq!(status("model.shop.reads_snap"), "success");
    // A ref made only at run time is that model's error, as in dbt (it is not in the DAG).
    assert_eq!(status("model.shop.hidden_ref"), "error");
    assert!(
        run.stdout
            .contains("ref('colors') is called only when the model runs"),
        "{}",
        run.stdout
    );
}

/// A materialization or strategy lakeflow cannot build is that model's error in a dbt
/// project (as dbt fails the node); the rest of the project builds.
#[test]
fn an_unbuildable_materialization_fails_only_its_model_in_a_dbt_project() {
    let t = TestProject::new(&[
        (
            "dbt_project.yml",
            "name: shop\nversion: '1.0'\nprofile: shop\n",
        ),
        (
            "profiles.yml",
            "shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: shop.duckdb\n",
        ),
        (
            "models/odd.sql",
            "{{ config(materialized='incremental', incremental_strategy='sideways') }}\nselect 1 as x\n",
        ),
        ("models/after_odd.sql", "select * from {{ ref('odd') }}\n"),
        ("models/fine.sql", "select 2 as x\n"),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    let run = t.run(&["build"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("unknown incremental_strategy 'sideways'"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("SKIP  main.after_odd"),
        "{}",
        run.stdout
    );
    let conn = read_only(&t.path().join("shop.duckdb"));
    assert_eq!(
        query_strings(&conn, "select x::varchar from main.fine"),
        ["2"]
    );
}

/// On-run-start hooks that query the database while rendering render when they run, one
/// after the other (the second sees what the first did), as dbt runs them.
#[test]
fn on_run_start_hooks_may_query_the_database_while_rendering() {
    let t = TestProject::new(&[
        (
            "dbt_project.yml",
            "name: hk\nversion: '1.0'\nprofile: hk\non-run-start:\n  - \"{% do run_query('create schema if not exists extra') %}\"\n  - \"create table if not exists extra.t as select {{ run_query(\\\"select count(*) + 41 from information_schema.schemata where schema_name = 'extra'\\\").columns[0].values()[0] if execute else 0 }} as v\"\n",
        ),
        (
            "profiles.yml",
            "hk:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: hk.duckdb\n",
        ),
        ("models/m.sql", "select * from extra.t\n"),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    t.run(&["build"]).ok();
    let conn = read_only(&t.path().join("hk.duckdb"));
    // dbt-duckdb: 42 (the schema the first hook made is there when the second renders).
    assert_eq!(
        query_strings(&conn, "select v::varchar from main.m"),
        ["42"]
    );
}
