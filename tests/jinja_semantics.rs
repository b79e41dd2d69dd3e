//! Jinja as dbt-core 1.11 renders it (issue 15): Python methods on values, mutable lists and
//! dicts in `{% do %}`, `config.get(k, default=)`, `log(info=True)`, `modules.*`, the dbt
//! context functions, `target.*`, and dbt's cross-database macros (`dbt.dateadd`, ...) with
//! dbt-duckdb's SQL, checked on what DuckDB computes.

mod common;
use common::*;

fn compiled(t: &TestProject, path: &str) -> String {
    std::fs::read_to_string(t.path().join("target/compiled/proj").join(path))
        .expect("compiled file")
}

/// The text between `--<name>=` and the end of its line in `sql`.
fn field<'a>(sql: &'a str, name: &str) -> &'a str {
    let tag = format!("--{name}=");
    let start = sql
        .find(&tag)
        .unwrap_or_else(|| panic!("{tag} not in:\n{sql}"))
        + tag.len();
    sql[start..].lines().next().unwrap_or("").trim_end()
}

#[test]
fn python_methods_and_mutation_in_do() {
    let t = TestProject::new(&[
        (
            "macros/m.sql",
            "{% macro collect(n) %}{% set out = [] %}{% for i in range(n) %}{% do out.append(i * 10) %}{% endfor %}{{ return(out) }}{% endmacro %}\n\
             {% macro settings() %}{% set d = {'a': 1} %}{% do d.update({'b': 2}) %}{{ return(d) }}{% endmacro %}\n",
        ),
        (
            "models/m.sql",
            "{% set l = [] %}{% do l.append(1) %}{% do l.extend([2, 3]) %}{% do l.insert(0, 0) %}\n\
             {% set d = {'a': 1} %}{% do d.update({'b': 2}) %}{% set popped = d.pop('a') %}{% do d.setdefault('c', 3) %}\n\
             {% set x = collect(3) %}{% set s = settings() %}\n\
             --list={{ l }}\n\
             --list_ops={{ l.pop() }} {{ l.index(2) }} {{ l.count(1) }} {{ l | length }}\n\
             --dict={{ d }} {{ popped }} {{ d.get('missing') is none }} {{ d.get('missing', 'dflt') }}\n\
             --dict_views={% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %} {{ d.keys() | list }} {{ d.values() | list }}\n\
             --returned={{ x }} {{ x | sum }} {{ s.b }}\n\
             --strings={{ ' Ab '.strip().upper() }} {{ 'a,b,c'.split(',') }} {{ 'a.b.c'.rsplit('.', 1) }} {{ 'xay'.replace('a', 'b') }} {{ 'abc'.startswith('a') }} {{ 'abc'.endswith('c') }} {{ '{}-{}'.format(1, 2) }} {{ '-'.join(['p', 'q']) }} {{ 'hi there'.title() }} {{ 'hi'.capitalize() }} {{ 'banana'.count('a') }} {{ 'abc'.find('c') }} {{ 'xxy'.lstrip('x') }} {{ 'yxx'.rstrip('x') }} {{ 'AB'.lower() }}\n\
             select {{ l | length }} as n, {{ x | sum }} as total",
        ),
    ]);
    t.run(&["build"]).ok();
    let sql = compiled(&t, "models/m.sql");
    assert_eq!(field(&sql, "list"), "[0, 1, 2, 3]");
    assert_eq!(field(&sql, "list_ops"), "3 2 1 3");
    assert_eq!(field(&sql, "dict"), "{'b': 2, 'c': 3} 1 True dflt", "{sql}");
    assert_eq!(field(&sql, "dict_views"), "b2c3 ['b', 'c'] [2, 3]");
    assert_eq!(field(&sql, "returned"), "[0, 10, 20] 30 2");
    assert_eq!(
        field(&sql, "strings"),
        "AB ['a', 'b', 'c'] ['a.b', 'c'] xby True True 1-2 p-q Hi There Hi 3 2 y y ab"
    );
    let c = read_only(&t.catalog());
    assert_eq!(query_i64(&c, "select n * 100 + total from m"), 330);
}

