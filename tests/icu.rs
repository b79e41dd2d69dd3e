//! DuckDB's ICU extension, which dbt-duckdb users have built in (time zones, `timestamptz`
//! arithmetic): loaded from the extension directory when it is there; when it is not, a model
//! that needs it fails alone, with a hint that names the wheel to take it from.

mod common;

use common::{TestProject, query_strings, read_only};

fn project() -> TestProject {
    TestProject::new(&[
        (
            "models/gold/shifted.sql",
            "{{ config(materialized='table') }}\nselect (timestamptz '2024-03-09 12:00:00+00' + interval 1 day)::varchar as t, timezone('America/Los_Angeles', timestamptz '2024-03-10 12:00:00+00')::varchar as la\n",
        ),
        (
            "models/gold/plain.sql",
            "{{ config(materialized='table') }}\nselect 1 as x\n",
        ),
    ])
}

#[test]
fn timestamptz_arithmetic_and_time_zones_work_with_icu_from_the_extension_directory() {
    let t = project();
    // scripts/test puts icu.duckdb_extension (from duckdb-extension-icu==1.5.5) there.
    let dir = std::env::var("LAKEFLOW_EXTENSION_DIR")
        .expect("LAKEFLOW_EXTENSION_DIR is not set: run the tests with scripts/test");
    let run = t
        .command(&["build"])
        .env("LAKEFLOW_EXTENSION_DIR", &dir)
        .env("TZ", "UTC")
        .output()
        .expect("run lakeflow");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
    let conn = read_only(&t.path().join("catalog.duckdb"));
    assert_eq!(
        query_strings(&conn, "select t || ' | ' || la from gold.shifted"),
        ["2024-03-10 12:00:00+00 | 2024-03-10 05:00:00"]
    );
}

#[test]
#[cfg_attr(
    not(feature = "bundled"),
    ignore = "the prebuilt libduckdb.so has ICU built in: there is no build without it"
)]
fn without_icu_only_the_model_that_needs_it_fails_and_says_where_to_get_it() {
    let t = project();
    let empty = tempfile::tempdir().expect("tempdir");
    let run = t
        .command(&["build"])
        .env("LAKEFLOW_EXTENSION_DIR", empty.path())
        .output()
        .expect("run lakeflow");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("TIMESTAMP WITH TIME ZONE"), "{stdout}");
    assert!(
        stdout.contains("from the PyPI wheel duckdb-extension-icu==1.5.5"),
        "{stdout}"
    );
    let conn = read_only(&t.path().join("catalog.duckdb"));
    assert_eq!(
        query_strings(&conn, "select x::varchar from gold.plain"),
        ["1"]
    );
}
