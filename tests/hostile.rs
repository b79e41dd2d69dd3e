//! Hostile input: projects built to break lakeflow. Each must end in a located error with exit
//! code 2, or succeed; never a panic, a hang, or a file written or deleted outside what
//! lakeflow owns.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The refusal every bad input must end in: exit 2, an `error[LFxxx]`, the expected words.
fn assert_located(run: &Run, expect: &[&str]) {
    assert_eq!(
        run.code, 2,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(run.stderr.contains("error[LF"), "{}", run.stderr);
    for e in expect {
        assert!(run.stderr.contains(e), "expected {e:?} in:\n{}", run.stderr);
    }
}

/// Every file under `dir` with its bytes, to compare a tree before and after.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).expect("stat");
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                out.insert(p.clone(), std::fs::read(&p).expect("read"));
            } else {
                out.insert(p.clone(), Vec::new());
            }
        }
    }
    out
}

#[test]
fn markdown_with_odd_tags_is_read_not_a_panic() {
    let t = TestProject::new(&[
        ("models/a.sql", "select 1 as x"),
        (
            "models/notes.md",
            "# notes\n{%} and {%%} and %}{% and {% docs\n",
        ),
        (
            "models/docs.md",
            "{% docs a_doc %}{%}{% enddocs %}\n{% docsy %}\n",
        ),
    ]);
    run_bounded(&t, &["ls"], Duration::from_secs(30)).ok();
}

#[test]
fn a_symlink_loop_under_models_is_an_error_not_a_hang() {
    let t = TestProject::new(&[("models/a/x.sql", "select 1 as x")]);
    std::os::unix::fs::symlink(t.path().join("models"), t.path().join("models/a/loop"))
        .expect("symlink");
    let run = run_bounded(&t, &["ls"], Duration::from_secs(30));
    assert_located(&run, &["error[LF116]", "symlink loop", "models/a/loop"]);
}

#[test]
fn clean_never_deletes_outside_the_project() {
    let outer = tempfile::tempdir().expect("tempdir");
    let victim = outer.path().join("victim");
    std::fs::create_dir_all(&victim).expect("mkdir");
    std::fs::write(victim.join("keep.txt"), "precious").expect("write");
    let t = TestProject::new(&[("models/a.sql", "select 1 as x")]);
    std::os::unix::fs::symlink(&victim, t.path().join("link")).expect("symlink");
    let rel_victim = pathdiff(&victim, t.path());
    for targets in [
        format!("['{rel_victim}']"),
        format!("[target, 'target/../{rel_victim}']"),
        "['link/..']".to_string(),
        "['link/sub', target]".to_string(),
        format!("['{}']", victim.display()),
        "['.']".to_string(),
        "['target/..']".to_string(),
    ] {
        std::fs::create_dir_all(t.path().join("target")).expect("mkdir");
        std::fs::write(t.path().join("target/x"), "x").expect("write");
        t.write(
            "lakeflow.yml",
            &format!("name: proj\nprofile: proj\nclean-targets: {targets}\n"),
        );
        let run = t.run(&["clean"]);
        assert_located(&run, &["error[LF109]", "not inside the project"]);
        assert_eq!(
            std::fs::read_to_string(victim.join("keep.txt")).expect("victim kept"),
            "precious"
        );
        assert!(
            t.path().join("target/x").exists(),
            "a refused clean deletes nothing, {targets}"
        );
        assert!(t.path().join("models/a.sql").exists());
    }
    // A link inside the project is removed as a link; what it points at stays.
    t.write(
        "lakeflow.yml",
        "name: proj\nprofile: proj\nclean-targets: [target, link]\n",
    );
    t.run(&["clean"]).ok();
    assert!(!t.path().join("link").exists() && !t.path().join("target").exists());
    assert!(victim.join("keep.txt").exists());
}

/// `to` relative to `from`, with `..` (both absolute).
fn pathdiff(to: &Path, from: &Path) -> String {
    let ups = from.components().count();
    let mut s = "../".repeat(ups);
    s.push_str(
        to.strip_prefix("/")
            .expect("absolute")
            .to_string_lossy()
            .as_ref(),
    );
    s
}