#[test]
fn config_get_keywords_require_and_log_info() {
    let t = TestProject::new(&[(
        "models/c.sql",
        "{{ config(materialized='table', meta={'owner': 'me'}) }}\n\
         {{ log('quiet message', info=False) }}{{ log('loud message', info=True) }}{{ log('plain message') }}\n\
         --get={{ config.get('nope', default='kw') }} {{ config.get('nope', 'pos') }} {{ config.get('nope') is none }} {{ config.get('materialized') }} {{ config.require('materialized') }}\n\
         select 1 as x",
    )]);
    let run = t.run(&["build"]);
    run.ok();
    assert_eq!(
        field(&compiled(&t, "models/c.sql"), "get"),
        "kw pos True table table"
    );
    assert!(run.stderr.contains("loud message"), "{}", run.stderr);
    assert!(!run.stderr.contains("quiet message"), "{}", run.stderr);
    assert!(!run.stderr.contains("plain message"), "{}", run.stderr);

    let t = TestProject::new(&[(
        "models/r.sql",
        "select {{ config.require('no_such_key') }} as x",
    )]);
    let run = t.run(&["build"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("no_such_key"), "{}", run.stderr);
}

#[test]
fn modules_and_context_functions() {
    let t = TestProject::new(&[(
        "models/f.sql",
        "--dt={{ modules.datetime.datetime(2024, 3, 5, 7, 8, 9) }} {{ modules.datetime.datetime(2024, 3, 5).strftime('%Y%m%d') }} {{ modules.datetime.timedelta(days=1) }} {{ modules.datetime.date(2024, 1, 31).isoformat() }}\n\
         --now={{ modules.datetime.datetime.now().strftime('%Y') | length }} {{ modules.datetime.date.today().year > 2020 }} {{ modules.datetime.datetime.strptime('2024-02-03', '%Y-%m-%d').month }}\n\
         --re={{ modules.re.sub('[^a-z]+', '_', 'ab CD-ef') }} {{ modules.re.match('(a)b', 'abc').group(1) }} {{ modules.re.match('b', 'abc') is none }} {{ modules.re.search('c$', 'abc') is not none }} {{ modules.re.findall('[0-9]', 'a1b2') }} {{ modules.re.compile('^x').match('xy') is not none }}\n\
         --json={{ tojson({'a': [1, 'x']}) }} {{ fromjson('{\"k\": 5}').k }} {{ fromyaml('a: [1, 2]').a[1] }} {{ toyaml({'a': 1}) | trim }}\n\
         --misc={{ zip([1, 2], ['a', 'b']) }} {{ set([3, 1, 3]) | length }} {{ local_md5('abc') }}\n\
         --run={{ invocation_id | length }} {{ run_started_at.strftime('%Y-%m-%d') | length }} {{ run_started_at.isoformat()[10] }} {{ (run_started_at | string)[-6:] }}\n\
         --flags={{ flags.FULL_REFRESH }} {{ flags.EMPTY is defined and flags.EMPTY }} {{ flags.STORE_FAILURES }} {{ flags.WARN_ERROR }} {{ flags.WHICH }}\n\
         --target={{ target.database }} {{ target.schema }} {{ target.type == 'duckdb' }} {{ target.name }} {{ target.threads }} {{ target.path.endswith('catalog.duckdb') }}\n\
         {% if run_started_at.strftime('%Y-%m-%d') == modules.datetime.datetime.utcnow().strftime('%Y-%m-%d') %}select 1 as same_day{% else %}select 0 as same_day{% endif %}",
    )]);
    t.run(&["build"]).ok();
    let sql = compiled(&t, "models/f.sql");
    assert_eq!(
        field(&sql, "dt"),
        "2024-03-05 07:08:09 20240305 1 day, 0:00:00 2024-01-31"
    );
    assert_eq!(field(&sql, "now"), "4 True 2");
    assert_eq!(field(&sql, "re"), "ab_ef a True True ['1', '2'] True");
    assert_eq!(field(&sql, "json"), "{\"a\": [1, \"x\"]} 5 2 a: 1");
    assert_eq!(
        field(&sql, "misc"),
        "[[1, 'a'], [2, 'b']] 2 900150983cd24fb0d6963f7d28e17f72"
    );
    assert_eq!(field(&sql, "run"), "36 10 T +00:00");
    assert_eq!(field(&sql, "flags"), "False False False False build");
    assert_eq!(field(&sql, "target"), "catalog main True dev 4 True");
    let c = read_only(&t.catalog());
    assert_eq!(query_i64(&c, "select same_day from f"), 1);
}

#[test]
fn exceptions_raise_and_warn() {
    let t = TestProject::new(&[(
        "models/w.sql",
        "{% do exceptions.warn('careful here') %}select 1 as x",
    )]);
    let run = t.run(&["build"]);
    run.ok();
    assert!(run.stderr.contains("careful here"), "{}", run.stderr);

    let t = TestProject::new(&[(
        "models/bad.sql",
        "{{ exceptions.raise_compiler_error('bad input ' ~ 42) }} select 1",
    )]);
    let run = t.run(&["build"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("bad input 42"), "{}", run.stderr);
    assert!(run.stderr.contains("bad.sql"), "{}", run.stderr);
}

/// Each cross-database macro is compiled into a model and evaluated by DuckDB; the values
/// are those dbt-duckdb's SQL gives.
#[test]
fn dbt_cross_database_macros_compute_in_duckdb() {
    let t = TestProject::new(&[
        (
            "models/src.sql",
            "select * from (values (1, date '2024-01-31', timestamp '2024-01-31 10:00:00', 'a,b,c', true),\
             (2, date '2024-02-15', timestamp '2024-03-01 00:00:00', 'x,y,z', false)) t(id, d, ts, s, b)",
        ),
        (
            "models/x.sql",
            "select id,\n\
             cast({{ dbt.dateadd('day', 1, 'd') }} as date) as plus_day,\n\
             cast({{ dbt.dateadd('month', 1, 'd') }} as date) as plus_month,\n\
             cast({{ dbt.dateadd('quarter', 1, 'd') }} as date) as plus_quarter,\n\
             cast({{ dbt.dateadd(datepart='week', interval=-1, from_date_or_timestamp='d') }} as date) as minus_week,\n\
             {{ dbt.datediff('d', 'ts', 'day') }} as diff_days,\n\
             {{ dbt.datediff(\"date '2024-01-01'\", 'd', 'week') }} as diff_weeks,\n\
             cast({{ dbt.date_trunc('month', 'd') }} as date) as month_start,\n\
             {{ dbt.last_day('d', 'month') }} as month_end,\n\
             {{ dbt.last_day('d', 'quarter') }} as quarter_end,\n\
             {{ dbt.concat(['s', \"'!'\"]) }} as concatenated,\n\
             {{ dbt.hash('id') }} as hashed,\n\
             {{ dbt.safe_cast(\"'12'\", dbt.type_int()) }} as casted,\n\
             cast(id as {{ dbt.type_string() }}) as t_string,\n\
             cast(id as {{ dbt.type_bigint() }}) as t_bigint,\n\
             cast(id as {{ dbt.type_numeric() }}) as t_numeric,\n\
             cast(id as {{ dbt.type_float() }}) as t_float,\n\
             cast(d as {{ dbt.type_timestamp() }}) as t_timestamp,\n\
             cast(id as {{ dbt.type_boolean() }}) as t_boolean,\n\
             {{ dbt.split_part('s', \"','\", 2) }} as second_part,\n\
             {{ dbt.replace('s', \"','\", \"'-'\") }} as replaced,\n\
             {{ dbt.cast_bool_to_text('b') }} as bool_text,\n\
             {{ dbt.position(\"'b'\", 's') }} as pos,\n\
             {{ dbt.length('s') }} as len,\n\
             {{ dbt.right('s', 2) }} as right2,\n\
             '{{ dbt.escape_single_quotes(\"it's\") }}' as escaped,\n\
             {{ dbt.string_literal('lit') }} as literal,\n\
             {{ dbt.array_construct(['id', 'id + 1']) }} as arr,\n\
             {{ dbt.current_timestamp() }} is not null as has_now\n\
             from {{ ref('src') }}",
        ),
        (
            "models/agg.sql",
            "select {{ dbt.listagg('s', \"'|'\", 'order by id desc') }} as joined,\n\
             {{ dbt.listagg('cast(id as varchar)', \"','\", 'order by id', 1) }} as first_id,\n\
             {{ dbt.any_value('id') }} between 1 and 2 as any_ok,\n\
             {{ dbt.bool_or('b') }} as any_true\n\
             from {{ ref('src') }}",
        ),
        (
            "models/setops.sql",
            "select id from {{ ref('src') }} {{ dbt.except() }} select 2\n\
             union all (select 2 from {{ ref('src') }} {{ dbt.intersect() }} select id from {{ ref('src') }})",
        ),
        (
            "macros/override.sql",
            "{% macro dateadd(datepart, interval, from_date_or_timestamp) %}'project macro'{% endmacro %}",
        ),
        (
            "models/own.sql",
            "select {{ dateadd('day', 1, 'x') }} as own, {{ dbt.dateadd('day', 1, \"date '2024-01-01'\") }} as builtin",
        ),
    ]);
    t.run(&["build"]).ok();
    let c = read_only(&t.catalog());
    let row = |sql: &str| query_strings(&c, sql);
    assert_eq!(
        row(
            "select concat_ws(' ', plus_day, plus_month, plus_quarter, minus_week) from x order by id"
        ),
        [
            "2024-02-01 2024-02-29 2024-04-30 2024-01-24",
            "2024-02-16 2024-03-15 2024-05-15 2024-02-08"
        ]
    );
    assert_eq!(
        row(
            "select concat_ws(' ', diff_days, diff_weeks, month_start, month_end, quarter_end) from x order by id"
        ),
        [
            "0 4 2024-01-01 2024-01-31 2024-03-31",
            "15 6 2024-02-01 2024-02-29 2024-03-31"
        ]
    );
    assert_eq!(
        row(
            "select concat_ws(' ', concatenated, hashed = md5(cast(id as varchar)), casted + 1, t_string, t_bigint, t_numeric, t_float, t_timestamp, t_boolean) from x order by id"
        ),
        [
            "a,b,c! true 13 1 1 1.000000 1.0 2024-01-31 00:00:00 true",
            "x,y,z! true 13 2 2 2.000000 2.0 2024-02-15 00:00:00 true"
        ]
    );
    assert_eq!(
        row(
            "select concat_ws(' ', second_part, replaced, bool_text, pos, len, right2, escaped, literal, arr, has_now) from x order by id"
        ),
        [
            "b a-b-c true 3 5 ,c it's lit [1, 2] true",
            "y x-y-z false 0 5 ,z it's lit [2, 3] true"
        ]
    );
    assert_eq!(
        row("select concat_ws(' ', joined, first_id, any_ok, any_true) from agg"),
        ["x,y,z|a,b,c 1 true true"]
    );
    assert_eq!(
        row("select cast(id as varchar) from setops order by id"),
        ["1", "2"]
    );
    assert_eq!(
        row("select own || ' ' || cast(builtin as date) from own"),
        ["project macro 2024-01-02"]
    );
    let types = row(
        "select data_type from information_schema.columns where table_name = 'x' and column_name like 't\\_%' escape '\\' order by column_name",
    );
    assert_eq!(
        types,
        [
            "BIGINT",
            "BOOLEAN",
            "FLOAT",
            "DECIMAL(28,6)",
            "VARCHAR",
            "TIMESTAMP"
        ]
    );
}

/// `target` is there in schema files too, as in dbt: a config rendered from it selects.
#[test]
fn target_renders_inside_schema_files() {
    let t = TestProject::new(&[
        ("models/a.sql", "select 1 as x"),
        ("models/b.sql", "select 2 as x"),
        (
            "models/schema.yml",
            "version: 2\nmodels:\n  - name: a\n    config:\n      tags: [\"built_in_{{ target.name }}\", \"{{ target.type }}\"]\n",
        ),
    ]);
    let run = t.run(&["ls", "--select", "tag:built_in_dev,tag:duckdb"]);
    run.ok();
    assert_eq!(run.stdout.trim(), "proj.a", "{}", run.stdout);
    let run = t.run(&["ls", "--select", "tag:built_in_prod", "--target", "prod"]);
    run.ok();
    assert_eq!(run.stdout.trim(), "proj.a", "{}", run.stdout);
}

/// A macro may call any other, wherever it is defined: before it in the same file, in an
/// earlier file, or after it (the combined macro template used to hide earlier ones).
#[test]
fn macros_call_macros_defined_before_and_after_them() {
    let t = TestProject::new(&[
        (
            "macros/a.sql",
            "{% macro first() %}1{% endmacro %}{% macro second() %}{{ first() }} + {{ third() }}{% endmacro %}",
        ),
        (
            "macros/b.sql",
            "{% macro third() %}{{ first() }} * 10{% endmacro %}{% macro listed() %}{{ return([first(), 2]) }}{% endmacro %}",
        ),
        (
            "models/m.sql",
            "{{ config(materialized='table') }} select {{ second() }} as x, {{ listed() | length }} as n",
        ),
    ]);
    t.run(&["run"]).ok();
    let conn = read_only(&t.catalog());
    assert_eq!(query_i64(&conn, "select x from m"), 11);
    assert_eq!(query_i64(&conn, "select n from m"), 2);
}

/// `target` in the project file, as dbt_date's integration project writes it:
/// `+materialized: "{{ 'ephemeral' if target.name == 'trino' else 'table' }}"`.
#[test]
fn target_renders_inside_the_project_file() {
    let t = TestProject::new(&[("models/a.sql", "select 1 as x")]);
    t.write(
        "lakeflow.yml",
        "name: proj\nprofile: proj\nmodels:\n  proj:\n    +materialized: \"{{ 'view' if target.name == 'prod' else 'table' }}\"\n",
    );
    t.run(&["run"]).ok();
    let conn = read_only(&t.catalog());
    assert_eq!(
        query_strings(
            &conn,
            "select table_type from information_schema.tables where table_name = 'a'"
        ),
        ["BASE TABLE"]
    );
}

/// One run has one `invocation_id` and one `run_started_at`, in project hooks and models alike.
#[test]
fn hooks_and_models_share_the_runs_invocation_id() {
    let t = TestProject::new(&[(
        "models/m.sql",
        "{{ config(materialized='table') }} select '{{ invocation_id }}' as id, '{{ run_started_at }}' as started",
    )]);
    t.write(
        "lakeflow.yml",
        "name: proj\nprofile: proj\non-run-start:\n  - \"create or replace table main.hook as select '{{ invocation_id }}' as id, '{{ run_started_at }}' as started\"\n",
    );
    t.run(&["run"]).ok();
    let conn = read_only(&t.catalog());
    assert_eq!(
        query_i64(
            &conn,
            "select count(*) from main.m join main.hook using (id, started)"
        ),
        1
    );
}

/// dbt's view of the invocation (`flags`, `invocation_args_dict`, `dbt_metadata_envs`),
/// `var(name, none)` as a default, dbt's casting filters and `api.Column`'s type helpers, as
/// packages such as dbt_artifacts use them.
#[test]
fn the_invocation_var_defaults_filters_and_column_types_as_dbt_has_them() {
    let t = TestProject::new(&[(
        "models/m.sql",
        "--flags={{ flags.WHICH }} {{ flags.FULL_REFRESH }} {{ invocation_args_dict.which }} {{ invocation_args_dict.select }}\n\
         {% do invocation_args_dict.update({'extra': 1}) %}--args={{ invocation_args_dict.extra }} {{ invocation_args_dict.vars }}\n\
         --envs={% for k, v in dbt_metadata_envs.items() %}{{ k }}={{ v }}{% endfor %}\n\
         --var={{ var('nope', none) is none }} {{ 'True' | as_bool }} {{ ('3' | as_number) + 1 }}\n\
         --types={{ api.Column.translate_type('string') }} {{ api.Column.translate_type('integer') }} {{ api.Column.translate_type('varchar') }} {{ api.Column.string_type(8) }}\n\
         select 1 as x",
    )]);
    let run = t
        .command(&[
            "run",
            "-s",
            "m",
            "--full-refresh",
            "--vars",
            "{day: 3, api_token: hidden}",
        ])
        .env("DBT_ENV_CUSTOM_ENV_TEAM", "data")
        .output()
        .expect("run");
    Run::from(run).ok();
    let sql = compiled(&t, "models/m.sql");
    assert_eq!(field(&sql, "flags"), "run True run ['m']");
    // Vars named like secrets stay out of what the project can read back.
    assert_eq!(field(&sql, "args"), "1 {'day': 3}");
    assert_eq!(field(&sql, "envs"), "TEAM=data");
    assert_eq!(field(&sql, "var"), "True True 4");
    assert_eq!(
        field(&sql, "types"),
        "TEXT INT varchar character varying(8)"
    );
}

/// dbt's date_spine, generate_series and array/cast/equals macros, with the rows dbt-duckdb
/// 1.11 built from the same calls.
#[test]
fn dbt_spine_series_and_array_macros_give_dbt_duckdbs_rows() {
    let t = TestProject::new(&[
        (
            "models/spine.sql",
            "{{ dbt.date_spine('day', \"cast('2024-01-30' as date)\", \"cast('2024-02-03' as date)\") }}",
        ),
        (
            "models/spine_m.sql",
            "{{ dbt.date_spine('month', \"cast('2024-01-15' as date)\", \"cast('2024-06-01' as date)\") }}",
        ),
        ("models/series.sql", "{{ dbt.generate_series(5) }}"),
        (
            "models/misc.sql",
            "select {{ dbt.array_append('[1, 2]', '3') }} as a, {{ dbt.array_concat('[1]', '[2, 3]') }} as c, {{ dbt.cast(\"'7'\", 'integer') }} as i, {{ dbt.equals('1', '1') }} as e, {{ dbt.equals('null', 'null') }} as en, {{ dbt.get_powers_of_two(5) }} as p, {{ set_strict([1, 1, 2]) | length }} as s",
        ),
    ]);
    t.run(&["build"]).ok();
    let c = read_only(&t.catalog());
    assert_eq!(
        query_strings(&c, "select date_day::varchar from spine order by 1"),
        [
            "2024-01-30 00:00:00",
            "2024-01-31 00:00:00",
            "2024-02-01 00:00:00",
            "2024-02-02 00:00:00"
        ]
    );
    assert_eq!(
        query_strings(
            &c,
            "select date_month::date::varchar from spine_m order by 1"
        ),
        [
            "2024-01-15",
            "2024-02-15",
            "2024-03-15",
            "2024-04-15",
            "2024-05-15"
        ]
    );
    assert_eq!(
        query_strings(
            &c,
            "select string_agg(generated_number::varchar, ',') from series"
        ),
        ["1,2,3,4,5"]
    );
    assert_eq!(
        query_strings(
            &c,
            "select concat_ws(' ', a::varchar, c::varchar, i, e, coalesce(en::varchar, 'null'), p, s) from misc"
        ),
        ["[1, 2, 3] [1, 2, 3] 7 true null 3 2"]
    );
}

/// The project file's `data_tests:` configs render like the rest of it; schema files'
/// metric filters (MetricFlow's Jinja) are left alone, as dbt leaves them; dbt's
/// should_full_refresh() follows a model's `full_refresh` config over --full-refresh.
#[test]
fn project_test_configs_render_metric_filters_do_not_and_full_refresh_config_wins() {
    let t = TestProject::new(&[
        (
            "dbt_project.yml",
            "name: p\nversion: '1.0'\nprofile: p\ndata_tests:\n  +enabled: \"{{ true if target.name == 'dev' else false }}\"\n  +severity: \"{{ 'warn' }}\"\nmodels:\n  p:\n    +full_refresh: false\n",
        ),
        (
            "profiles.yml",
            "p:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: p.duckdb\n",
        ),
        (
            "models/m.sql",
            "{{ config(materialized='table') }}\nselect {{ 1 if should_full_refresh() else 0 }} as fr, null as x\n",
        ),
        (
            "models/schema.yml",
            "version: 2\nmodels:\n  - name: m\n    columns:\n      - name: x\n        data_tests: [not_null]\nmetrics:\n  - name: m_count\n    label: count\n    type: simple\n    type_params:\n      measure: n\n    filter: |\n      {{ Dimension('m__x') }} > 1\n",
        ),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    let run = t.run(&["build", "--full-refresh"]);
    run.ok();
    assert!(
        run.stdout.contains("WARN  test not_null_m_x"),
        "{}",
        run.stdout
    );
    let c = read_only(&t.path().join("p.duckdb"));
    assert_eq!(query_i64(&c, "select fr from main.m"), 0);
}

/// dbt's `graph` has every key dbt sets, with dbt's defaults: node configs, language,
/// `depends_on.nodes` with sources, access, columns with constraints; sources with
/// freshness (both thresholds), loader and loaded_at_field; a test given its own `name:`
/// under that alias. The probe's text is what dbt-duckdb 1.11 rendered from these files.
#[test]
fn the_graph_has_dbts_keys_and_defaults() {
    let t = TestProject::new(&[
        (
            "dbt_project.yml",
            "name: p\nversion: '1.0'\nprofile: p\non-run-start:\n  - \"create table if not exists main.events as select 1 as id, '2024-01-01' as at\"\n",
        ),
        (
            "profiles.yml",
            "p:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: p.duckdb\n",
        ),
        (
            "models/schema.yml",
            "version: 2\nsources:\n  - name: raw\n    schema: main\n    loader: csv\n    tables:\n      - name: events\n        loaded_at_field: at\n        freshness:\n          warn_after: {count: 1, period: hour}\nmodels:\n  - name: src_user\n    columns:\n      - name: id\n        data_tests:\n          - not_null:\n              name: my_custom_test\nexposures:\n  - name: dash\n    type: dashboard\n    maturity: high\n    url: https://example.com/d\n    owner:\n      name: Ana\n      email: ana@example.com\n    depends_on:\n      - ref('src_user')\n      - source('raw', 'events')\n",
        ),
        (
            "models/exp_probe.sql",
            "{% set out = [] %}{% if execute %}{% set e = graph.exposures['exposure.p.dash'] %}{% for v in [e.type, e.owner.email, e.depends_on.nodes | join(','), e.maturity, e.url, e.package_name, e.resource_type, e.description] %}{% do out.append(v) %}{% endfor %}{% endif %}\nselect '{{ out | join(\"|\") }}' as probe\n",
        ),
        (
            "models/src_user.sql",
            "select * from {{ source('raw', 'events') }}\n",
        ),
        (
            "models/graph_probe.sql",
            "{% set out = [] %}{% if execute %}{% set n = graph.nodes['model.p.src_user'] %}{% set s = graph.sources['source.p.raw.events'] %}{% set t = (graph.nodes.values() | selectattr('resource_type', 'equalto', 'test') | list)[0] %}\
             {% for v in [n.config.enabled, n.language, n.depends_on.nodes | join(','), n.config.materialized, s.freshness.warn_after.count, s.freshness.error_after.count, s.loaded_at_field, t.alias, n.access, s.loader, n.columns.id.constraints | length, t.config.severity, n.original_file_path] %}{% do out.append(v) %}{% endfor %}{% endif %}\n\
             select '{{ out | join(\"|\") }}' as probe\n",
        ),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    t.run(&["build"]).ok();
    let c = read_only(&t.path().join("p.duckdb"));
    assert_eq!(
        query_strings(&c, "select probe from main.graph_probe"),
        [
            "True|sql|source.p.raw.events|view|1|None|at|my_custom_test|protected|csv|0|ERROR|models/src_user.sql"
        ]
    );
    assert_eq!(
        query_strings(&c, "select probe from main.exp_probe"),
        [
            "dashboard|ana@example.com|source.p.raw.events,model.p.src_user|high|https://example.com/d|p|exposure|"
        ]
    );
    // A build of the whole project lists the exposure, with nothing to run (as dbt's).
    let results =
        std::fs::read_to_string(t.path().join("target/run_results.json")).expect("results");
    let results: serde_json::Value = serde_json::from_str(&results).expect("json");
    let exposure = results["results"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["unique_id"] == "exposure.p.dash"));
    assert_eq!(
        exposure.map(|e| e["status"].clone()),
        Some(serde_json::json!("no-op")),
        "{results}"
    );
}

/// What dbt-codegen's and dbt-audit-helper's integration tests lean on, with the values
/// dbt-duckdb 1.11 gave: dbt's naming macros callable by name, `print()`, columns' `fields`,
/// a seed column with no values typed INTEGER, and `tests/fixtures/` not read as tests.
#[test]
fn naming_macros_print_fields_empty_seed_columns_and_fixtures_as_dbt_has_them() {
    let t = TestProject::new(&[
        ("dbt_project.yml", "name: p\nversion: '1.0'\nprofile: p\n"),
        (
            "profiles.yml",
            "p:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: p.duckdb\n",
        ),
        ("seeds/s.csv", "id,empty_col\n1,\n2,\n"),
        ("tests/fixtures/fx.sql", "select broken syntax here\n"),
        (
            "models/m.sql",
            "{{ print('hello from print') }}\n{% set rel = ref('s') %}\n{% set cols = adapter.get_columns_in_relation(rel) if execute else [] %}\nselect '{{ generate_schema_name('raw_data') }}' as sch, '{{ generate_schema_name(none) }}' as sch2, '{{ generate_database_name() }}' as db, {{ (cols | map(attribute='fields') | map('length') | sum) if execute else 0 }} as nfields, {{ cols | length }} as ncols\n",
        ),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    let run = t.run(&["build"]);
    run.ok();
    assert!(run.stdout.contains("hello from print"), "{}", run.stdout);
    let c = read_only(&t.path().join("p.duckdb"));
    assert_eq!(
        query_strings(
            &c,
            "select concat_ws(' ', sch, sch2, db, nfields, ncols) from main.m"
        ),
        ["main_raw_data main p 0 2"]
    );
    assert_eq!(
        query_strings(
            &c,
            "select data_type from information_schema.columns where table_name = 's' order by ordinal_position"
        ),
        ["INTEGER", "INTEGER"]
    );
}
