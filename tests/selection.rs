//! `lakeflow ls` picks what dbt's selector syntax picks.

mod common;
use common::*;

/// a -> b -> c,  a -> d,  (b, d) -> e,  f alone.
fn dag() -> TestProject {
    TestProject::new(&[
        (
            "lakeflow.yml",
            "name: proj\nprofile: proj\nmodels:\n  proj:\n    bronze:\n      +tags: [ingest]\n    gold:\n      +materialized: table\n",
        ),
        ("models/bronze/a.sql", "select 1 as id"),
        ("models/silver/b.sql", "select * from {{ ref('a') }}"),
        ("models/gold/c.sql", "select * from {{ ref('b') }}"),
        (
            "models/silver/d.sql",
            "{{ config(tags=['nightly'], priority=2, full=true) }} select * from {{ ref('a') }}",
        ),
        (
            "models/gold/e.sql",
            "select * from {{ ref('b') }} union all select * from {{ ref('d') }}",
        ),
        ("models/f.sql", "select 2 as id"),
    ])
}

fn ls(t: &TestProject, args: &[&str]) -> Vec<String> {
    let mut full = vec!["ls"];
    full.extend_from_slice(args);
    let run = t.run(&full);
    run.ok();
    let mut names: Vec<String> = run
        .stdout
        .lines()
        .map(|l| l.rsplit('.').next().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn selectors_match_dbt_semantics() {
    let t = dag();
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &["a", "b", "c", "d", "e", "f"]),
        (&["-s", "b"], &["b"]),
        (&["-s", "b+"], &["b", "c", "e"]),
        (&["-s", "+b"], &["a", "b"]),
        (&["-s", "+e"], &["a", "b", "d", "e"]),
        (&["-s", "1+e"], &["b", "d", "e"]),
        (&["-s", "a+1"], &["a", "b", "d"]),
        (&["-s", "@b"], &["a", "b", "c", "d", "e"]),
        (&["-s", "silver"], &["b", "d"]),
        (&["-s", "silver+"], &["b", "c", "d", "e"]),
        (&["-s", "proj.gold"], &["c", "e"]),
        (&["-s", "tag:ingest"], &["a"]),
        (&["-s", "tag:nightly+"], &["d", "e"]),
        (&["-s", "path:models/gold"], &["c", "e"]),
        (&["-s", "models/silver/b.sql"], &["b"]),
        (&["-s", "config.materialized:table"], &["c", "e"]),
        (&["-s", "config.priority:2"], &["d"]),
        (&["-s", "config.full:true"], &["d"]),
        (&["-s", "c f"], &["c", "f"]),
        (&["-s", "c", "f"], &["c", "f"]),
        (&["-s", "silver+,gold"], &["c", "e"]),
        (&["-s", "+e", "--exclude", "d"], &["a", "b", "e"]),
        (&["-s", "?"], &["a", "b", "c", "d", "e", "f"]),
        (&["-s", "[ab]"], &["a", "b"]),
    ];
    for (args, want) in cases {
        assert_eq!(ls(&t, args), want.to_vec(), "ls {args:?}");
    }
}

#[test]
fn ls_prints_fqn_and_path_and_warns_on_no_match() {
    let t = dag();
    let run = t.run(&["ls", "-s", "c"]);
    assert_eq!(run.stdout.trim(), "proj.gold.c");
    let run = t.run(&["ls", "-s", "c", "--output", "path"]);
    assert_eq!(run.stdout.trim(), "models/gold/c.sql");
    let run = t.run(&["ls", "-s", "nope"]);
    run.ok();
    assert!(
        run.stderr.contains("'nope' matches no model"),
        "{}",
        run.stderr
    );
    let run = t.run(&["ls", "-s", "weird:x"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("unknown selector method 'weird:'"),
        "{}",
        run.stderr
    );
}