#[test]
fn compile_with_absolute_paths_never_writes_over_sources() {
    let outside = tempfile::tempdir().expect("tempdir");
    let models = outside.path().join("models");
    let seeds = outside.path().join("seeds");
    std::fs::create_dir_all(models.join("silver")).expect("mkdir");
    std::fs::create_dir_all(&seeds).expect("mkdir");
    std::fs::write(models.join("silver/x.sql"), "select 1 as {{ 'x' }}").expect("write");
    std::fs::write(seeds.join("s.csv"), "a,b\n1,2\n").expect("write");
    std::fs::write(
        models.join("silver/schema.yml"),
        "models:\n  - name: x\n    config: {alias: '../../../../../x_alias'}\n    columns:\n      - name: x\n        data_tests: [not_null]\n",
    )
    .expect("write");
    let before = snapshot(outside.path());
    let t = TestProject::new(&[]);
    t.write(
        "lakeflow.yml",
        &format!(
            "name: proj\nprofile: proj\nmodel-paths: ['{}']\nseed-paths: ['{}']\n",
            models.display(),
            seeds.display()
        ),
    );
    let run = t.run(&["compile"]);
    // The alias leaves external_root only for external models; a view may have any alias.
    run.ok();
    assert_eq!(
        snapshot(outside.path()),
        before,
        "sources must stay as they were"
    );
    let compiled = snapshot(&t.path().join("target/compiled"));
    assert!(
        compiled.keys().any(|p| p.ends_with("silver/x.sql")),
        "{compiled:?}"
    );
    // A seed has no compiled SQL (dbt writes none for it).
    assert!(
        !compiled.keys().any(|p| p.ends_with("s.csv")),
        "{compiled:?}"
    );
    for p in compiled.keys() {
        assert!(
            p.starts_with(t.path().join("target/compiled/proj")),
            "{p:?}"
        );
    }
}

#[test]
fn an_alias_cannot_lead_an_external_model_out_of_the_lake() {
    let t = TestProject::new(&[(
        "models/silver/x.sql",
        "{{ config(materialized='external', alias='../../../escaped') }} select 1 as x",
    )]);
    let run = t.run(&["build"]);
    assert_located(&run, &["error[LF206]", "outside external_root"]);
    assert!(!t.path().join("escaped.parquet").exists());
}

#[test]
fn production_guard_sees_through_dot_dot_and_links() {
    let t = TestProject::new(&[(
        "models/silver/x.sql",
        "{{ config(materialized='external', location='dev/../silver/x.parquet') }} select 1 as x",
    )]);
    let run = t.run(&["build"]);
    assert_located(&run, &["error[LF206]", "production root"]);
    assert!(!t.lake("silver/x.parquet").exists());
    // A link inside the dev subtree that leads into production is seen through too.
    std::fs::create_dir_all(t.lake("dev")).expect("mkdir");
    std::fs::create_dir_all(t.lake("gold")).expect("mkdir");
    std::os::unix::fs::symlink(t.lake("gold"), t.lake("dev/g")).expect("symlink");
    t.write(
        "models/silver/x.sql",
        "{{ config(materialized='external', location='dev/g/x.parquet') }} select 1 as x",
    );
    let run = t.run(&["build"]);
    assert_located(&run, &["error[LF206]", "production root"]);
    assert!(!t.lake("gold/x.parquet").exists());
}

/// A project's files, as (relative path, text).
type Files<'a> = &'a [(&'a str, &'a str)];

#[test]
fn models_that_would_write_one_place_are_refused_naming_both() {
    let cases: &[(Files, &[&str])] = &[
        (
            &[
                ("models/a.sql", "{{ config(alias='same') }} select 1 as x"),
                ("models/b.sql", "{{ config(alias='SAME') }} select 2 as x"),
            ],
            &["error[LF215]", "'a'", "'b'"],
        ),
        (
            &[
                (
                    "models/silver/a.sql",
                    "{{ config(materialized='external', location='dev/shared/t.parquet') }} select 1 as x",
                ),
                (
                    "models/silver/b.sql",
                    "{{ config(materialized='external', location='dev/shared/t.parquet') }} select 2 as x",
                ),
            ],
            &["error[LF216]", "'a'", "'b'", "both write to"],
        ),
        (
            &[
                (
                    "models/silver/outer.sql",
                    "{{ config(materialized='external', format='delta', location='dev/t') }} select 1 as x",
                ),
                (
                    "models/silver/inner.sql",
                    "{{ config(materialized='external', location='dev/t/part.parquet') }} select 2 as x",
                ),
            ],
            &["error[LF216]", "'outer'", "'inner'", "is inside"],
        ),
        (
            &[(
                "models/a.sql",
                "{{ config(schema='_lakeflow', alias='builds') }} select 1 as x",
            )],
            &["error[LF214]", "_lakeflow"],
        ),
    ];
    for (files, expect) in cases {
        let t = TestProject::new(files);
        let run = t.run(&["build"]);
        assert_located(&run, expect);
        assert!(!t.path().join("lake").exists(), "nothing is written");
    }
}

