//! Secrets of the profile never reach what lakeflow prints or writes: progress lines, errors
//! of every kind, `target/`, the catalog. `DBT_ENV_SECRET*` variables are refused outside
//! profiles.yml, as in dbt.

mod common;
use common::*;
use std::path::Path;

/// Read from the environment through `env_var()` in profiles.yml.
const ENV_SECRET: &str = "s3cr3t-env-8127";
/// Written in profiles.yml as it is, under a secret-ish key.
const TOKEN: &str = "tok-lit-55193";

fn profile() -> String {
    PROFILE.replace(
        "      threads: 4\n    prod:",
        "      threads: 4\n      secrets:\n        - type: http\n          bearer_token: \"{{ env_var('DBT_ENV_SECRET_TOKEN') }}\"\n        - type: http\n          extra_http_token: tok-lit-55193\n    prod:",
    )
}

fn project(files: &[(&str, &str)]) -> TestProject {
    let t = TestProject::new(files);
    t.write("profiles.yml", &profile());
    t
}

fn run(t: &TestProject, args: &[&str]) -> Run {
    let mut cmd = t.command(args);
    cmd.env("DBT_ENV_SECRET_TOKEN", ENV_SECRET);
    Run::from(cmd.output().expect("run lakeflow"))
}

fn assert_masked(what: &str, text: &str) {
    for secret in [ENV_SECRET, TOKEN] {
        assert!(!text.contains(secret), "{what} shows a secret:\n{text}");
    }
}

/// Every file under `dir` holds neither secret (bytes, so the catalog's pages count too).
fn assert_no_file_has_a_secret(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let bytes = std::fs::read(&p).unwrap_or_default();
            for secret in [ENV_SECRET, TOKEN] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{} holds a secret",
                    p.display()
                );
            }
        }
    }
}

#[test]
fn secrets_are_masked_in_every_output_and_file() {
    let t = project(&[
        (
            "models/silver/good.sql",
            "{{ config(materialized='external') }} select 1 as id",
        ),
        (
            "models/silver/bad.sql",
            "{{ config(materialized='external') }} select error('login refused for s3cr3t-env-8127 / tok-lit-55193') as x",
        ),
        (
            "models/silver/d.sql",
            "{{ config(materialized='external', format='delta') }} select 1 as id",
        ),
    ]);
    let mut outputs = Vec::new();

    // A failing model: its progress line, the summary, run_results.json.
    for format in ["text", "json"] {
        let r = run(&t, &["build", "--log-format", format]);
        assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("login refused for ***"), "{}", r.stdout);
        outputs.push((format!("build --log-format {format}"), r));
    }
    let results = std::fs::read_to_string(t.path().join("target/run_results.json")).unwrap();
    assert!(results.contains("login refused for *** / ***"), "{results}");

    // A failing on-run-start hook.
    t.write(
        "lakeflow.yml",
        "name: proj\nprofile: proj\non-run-start:\n  - \"select error('hook saw tok-lit-55193')\"\n",
    );
    let r = run(&t, &["run", "--select", "good"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("hook saw ***"), "{}", r.stderr);
    outputs.push(("on-run-start".into(), r));
    t.write("lakeflow.yml", "name: proj\nprofile: proj\n");

    // A `delta` subcommand error about one table: its log names an unknown reader feature.
    std::fs::write(
        t.lake("dev/silver/d/_delta_log/00000000000000000001.json"),
        format!("{{\"protocol\":{{\"minReaderVersion\":3,\"minWriterVersion\":7,\"readerFeatures\":[\"{ENV_SECRET}\"],\"writerFeatures\":[\"{ENV_SECRET}\"]}}}}\n"),
    )
    .unwrap();
    let r = run(&t, &["delta", "vacuum", "--select", "d"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("error: d: "), "{}", r.stderr);
    assert!(r.stderr.contains("***"), "{}", r.stderr);
    outputs.push(("delta vacuum".into(), r));

    // Top-level errors, printed by main.
    let r = run(
        &t,
        &[
            "delta",
            "optimize",
            "--select",
            "d",
            "--target-size",
            ENV_SECRET,
        ],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("'***' is not a size"), "{}", r.stderr);
    outputs.push(("delta optimize".into(), r));
    let r = run(
        &t,
        &[
            "query",
            "select error('tok-lit-55193') as x",
            "--from",
            "catalog",
        ],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("***"), "{}", r.stderr);
    outputs.push(("query error".into(), r));
    // ... and query results.
    let r = run(
        &t,
        &[
            "query",
            "select 'tok-lit-55193' as x",
            "--from",
            "catalog",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.stdout.trim(), r#"[{"x":"***"}]"#);
    outputs.push(("query".into(), r));
    let r = run(&t, &["debug"]);
    outputs.push(("debug".into(), r));

    for (what, r) in &outputs {
        assert_masked(&format!("stdout of {what}"), &r.stdout);
        assert_masked(&format!("stderr of {what}"), &r.stderr);
    }
    assert_no_file_has_a_secret(&t.path().join("target"));
    let catalog = std::fs::read(t.catalog()).unwrap();
    for secret in [ENV_SECRET, TOKEN] {
        assert!(
            !catalog
                .windows(secret.len())
                .any(|w| w == secret.as_bytes())
        );
    }
}

/// `lakeflow compile` refuses a secret env var read at `place` (file:line).
fn refused_secret_env_var(t: &TestProject, place: &str) -> Run {
    let r = run(t, &["compile"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("allowed only in profiles.yml"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(place), "{}", r.stderr);
    r
}

#[test]
fn secret_env_vars_are_refused_outside_profiles_yml() {
    let t = project(&[(
        "models/leak.sql",
        "select 1 as id,\n  '{{ env_var(\"DBT_ENV_SECRET_TOKEN\") }}' as token",
    )]);
    let r = refused_secret_env_var(&t, "models/leak.sql:2");
    assert_masked("compile", &r.stderr);
    assert!(
        !t.path()
            .join("target/compiled/proj/models/leak.sql")
            .exists()
    );

    // In the project file too.
    std::fs::remove_file(t.path().join("models/leak.sql")).unwrap();
    t.write("models/ok.sql", "select 1 as id");
    t.write(
        "lakeflow.yml",
        "name: proj\nprofile: proj\nvars:\n  k: \"{{ env_var('DBT_ENV_SECRET_TOKEN') }}\"\n",
    );
    refused_secret_env_var(&t, "lakeflow.yml:4");

    // profiles.yml may read it, and the build runs.
    t.write("lakeflow.yml", "name: proj\nprofile: proj\n");
    run(&t, &["build"]).ok();
}

/// The masking point holds only if nothing prints around it: outside `src/redact.rs`, no code
/// (tests aside) uses the printing macros of std; `outln!`/`errln!` are the way out.
#[test]
fn nothing_in_src_prints_around_the_masking_point() {
    let mut offenders = Vec::new();
    let mut stack = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("src/redact.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (i, line) in code.lines().enumerate() {
                let line = line.trim_start();
                if line.starts_with("//") {
                    continue;
                }
                if ["println!(", "eprintln!(", "print!(", "eprint!(", "dbg!("]
                    .iter()
                    .any(|m| {
                        line.match_indices(m).any(|(at, _)| {
                            at == 0 || !line.as_bytes()[at - 1].is_ascii_alphanumeric()
                        })
                    })
                {
                    offenders.push(format!("{}:{}: {line}", path.display(), i + 1));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "print through outln!/errln! so secrets are masked:\n{}",
        offenders.join("\n")
    );
}
