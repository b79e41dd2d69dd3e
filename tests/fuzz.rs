//! Generated bad projects: a working project whose files (YAML, Jinja SQL, Markdown, CSV) or
//! selector are mutated with tokens that break parsers. Every run must end with exit 0, 1 or 2
//! (with an error line), in bounded time, writing nothing beside the project.
//! `LAKEFLOW_FUZZ_CASES` sets how many cases run, `LAKEFLOW_FUZZ_SEED` replays a sequence.

mod common;
use common::*;
use std::time::Duration;

const TOKENS: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "{%}",
    "{#",
    "#}",
    ":",
    ": ",
    "- ",
    "\t",
    "\"",
    "'",
    "\0",
    "ü",
    "€",
    "../",
    "..",
    "/",
    "\n",
    "[",
    "]",
    "{",
    "}",
    "*",
    "&a ",
    "*a",
    "!!binary ",
    "%",
    "~",
    "null",
    "1e999",
    "-1",
    "\\",
    "{{ env_var('LF_SURELY_UNSET') }}",
    "{{ ref('nope') }}",
    "{{ config(materialized=1) }}",
    "{% if %}",
    "{% endif %}",
    "{% macro m() %}",
    "+",
    "@",
    ",",
    "|",
    "select",
    " ",
    "\r\n",
    "\u{feff}",
    "{{ var('x') }}",
    "{{ this }}",
    "{% docs x %}",
];

/// Mutates `text`. Path tokens are left out of the project and profile files: there a path
/// outside the project is the user's to choose (and this test runs as whoever runs it).
fn mutate(rng: &mut Rng, text: &str, config_file: bool) -> String {
    let tokens: Vec<&str> = TOKENS
        .iter()
        .copied()
        .filter(|t| !config_file || !(t.contains('/') || t.contains('~') || t.contains("..")))
        .collect();
    let mut s = text.to_string();
    for _ in 0..1 + rng.pick(3) {
        let boundaries: Vec<usize> = (0..=s.len()).filter(|i| s.is_char_boundary(*i)).collect();
        let at = boundaries[rng.pick(boundaries.len())];
        match rng.pick(3) {
            0 => s.insert_str(at, tokens[rng.pick(tokens.len())]),
            1 => {
                let to = boundaries[(boundaries.iter().position(|b| *b == at).unwrap_or(0)
                    + rng.pick(8))
                .min(boundaries.len() - 1)];
                s.replace_range(at..to, "");
            }
            _ => {
                let lines: Vec<&str> = s.lines().collect();
                if !lines.is_empty() {
                    let line = lines[rng.pick(lines.len())].to_string();
                    s.insert_str(at, &format!("{line}\n"));
                }
            }
        }
    }
    s
}

const BASE: &[(&str, &str)] = &[
    (
        "lakeflow.yml",
        "name: proj\nprofile: proj\nvars:\n  n: 3\nmodels:\n  proj:\n    silver:\n      +materialized: table\n",
    ),
    ("profiles.yml", PROFILE),
    (
        "models/schema.yml",
        "version: 2\nsources:\n  - name: raw\n    tables:\n      - name: t\n        config: {external_location: 'x.csv'}\nmodels:\n  - name: a\n    description: \"{{ doc('d') }}\"\n    columns:\n      - name: x\n        data_tests: [not_null, {accepted_values: {values: [1, 2]}}]\n",
    ),
    ("models/docs.md", "{% docs d %}the a model{% enddocs %}\n"),
    (
        "models/silver/a.sql",
        "{{ config(tags=['t']) }}\nselect {{ var('n') }} as x {% if is_incremental() %} where 1 {% endif %}\n",
    ),
    (
        "models/gold/b.sql",
        "select x, {{ plus_one('x') }} as y from {{ ref('a') }}\n",
    ),
    (
        "macros/m.sql",
        "{% macro plus_one(c) %}{{ c }} + 1{% endmacro %}\n",
    ),
    ("seeds/s.csv", "id,name\n1,a\n2,b\n"),
];

const SELECTORS: &[&str] = &[
    "a",
    "+b",
    "a+",
    "@a",
    "tag:t",
    "path:models/silver",
    "silver",
    "1+b",
    "b+1",
    "*",
    "config.materialized:table",
    "resource_type:seed",
    "test_type:generic",
    "source:raw",
    "state:modified",
];

/// Generated bad projects: each file of a working project mutated with tokens that break
/// YAML, Jinja, CSV and selectors. Every run must end with exit 0 or 2 (a located error), in
/// bounded time, writing nothing outside the project. LAKEFLOW_FUZZ_CASES sets how many.
#[test]
fn mutated_projects_fail_cleanly() {
    let cases: u64 = std::env::var("LAKEFLOW_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("LAKEFLOW_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_1a4e);
    let outer = tempfile::tempdir().expect("tempdir");
    std::fs::write(outer.path().join("sentinel.txt"), "keep").expect("write");
    for case in 0..cases {
        let mut rng = Rng(seed.wrapping_add(case.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
        let dir = outer.path().join(format!("case{case}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let t = TestProject::at(dir);
        let victim = rng.pick(BASE.len() + 1);
        for (i, (path, text)) in BASE.iter().enumerate() {
            let text = if i == victim {
                mutate(
                    &mut rng,
                    text,
                    path.ends_with(".yml") && !path.starts_with("models"),
                )
            } else {
                text.to_string()
            };
            t.write(path, &text);
        }
        let mut selector = SELECTORS[rng.pick(SELECTORS.len())].to_string();
        if victim == BASE.len() {
            // A command line cannot carry a NUL byte.
            selector = mutate(&mut rng, &selector, false).replace('\0', "");
        }
        let command = ["ls", "compile", "build"][rng.pick(3)];
        let run = run_bounded(
            &t,
            &[command, "--select", &selector],
            Duration::from_secs(60),
        );
        let replay = format!(
            "case {case} (LAKEFLOW_FUZZ_SEED={seed}): {command} --select {selector:?}, mutated {}",
            BASE.get(victim).map_or("the selector", |b| b.0)
        );
        assert!(
            [0, 1, 2].contains(&run.code),
            "{replay}: exit {}\n{}",
            run.code,
            run.stderr
        );
        assert!(
            !run.stderr.contains("panicked"),
            "{replay}:\n{}",
            run.stderr
        );
        if run.code == 2 {
            assert!(
                run.stderr.contains("error[LF") || run.stderr.contains("error:"),
                "{replay}: exit 2 without an error line\n{}",
                run.stderr
            );
        }
        let mut outside: Vec<String> = std::fs::read_dir(outer.path())
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("case"))
            .collect();
        outside.sort();
        assert_eq!(
            outside,
            vec!["sentinel.txt"],
            "{replay}: wrote beside the project"
        );
        let _ = std::fs::remove_dir_all(t.path());
    }
}