#[test]
fn wrongly_typed_configs_are_located_errors() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "profiles.yml",
            "proj:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: catalog.duckdb\n      external_root: {{ env_var('LAKE_ROOT_X') }}\n",
            &[
                "error[LF115]",
                "profiles.yml:7",
                "external_root",
                "a mapping",
                "quote Jinja",
            ],
        ),
        (
            "profiles.yml",
            "proj:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      threads: [4]\n",
            &["error[LF115]", "profiles.yml:6", "threads"],
        ),
        (
            "profiles.yml",
            "proj:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      allow_production_writes: sometimes\n",
            &["error[LF115]", "allow_production_writes", "true or false"],
        ),
        (
            "lakeflow.yml",
            "name: proj\nprofile: proj\nmodel-paths: {a: models}\n",
            &["error[LF115]", "lakeflow.yml:3", "model-paths"],
        ),
        (
            "lakeflow.yml",
            "name: proj\nprofile: proj\nmodels:\n  proj:\n    silver:\n      +materialized: [external]\n",
            &["error[LF115]", "lakeflow.yml:6", "materialized", "a list"],
        ),
        (
            "models/schema.yml",
            "models:\n  - name: a\n    config:\n      enabled: {{ var('on') }}\n",
            &[
                "error[LF115]",
                "models/schema.yml:4",
                "enabled",
                "quote Jinja",
            ],
        ),
        (
            "models/schema.yml",
            "models:\n  - name: a\n    config: external\n",
            &["error[LF115]", "models/schema.yml:3", "config", "a mapping"],
        ),
        (
            "models/schema.yml",
            "models:\n  - name: a\n    columns:\n      - name: x\n        data_tests:\n          - not_null:\n              config: {severity: [warn]}\n",
            &["error[LF117]", "models/schema.yml:6", "severity", "a list"],
        ),
        (
            "models/a.sql",
            "{{ config(materialized='external', partition_by={'x': 1}) }}\nselect 1 as x\n",
            &["error[LF115]", "models/a.sql:1", "partition_by"],
        ),
    ];
    for (file, text, expect) in cases {
        let t = TestProject::new(&[("models/a.sql", "select 1 as x")]);
        t.write(file, text);
        let run = t.run(&["build"]);
        assert!(run.code == 2, "{file}:\n{text}");
        assert_located(&run, expect);
        assert!(!t.path().join("lake").exists(), "{file}: nothing is built");
    }
}

#[test]
fn delta_maintenance_refuses_numbers_that_are_not() {
    let t = TestProject::new(&[("models/a.sql", "select 1 as x")]);
    for args in [
        &["delta", "vacuum", "--retain-hours=-1"][..],
        &["delta", "vacuum", "--retain-hours", "NaN"],
        &["delta", "vacuum", "--retain-hours", "inf"],
        &["delta", "optimize", "--target-size", "99999999999GB"],
        &["delta", "optimize", "--target-size", "0"],
    ] {
        let run = t.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("is not")
                || run.stderr.contains("too large")
                || run.stderr.contains("zero"),
            "{args:?}: {}",
            run.stderr
        );
    }
}

#[test]
fn odd_names_and_paths_build_and_read_back() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("it's a lake ü");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let t = TestProject::new(&[]);
    common::copy_dir(t.path(), &dir);
    let t = TestProject::at(dir);
    t.write(
        "models/silver/od'd näme.sql",
        "{{ config(materialized='external', partition_by=['k']) }}\nselect * from (values (1, 'a b'), (2, 'x''y'), (3, 'ü€')) t(n, k)\n",
    );
    t.write(
        "models/gold/g.sql",
        "select count(*) as n from {{ ref(\"od'd näme\") }}",
    );
    t.run(&["build"]).ok();
    let conn = read_only(&t.catalog());
    assert_eq!(query_i64(&conn, "select n from gold.g"), 3);
    assert_eq!(
        query_strings(&conn, "select k from silver.\"od'd näme\" order by n"),
        vec!["a b", "x'y", "ü€"]
    );
}

#[test]
fn hostile_seeds_are_loaded_or_refused() {
    for (name, bytes) in [
        ("empty", &b""[..]),
        ("header_only", b"a,b\n"),
        ("ragged", b"a,b\n1\n1,2,3\n"),
        ("bom", b"\xef\xbb\xbfa,b\n1,2\n"),
        ("latin1", b"a\n\xe9t\xe9\n"),
        ("quotes", b"a\n\"unterminated\n"),
    ] {
        let t = TestProject::new(&[("models/a.sql", "select 1 as x")]);
        let p = t.path().join(format!("seeds/{name}.csv"));
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, bytes).expect("write");
        let run = run_bounded(&t, &["build"], Duration::from_secs(60));
        assert!(
            run.code == 0 || run.code == 1 || run.code == 2,
            "{name}: exit {}\n{}",
            run.code,
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{name}: {}", run.stderr);
        if run.code != 0 {
            assert!(
                run.stderr.contains(name) || run.stdout.contains(name),
                "{name}: the failure names the seed\n{}\n{}",
                run.stdout,
                run.stderr
            );
        }
    }
}
