//! dbt packages: `lakeflow deps` installs local and git packages into dbt_packages/, their
//! macros are called through their namespace and `adapter.dispatch`, their generic tests run
//! from schema files, and `dispatch:` search orders let the project override them. Expected
//! SQL and results are what dbt-core 1.11 + dbt-duckdb 1.11 gave for the same project.

mod common;

use common::{TestProject, query_strings, read_only};
use std::path::Path;
use std::process::Command;

const PKG_PROJECT: &str = "name: my_pkg\nversion: '1.0'\nconfig-version: 2\n";

const PKG_MACROS: &str = "{% macro cents(col) %}{{ return(adapter.dispatch('cents', 'my_pkg')(col)) }}{% endmacro %}
{% macro default__cents(col) %}({{ col }} / 100.0){% endmacro %}
{% macro duckdb__cents(col) %}round({{ col }} / 100.0, 1){% endmacro %}
{% macro twice(col) %}({{ my_pkg.cents(col) }} * 2){% endmacro %}
{% test positive(model, column_name) %}select * from {{ model }} where {{ column_name }} <= 0{% endtest %}
";

fn shop(packages_yml: &str) -> TestProject {
    let t = TestProject::new(&[
        (
            "dbt_project.yml",
            "name: shop\nversion: '1.0'\nprofile: shop\n",
        ),
        (
            "profiles.yml",
            "shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: shop.duckdb\n",
        ),
        ("packages.yml", packages_yml),
        (
            "models/prices.sql",
            "{{ config(materialized='table') }}\nselect {{ my_pkg.cents('1234') }} as a, {{ my_pkg.twice('1000') }} as b, {{ my_pkg.cents('1250') }} as c\n",
        ),
        (
            "models/schema.yml",
            "version: 2\nmodels:\n  - name: prices\n    columns:\n      - name: a\n        data_tests:\n          - my_pkg.positive\n",
        ),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    t
}

fn write_package(dir: &Path) {
    std::fs::create_dir_all(dir.join("macros")).expect("mkdir");
    std::fs::write(dir.join("dbt_project.yml"), PKG_PROJECT).expect("write");
    std::fs::write(dir.join("macros/cents.sql"), PKG_MACROS).expect("write");
}

fn prices(t: &TestProject) -> Vec<String> {
    let conn = read_only(&t.path().join("shop.duckdb"));
    query_strings(&conn, "select a || ' ' || b || ' ' || c from main.prices")
}

#[test]
fn a_local_package_installs_and_its_macros_tests_and_dispatch_work() {
    let t = shop("packages:\n  - local: vendor/my_pkg\n");
    write_package(&t.path().join("vendor/my_pkg"));

    // Not installed yet: a warning that says so, and the package test is a located error.
    let run = t.run(&["build"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("packages.yml: 1 packages are declared, 0 installed under dbt_packages/; run `lakeflow deps`"),
        "{}",
        run.stderr
    );

    let run = t.run(&["deps"]);
    run.ok();
    assert!(
        run.stdout
            .contains("Installed my_pkg (local: vendor/my_pkg) in dbt_packages/my_pkg"),
        "{}",
        run.stdout
    );
    assert!(t.path().join("dbt_packages/my_pkg").is_symlink());

    let run = t.run(&["build"]);
    run.ok();
    assert!(
        run.stdout.contains("PASS  test my_pkg_positive_prices_a"),
        "{}",
        run.stdout
    );
    // dbt-duckdb: round(1234 / 100.0, 1), (round(1000 / 100.0, 1) * 2), round(1250 / 100.0, 1).
    assert_eq!(prices(&t), ["12.3 20.0 12.5"]);

    // The project's dispatch order puts its own duckdb__cents first (dbt: floor(...)).
    t.write(
        "dbt_project.yml",
        "name: shop\nversion: '1.0'\nprofile: shop\ndispatch:\n  - macro_namespace: my_pkg\n    search_order: ['shop', 'my_pkg']\n",
    );
    t.write(
        "macros/over.sql",
        "{% macro duckdb__cents(col) %}floor({{ col }} / 100.0){% endmacro %}",
    );
    t.run(&["build"]).ok();
    assert_eq!(prices(&t), ["12.0 20.0 12.0"]);

    // As in dbt, a package's macros and tests need their namespace: the unqualified test is
    // that test's error (dbt: "Compilation Error in test positive_prices_b"), the rest runs.
    t.write(
        "models/schema.yml",
        "version: 2\nmodels:\n  - name: prices\n    columns:\n      - name: a\n        data_tests:\n          - my_pkg.positive\n      - name: b\n        data_tests:\n          - positive\n",
    );
    let run = t.run(&["build"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stdout.contains("PASS  test my_pkg_positive_prices_a"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("ERROR test positive_prices_b"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("there is no generic test 'positive'"),
        "{}",
        run.stdout
    );
    assert_eq!(prices(&t), ["12.0 20.0 12.0"]);
    let results =
        std::fs::read_to_string(t.path().join("target/run_results.json")).expect("results");
    assert!(
        results.contains("test.shop.positive_prices_b."),
        "{results}"
    );

    // deps again replaces its own link; a foreign folder in the way is refused and kept.
    t.run(&["deps"]).ok();
    std::fs::remove_file(t.path().join("dbt_packages/my_pkg")).expect("unlink");
    std::fs::create_dir_all(t.path().join("dbt_packages/my_pkg")).expect("mkdir");
    std::fs::write(t.path().join("dbt_packages/my_pkg/notes.txt"), "mine").expect("write");
    let run = t.run(&["deps"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("error[LF127]"), "{}", run.stderr);
    assert!(t.path().join("dbt_packages/my_pkg/notes.txt").is_file());
}

#[test]
fn git_packages_install_at_their_revision_and_subdirectory_hub_ones_are_named() {
    let repo = tempfile::tempdir().expect("tempdir");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(repo.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "--quiet"]);
    write_package(&repo.path().join("pkg"));
    git(&["add", "."]);
    git(&["commit", "--quiet", "-m", "v1"]);
    git(&["tag", "v1"]);
    // A later commit the revision must not pick up.
    std::fs::write(
        repo.path().join("pkg/macros/cents.sql"),
        PKG_MACROS.replace("round({{ col }} / 100.0, 1)", "0"),
    )
    .expect("write");
    git(&["commit", "--quiet", "-am", "v2"]);

    let t = shop(&format!(
        "packages:\n  - git: \"{}\"\n    revision: v1\n    subdirectory: pkg\n  - package: dbt-labs/dbt_utils\n    version: 1.3.0\n",
        repo.path().display()
    ));
    let run = t.run(&["deps"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stdout.contains("Installed my_pkg (git: "),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains(
            "error[LF128]: cannot install 'dbt-labs/dbt_utils' 1.3.0 from dbt's package hub"
        ),
        "{}",
        run.stderr
    );
    assert!(
        t.path()
            .join("dbt_packages/my_pkg/macros/cents.sql")
            .is_file()
    );
    t.run(&["build"]).ok();
    assert_eq!(prices(&t), ["12.3 20.0 12.5"]);
}

/// A project with no macros or tests of its own still reaches its packages' macros.
#[test]
fn a_project_without_macros_of_its_own_calls_package_macros() {
    let t = shop("packages:\n  - local: vendor/my_pkg\n");
    write_package(&t.path().join("vendor/my_pkg"));
    t.write(
        "models/schema.yml",
        "version: 2\nmodels:\n  - name: prices\n",
    );
    t.run(&["deps"]).ok();
    t.run(&["build"]).ok();
    assert_eq!(prices(&t), ["12.3 20.0 12.5"]);
}

#[test]
fn a_package_macro_calls_its_own_macros_without_the_namespace() {
    // dbt resolves an unqualified name inside a package's macro to that package's macro
    // first; outside the package the name needs the namespace.
    let t = shop("packages:\n  - local: vendor/my_pkg\n");
    write_package(&t.path().join("vendor/my_pkg"));
    t.write(
        "vendor/my_pkg/macros/local.sql",
        "{% macro thrice(col) %}({{ cents(col) }} * 3){% endmacro %}\n{% macro dateadd(datepart, interval, from_date_or_timestamp) %}'the package''s own'{% endmacro %}\n{% macro uses_dateadd() %}{{ dateadd('day', 1, 'x') }}{% endmacro %}",
    );
    t.write(
        "models/prices.sql",
        "{{ config(materialized='table') }}\nselect {{ my_pkg.thrice('1000') }} as a, {{ my_pkg.uses_dateadd() }} as b, {{ dateadd('day', 1, \"date '2024-01-01'\") }}::date::varchar as c\n",
    );
    t.run(&["deps"]).ok();
    t.run(&["build"]).ok();
    // duckdb__cents: round(1000 / 100.0, 1) * 3; the package's dateadd inside the package,
    // dbt's own outside it.
    assert_eq!(prices(&t), ["30.0 the package's own 2024-01-02"]);

    // As in dbt, a name undefined while parsing stops the run; the message says where it is.
    t.write("models/prices.sql", "select {{ thrice('1000') }} as a\n");
    let run = t.run(&["build"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("'thrice' is a macro of the package my_pkg; call it as my_pkg.thrice(...)"),
        "{}",
        run.stderr
    );
}

/// A package's models, seeds and tests build with the project, as dbt builds them: the
/// package's own folder configs and vars, the project's `models: <package>:` and scoped
/// `vars: <package>:` over them (over the package model's own `config()` too), the
/// package's macros and generic tests by their bare names inside it. Every value below is
/// what dbt-core 1.11 + dbt-duckdb 1.11 built from the same files.
#[test]
fn a_package_builds_its_models_seeds_and_tests_with_dbt_config_and_var_precedence() {
    let t = shop("packages:\n  - local: vendor/my_pkg\n");
    t.write(
        "dbt_project.yml",
        "name: shop\nversion: '1.0'\nprofile: shop\nvars:\n  rate: 2\n  my_pkg:\n    label: from_root\nmodels:\n  my_pkg:\n    marts:\n      +materialized: table\n      +schema: pkg\nseeds:\n  my_pkg:\n    +column_types: {code: varchar}\non-run-start:\n  - \"create table if not exists {{ target.schema }}.hook_log(who varchar)\"\n  - \"insert into {{ target.schema }}.hook_log values ('root start {{ var('label', 'none') }}')\"\non-run-end:\n  - \"insert into {{ target.schema }}.hook_log values ('root end')\"\n",
    );
    std::fs::remove_file(t.path().join("models/prices.sql")).expect("rm");
    std::fs::remove_file(t.path().join("models/schema.yml")).expect("rm");
    t.write(
        "models/uses_pkg.sql",
        "select n, h, '{{ var(\"label\", \"none\") }}' as root_label, {{ var('rate') }} as rate from {{ ref('my_pkg', 'pkg_summary') }}\n",
    );
    // dbt's `graph` at execution time: every node of the project and its packages.
    t.write(
        "models/graph_probe.sql",
        "{% set names = [] %}{% if execute %}{% for n in graph.nodes.values() | selectattr('resource_type', 'equalto', 'model') %}{% do names.append(n.package_name ~ '.' ~ n.name) %}{% endfor %}{% endif %}\nselect '{{ names | sort | join(\",\") }}' as models, {{ graph.nodes | length }} as n_nodes, {{ graph.get('exposures', {}) | length }} as n_exposures\n",
    );
    let pkg = |rel: &str, text: &str| t.write(&format!("vendor/my_pkg/{rel}"), text);
    pkg(
        "dbt_project.yml",
        "name: my_pkg\nversion: '1.0'\nconfig-version: 2\nvars:\n  label: from_pkg\n  rate: 1\n  only_pkg: 7\nmodels:\n  my_pkg:\n    +materialized: table\n    staging:\n      +materialized: view\non-run-start:\n  - \"insert into {{ target.schema }}.hook_log values ('{{ helper() | replace(\\\"'\\\", \\\"\\\") }} start')\"\non-run-end:\n  - \"insert into {{ target.schema }}.hook_log values ('pkg end {{ var('label') }}')\"\n",
    );
    pkg("seeds/codes.csv", "code,n\n007,1\n010,2\n");
    pkg(
        "models/staging/stg_codes.sql",
        "select code, '{{ var(\"label\") }}' as label, {{ var('rate') }} as rate, {{ var('only_pkg') }} as only_pkg, '{{ model.package_name }}' as pkg, '{{ this.schema }}' as sch from {{ ref('codes') }}\n",
    );
    pkg(
        "models/marts/pkg_summary.sql",
        "{{ config(materialized='view') }}\nselect count(*) as n, {{ helper() }} as h from {{ ref('stg_codes') }}\n",
    );
    pkg(
        "macros/helper.sql",
        "{% macro helper() %}'pkg helper'{% endmacro %}\n{% test small(model, column_name) %}select * from {{ model }} where {{ column_name }} > 100{% endtest %}\n",
    );
    pkg(
        "models/schema.yml",
        "version: 2\nmodels:\n  - name: stg_codes\n    columns:\n      - name: code\n        data_tests:\n          - not_null\n          - unique\n      - name: rate\n        data_tests:\n          - small\n",
    );
    pkg(
        "tests/no_null_codes.sql",
        "select * from {{ ref('stg_codes') }} where code is null\n",
    );
    t.run(&["deps"]).ok();
    let run = t.run(&["build"]);
    run.ok();
    assert!(
        !run.stderr.contains("does not build package models"),
        "{}",
        run.stderr
    );

    let conn = read_only(&t.path().join("shop.duckdb"));
    assert_eq!(
        query_strings(
            &conn,
            "select table_schema || '.' || table_name || ' ' || table_type from information_schema.tables where table_schema in ('main', 'main_pkg') order by all",
        ),
        [
            "main.codes BASE TABLE",
            "main.graph_probe VIEW",
            "main.hook_log BASE TABLE",
            "main.stg_codes VIEW",
            "main.uses_pkg VIEW",
            "main_pkg.pkg_summary BASE TABLE",
        ]
    );
    assert_eq!(
        query_strings(
            &conn,
            "select concat_ws(' ', code, label, rate, only_pkg, pkg, sch) from main.stg_codes order by all",
        ),
        [
            "007 from_root 2 7 my_pkg main",
            "010 from_root 2 7 my_pkg main"
        ]
    );
    assert_eq!(
        query_strings(
            &conn,
            "select concat_ws(' ', n, h, root_label, rate) from main.uses_pkg"
        ),
        ["2 pkg helper none 2"]
    );
    assert_eq!(
        query_strings(
            &conn,
            "select concat_ws(' ', models, n_nodes, n_exposures) from main.graph_probe"
        ),
        ["my_pkg.pkg_summary,my_pkg.stg_codes,shop.graph_probe,shop.uses_pkg 9 0"]
    );
    // Run hooks: the project's first, then the package's, each in its own context (the
    // package's macros and vars for its hooks).
    assert_eq!(
        query_strings(&conn, "select who from main.hook_log order by rowid"),
        [
            "root start none",
            "pkg helper start",
            "root end",
            "pkg end from_root"
        ]
    );
    let results =
        std::fs::read_to_string(t.path().join("target/run_results.json")).expect("results");
    let results: serde_json::Value = serde_json::from_str(&results).expect("json");
    let mut ids: Vec<&str> = results["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["unique_id"].as_str().unwrap_or_default())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "model.my_pkg.pkg_summary",
            "model.my_pkg.stg_codes",
            "model.shop.graph_probe",
            "model.shop.uses_pkg",
            // The run hooks, as dbt lists them (per project, numbered from 0).
            "operation.my_pkg.my_pkg-on-run-end-0",
            "operation.my_pkg.my_pkg-on-run-start-0",
            "operation.shop.shop-on-run-end-0",
            "operation.shop.shop-on-run-start-0",
            "operation.shop.shop-on-run-start-1",
            "seed.my_pkg.codes",
            "test.my_pkg.no_null_codes",
            "test.my_pkg.not_null_stg_codes_code.19998230eb",
            "test.my_pkg.small_stg_codes_rate.faeb946549",
            "test.my_pkg.unique_stg_codes_code.b3c4b9f37c",
        ]
    );

    drop(conn);
    // Compiled SQL lands where dbt puts it: under the package's name, its path inside it.
    let mut compiled: Vec<String> = Vec::new();
    let base = t.path().join("target/compiled");
    let mut stack = vec![base.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("list").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(&base).expect("under");
                compiled.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    compiled.sort();
    assert_eq!(
        compiled,
        [
            "my_pkg/models/marts/pkg_summary.sql",
            "my_pkg/models/schema.yml/not_null_stg_codes_code.sql",
            "my_pkg/models/schema.yml/small_stg_codes_rate.sql",
            "my_pkg/models/schema.yml/unique_stg_codes_code.sql",
            "my_pkg/models/staging/stg_codes.sql",
            "my_pkg/tests/no_null_codes.sql",
            "shop/models/graph_probe.sql",
            "shop/models/uses_pkg.sql",
        ]
    );
    // `package:` selects a package's nodes; `--vars` wins over every project's vars.
    let ls = t.run(&["ls", "-s", "package:my_pkg"]);
    ls.ok();
    let mut listed: Vec<&str> = ls.stdout.lines().collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            "my_pkg.codes",
            "my_pkg.marts.pkg_summary",
            "my_pkg.no_null_codes",
            "my_pkg.not_null_stg_codes_code",
            "my_pkg.small_stg_codes_rate",
            "my_pkg.staging.stg_codes",
            "my_pkg.unique_stg_codes_code",
        ]
    );
    t.run(&["build", "--vars", "{label: from_cli}"]).ok();
    let conn = read_only(&t.path().join("shop.duckdb"));
    assert_eq!(
        query_strings(
            &conn,
            "select distinct label || ' ' || (select root_label from main.uses_pkg) from main.stg_codes"
        ),
        ["from_cli from_cli"]
    );
    drop(conn);

    // A package's own generate_schema_name names the package's nodes only (dbt's rule).
    pkg(
        "macros/naming.sql",
        "{% macro generate_schema_name(custom_schema_name, node) -%}\npkgschema_{{ custom_schema_name or 'plain' }}\n{%- endmacro %}\n",
    );
    std::fs::remove_file(t.path().join("shop.duckdb")).expect("rm");
    t.run(&["build"]).ok();
    let conn = read_only(&t.path().join("shop.duckdb"));
    assert_eq!(
        query_strings(
            &conn,
            "select table_schema || '.' || table_name from information_schema.tables where table_schema not like '\\_%' escape '\\' order by all",
        ),
        [
            "main.graph_probe",
            "main.hook_log",
            "main.uses_pkg",
            "pkgschema_pkg.pkg_summary",
            "pkgschema_plain.codes",
            "pkgschema_plain.stg_codes",
        ]
    );
}

/// `deps` installs what the packages declare too (dbt's transitive dependencies): a local
/// path relative to the package that declares it, each package once; a hub entry for a
/// package already installed by name needs no hub. A package named like a path is refused.
#[test]
fn deps_installs_the_packages_packages_once_and_refuses_path_like_names() {
    let t = shop("packages:\n  - local: vendor/my_pkg\n  - local: vendor/outer\n");
    write_package(&t.path().join("vendor/my_pkg"));
    t.write(
        "vendor/outer/dbt_project.yml",
        "name: outer\nversion: '1.0'\nconfig-version: 2\n",
    );
    t.write(
        "vendor/outer/packages.yml",
        "packages:\n  - local: ../inner\n  - package: someone/my_pkg\n    version: 1.0.0\n",
    );
    t.write(
        "vendor/inner/dbt_project.yml",
        "name: inner\nversion: '1.0'\nconfig-version: 2\n",
    );
    t.write(
        "vendor/inner/macros/m.sql",
        "{% macro seven() %}7{% endmacro %}",
    );
    t.write(
        "models/prices.sql",
        "{{ config(materialized='table') }}\nselect {{ inner.seven() }} as a, 2 as b, 3 as c\n",
    );
    let run = t.run(&["deps"]);
    run.ok();
    assert!(
        run.stdout
            .contains("Installed inner (local: ../inner) in dbt_packages/inner"),
        "{}",
        run.stdout
    );
    assert!(t.path().join("dbt_packages/inner").is_symlink());
    t.run(&["build"]).ok();
    assert_eq!(prices(&t), ["7 2 3"]);

    // A package whose name is a path is refused before anything is linked or removed.
    t.write(
        "vendor/evil/dbt_project.yml",
        "name: ../victim\nversion: '1.0'\n",
    );
    std::fs::create_dir_all(t.path().join("victim")).expect("mkdir");
    t.write(
        "victim/dbt_project.yml",
        "name: ../victim\nversion: '1.0'\n",
    );
    t.write("packages.yml", "packages:\n  - local: vendor/evil\n");
    let run = t.run(&["deps"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the package name '../victim' is not a valid name"),
        "{}",
        run.stderr
    );
    assert!(t.path().join("victim/dbt_project.yml").is_file());
}
