//! Python models (`def model(dbt, session)`), as dbt-duckdb runs them: with the user's Python
//! (here the test venv's, which has the duckdb package), `dbt.ref()` / `dbt.source()` as
//! DuckDB relations, the result built by the model's materialization; a failing model is its
//! own node's error with the Python traceback, and what reads it is skipped.

mod common;

use common::{TestProject, query_i64, query_strings, read_only};

fn python() -> String {
    std::env::var("LAKEFLOW_PYTHON")
        .expect("LAKEFLOW_PYTHON is not set: run the tests with scripts/test (its venv has duckdb)")
}

fn project() -> TestProject {
    let t = TestProject::new(&[
        (
            "dbt_project.yml",
            "name: shop\nversion: '1.0'\nprofile: shop\n",
        ),
        (
            "profiles.yml",
            "shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: shop.duckdb\n      external_root: lake\n",
        ),
        ("seeds/colors.csv", "id,color\n1,red\n2,blue\n3,red\n"),
        (
            "models/sources.yml",
            "version: 2\nsources:\n  - name: raw\n    schema: main\n    tables:\n      - name: colors\n",
        ),
        (
            "models/reds.py",
            "import duckdb\n\n\ndef model(dbt, session):\n    dbt.config(materialized='table')\n    colors = dbt.ref('colors')\n    raw = dbt.source('raw', 'colors')\n    assert dbt.config.get('materialized') == 'table'\n    return colors.filter(\"color = 'red'\").project('id, upper(color) as color, ' + str(raw.count('*').fetchone()[0]) + ' as total')\n",
        ),
        (
            "models/reds_file.py",
            "def model(dbt, session):\n    dbt.config(materialized='external', format='parquet')\n    return session.sql('select 42 as answer')\n",
        ),
        (
            "models/red_count.sql",
            "select count(*) as n from {{ ref('reds') }}\n",
        ),
        (
            "models/broken.py",
            "def model(dbt, session):\n    raise ValueError('this model is broken on purpose')\n",
        ),
        (
            "models/after_broken.sql",
            "select * from {{ ref('broken') }}\n",
        ),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    t
}

#[test]
fn python_models_run_with_the_users_python_and_build_like_sql_ones() {
    let t = project();
    let run = t
        .command(&["build"])
        .env("LAKEFLOW_PYTHON", python())
        .output()
        .expect("run lakeflow");
    let stdout = String::from_utf8_lossy(&run.stdout);
    // Only the broken model fails (and what reads it is skipped).
    assert_eq!(run.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("this model is broken on purpose"),
        "{stdout}"
    );
    assert!(stdout.contains("ValueError"), "{stdout}");
    let conn = read_only(&t.path().join("shop.duckdb"));
    assert_eq!(
        query_strings(
            &conn,
            "select id || ' ' || color || ' ' || total from main.reds order by id"
        ),
        ["1 RED 3", "3 RED 3"]
    );
    assert_eq!(query_i64(&conn, "select n from main.red_count"), 2);
    // An external Python model is written where SQL ones are, and read through its view.
    assert_eq!(query_i64(&conn, "select answer from main.reds_file"), 42);
    assert!(t.path().join("lake/reds_file.parquet").exists());
    assert_eq!(
        query_i64(
            &conn,
            "select count(*) from information_schema.tables where table_name = 'after_broken'"
        ),
        0
    );
}

#[test]
fn without_a_python_that_has_duckdb_only_the_python_models_fail() {
    let t = project();
    let run = t
        .command(&["build"])
        .env("LAKEFLOW_PYTHON", "/nonexistent/python3")
        .output()
        .expect("run lakeflow");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("set LAKEFLOW_PYTHON to a Python that has the duckdb package"),
        "{stdout}"
    );
    let conn = read_only(&t.path().join("shop.duckdb"));
    assert_eq!(query_i64(&conn, "select count(*) from main.colors"), 3);
}

#[test]
fn an_incremental_python_model_adds_only_its_new_rows() {
    let t = project();
    t.write(
        "models/growing.py",
        "def model(dbt, session):\n    dbt.config(materialized='incremental', unique_key='id')\n    src = dbt.ref('colors')\n    if dbt.is_incremental():\n        top = session.sql(f'select max(id) from {dbt.this}').fetchone()[0]\n        return src.filter(f'id > {top}').project(\"id, 'later' as run\")\n    return src.project(\"id, 'first' as run\")\n",
    );
    let build = |t: &TestProject| {
        t.command(&["build", "--select", "colors", "growing"])
            .env("LAKEFLOW_PYTHON", python())
            .output()
            .expect("run lakeflow")
    };
    let run = build(&t);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
    t.write(
        "seeds/colors.csv",
        "id,color\n1,red\n2,blue\n3,red\n4,green\n",
    );
    let run = build(&t);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
    let conn = read_only(&t.path().join("shop.duckdb"));
    // Four rows, each once: the second run read its own rows through dbt.this and returned
    // only the new one.
    assert_eq!(
        query_strings(
            &conn,
            "select string_agg(id::varchar, ',' order by id) from main.growing"
        ),
        ["1,2,3,4"]
    );
}
