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

#[test]
fn state_modified_selects_changed_nodes_and_their_descendants() {
    let t = TestProject::new(&[
        ("models/bronze/a.sql", "select 1 as x"),
        ("models/silver/b.sql", "select * from {{ ref('a') }}"),
        ("models/silver/c.sql", "select 2 as y"),
        ("models/gold/d.sql", "select * from {{ ref('b') }}"),
        ("seeds/s.csv", "k\n1\n"),
    ]);
    t.run(&["build"]).ok();
    let state = t.path().join("prod-state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::copy(
        t.path().join("target/manifest.json"),
        state.join("manifest.json"),
    )
    .unwrap();
    let st = state.to_string_lossy().into_owned();
    let ls = |sel: &str| {
        let r = t.run(&["ls", "--select", sel, "--state", &st]);
        let mut names: Vec<String> = r.ok().stdout.lines().map(str::to_string).collect();
        names.sort();
        names
    };
    assert!(ls("state:modified").is_empty(), "nothing changed yet");

    t.write(
        "models/silver/b.sql",
        "select x + 1 as x from {{ ref('a') }}",
    );
    t.write("models/gold/e.sql", "select 3 as z");
    t.write(
        "models/silver/c.sql",
        "{{ config(materialized='table') }}\nselect 2 as y",
    );
    t.write("seeds/s.csv", "k\n1\n2\n");
    assert_eq!(
        ls("state:modified+"),
        vec![
            "proj.gold.d",
            "proj.gold.e",
            "proj.s",
            "proj.silver.b",
            "proj.silver.c"
        ]
    );
    assert_eq!(ls("state:new"), vec!["proj.gold.e"]);
    assert_eq!(ls("state:modified,resource_type:seed"), vec!["proj.s"]);

    let b = t.run(&["build", "--select", "state:modified+", "--state", &st]);
    b.ok();
    let rr: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(t.path().join("target/run_results.json")).unwrap(),
    )
    .unwrap();
    let mut ran: Vec<String> = rr["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["unique_id"].as_str().unwrap().to_string())
        .collect();
    ran.sort();
    assert_eq!(
        ran,
        [
            "model.proj.b",
            "model.proj.c",
            "model.proj.d",
            "model.proj.e",
            "seed.proj.s"
        ]
    );
    let c = read_only(&t.catalog());
    assert_eq!(query_i64(&c, "select x from gold.d"), 2);
    assert_eq!(query_i64(&c, "select count(*) from main.s"), 2);
    drop(c);

    let missing = t.run(&["ls", "--select", "state:modified"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("needs --state"),
        "{}",
        missing.stderr
    );
}

/// `source:name+` selects what reads the source and what is downstream (dbt's source
/// selector); `source:name` alone selects nothing to build.
#[test]
fn source_selector_selects_the_sources_readers() {
    let t = TestProject::new(&[
        ("dbt_project.yml", "name: p\nversion: '1.0'\nprofile: p\n"),
        (
            "profiles.yml",
            "p:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: p.duckdb\n",
        ),
        (
            "models/sources.yml",
            "version: 2\nsources:\n  - name: raw\n    schema: main\n    tables:\n      - name: events\n      - name: users\n",
        ),
        (
            "models/reads_events.sql",
            "select * from {{ source('raw', 'events') }}\n",
        ),
        (
            "models/reads_users.sql",
            "select * from {{ source('raw', 'users') }}\n",
        ),
        (
            "models/downstream.sql",
            "select * from {{ ref('reads_events') }}\n",
        ),
        ("models/other.sql", "select 1 as x\n"),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    let ls = |sel: &str| {
        let r = t.run(&["ls", "-s", sel]);
        r.ok();
        let mut names: Vec<String> = r.stdout.lines().map(str::to_string).collect();
        names.sort();
        names
    };
    assert_eq!(ls("source:raw.events+"), ["p.downstream", "p.reads_events"]);
    assert_eq!(ls("source:raw+1"), ["p.reads_events", "p.reads_users"]);
    assert!(ls("source:raw").is_empty());
}

/// `--selector NAME` runs what selectors.yml names (dbt's format: a string, or
/// `method`/`value` entries in `union`/`intersection` with `exclude`).
#[test]
fn selectors_yml_names_selections() {
    let t = TestProject::new(&[
        ("dbt_project.yml", "name: p\nversion: '1.0'\nprofile: p\n"),
        (
            "profiles.yml",
            "p:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: p.duckdb\n",
        ),
        (
            "models/a.sql",
            "{{ config(tags=['nightly']) }}\nselect 1 as x\n",
        ),
        ("models/b.sql", "select * from {{ ref('a') }}\n"),
        (
            "models/c.sql",
            "{{ config(tags=['nightly', 'slow']) }}\nselect 1 as x\n",
        ),
        ("models/d.sql", "select 1 as x\n"),
        (
            "selectors.yml",
            "selectors:\n  - name: nightly_fast\n    definition:\n      union:\n        - method: tag\n          value: nightly\n          children: true\n        - exclude:\n            - method: tag\n              value: slow\n  - name: just_d\n    definition: 'd'\n",
        ),
    ]);
    std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project");
    let ls = |args: &[&str]| {
        let r = t.run(args);
        r.ok();
        let mut names: Vec<String> = r.stdout.lines().map(str::to_string).collect();
        names.sort();
        names
    };
    assert_eq!(ls(&["ls", "--selector", "nightly_fast"]), ["p.a", "p.b"]);
    assert_eq!(ls(&["ls", "--selector", "just_d"]), ["p.d"]);
    let r = t.run(&["ls", "--selector", "nope"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("error[LF306]"), "{}", r.stderr);
}
