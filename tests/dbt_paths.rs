//! dbt-duckdb's path rules for dbt projects: relative paths in the profile, in sources and in
//! a `location` resolve against the working directory (where `dbt` / `lakeflow` is run), the
//! defaults are dbt-duckdb's (`path: :memory:`, `external_root: .`), and an explicit
//! `location` is not moved under `external_root`. lakeflow.yml projects keep their
//! project-relative rules. What dbt-duckdb 1.11 does for the same layout.

mod common;

use common::{TestProject, query_i64, read_only};
use std::process::Command;

/// `work/` is where the command runs; the project is `work/proj/`.
fn layout(profile_output: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().to_path_buf();
    let t = TestProject::at(work.join("proj"));
    t.write(
        "dbt_project.yml",
        "name: shop\nversion: '1.0'\nprofile: shop\n",
    );
    t.write(
        "profiles.yml",
        &format!(
            "shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n{profile_output}"
        ),
    );
    t.write(
        "models/sources.yml",
        "version: 2\nsources:\n  - name: raw\n    tables:\n      - name: orders\n        config:\n          external_location: \"read_csv('data/orders.csv')\"\n",
    );
    t.write(
        "models/orders.sql",
        "{{ config(materialized='table') }}\nselect * from {{ source('raw', 'orders') }}\n",
    );
    t.write(
        "models/orders_file.sql",
        "{{ config(materialized='external', location='exports/orders.parquet') }}\nselect * from {{ ref('orders') }}\n",
    );
    t.write(
        "models/orders_default.sql",
        "{{ config(materialized='external') }}\nselect count(*) as n from {{ ref('orders') }}\n",
    );
    std::fs::create_dir_all(work.join("data")).expect("mkdir");
    std::fs::write(work.join("data/orders.csv"), "id,amount\n1,10\n2,20\n").expect("csv");
    (dir, work)
}

fn build_from(work: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lakeflow"))
        .args(["build", "--project-dir", "proj", "--profiles-dir", "proj"])
        .current_dir(work)
        .env_remove("LAKEFLOW_TARGET")
        .env_remove("LAKEFLOW_PROFILES_DIR")
        .env_remove("LAKEFLOW_PROJECT_DIR")
        .output()
        .expect("run lakeflow")
}

#[test]
fn a_dbt_project_resolves_relative_paths_against_the_working_directory() {
    let (_dir, work) = layout("      path: wh.duckdb\n      external_root: lake\n");
    let out = build_from(&work);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The catalog, the source file, a relative `location` and external_root: all from `work/`.
    assert!(work.join("wh.duckdb").exists());
    assert!(!work.join("proj/wh.duckdb").exists());
    assert!(work.join("exports/orders.parquet").exists());
    assert!(!work.join("lake/exports").exists());
    assert!(work.join("lake/orders_default.parquet").exists());
    let conn = read_only(&work.join("wh.duckdb"));
    assert_eq!(
        query_i64(&conn, "select sum(amount) from main.orders_file"),
        30
    );
    assert_eq!(query_i64(&conn, "select n from main.orders_default"), 2);
}

#[test]
fn a_dbt_profile_without_path_builds_in_memory_with_files_under_the_working_directory() {
    let (_dir, work) = layout("");
    let out = build_from(&work);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // dbt-duckdb's defaults: an in-memory catalog, external_root `.`.
    assert!(work.join("orders_default.parquet").exists());
    let catalogs: Vec<_> = std::fs::read_dir(&work)
        .expect("list")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "duckdb"))
        .collect();
    assert!(catalogs.is_empty(), "{catalogs:?}");
}
