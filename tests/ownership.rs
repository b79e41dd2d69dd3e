//! lakeflow deletes and rewrites only files it created: user files next to models, in the lake
//! root next to model outputs, inside table folders, in target/, named like a model's output
//! elsewhere, or in a sibling folder of the project survive build, build, clean and
//! `delta vacuum` byte for byte, mtime included.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// size, mtime and content of a file.
type Snapshot = BTreeMap<PathBuf, (u64, SystemTime, Vec<u8>)>;

fn snapshot(files: &[PathBuf]) -> Snapshot {
    files
        .iter()
        .filter_map(|p| {
            let meta = std::fs::symlink_metadata(p).ok()?;
            let bytes = std::fs::read(p).ok()?;
            Some((p.clone(), (meta.len(), meta.modified().ok()?, bytes)))
        })
        .collect()
}

/// What changed in `before`'s files, one line each.
fn changes(before: &Snapshot, phase: &str) -> Vec<String> {
    let now = snapshot(&before.keys().cloned().collect::<Vec<_>>());
    before
        .iter()
        .filter_map(|(p, (len, mtime, bytes))| match now.get(p) {
            None => Some(format!("{phase}: deleted {}", p.display())),
            Some((l, _, b)) if l != len || b != bytes => {
                Some(format!("{phase}: rewrote {}", p.display()))
            }
            Some((_, m, _)) if m != mtime => Some(format!("{phase}: touched {}", p.display())),
            Some(_) => None,
        })
        .collect()
}

struct Layout {
    _base: tempfile::TempDir,
    project: PathBuf,
    user_files: Vec<PathBuf>,
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A project in `<base>/proj` with Parquet, partitioned, incremental and Delta models, its
/// profile and lakeflow.yml, and user files all around; `extra_project` is appended to
/// lakeflow.yml.
fn layout(extra_project: &str) -> Layout {
    let base = tempfile::tempdir().unwrap();
    let project = base.path().join("proj");
    let p = |rel: &str| project.join(rel);
    write(
        &p("lakeflow.yml"),
        &format!("name: proj\nprofile: proj\n{extra_project}"),
    );
    write(&p("profiles.yml"), PROFILE);
    write(
        &p("models/silver/orders.sql"),
        "{{ config(materialized='external') }} select range as id from range(5)",
    );
    write(
        &p("models/silver/parts.sql"),
        "{{ config(materialized='external', partition_by=['k']) }} select range as id, range % 2 as k from range(6)",
    );
    write(
        &p("models/silver/inc.sql"),
        "{{ config(materialized='incremental') }} select range as id from range(3) {% if is_incremental() %} where id > (select max(id) from {{ this }}) {% endif %}",
    );
    write(
        &p("models/silver/d.sql"),
        "{{ config(materialized='external', format='delta') }} select range as id from range(4)",
    );
    write(
        &p("models/gold/v.sql"),
        "{{ config(materialized='view') }} select count(*) as n from {{ ref('orders') }}",
    );
    // Build once in a scratch copy to learn where each model's output goes, without touching
    // this project.
    let user: Vec<PathBuf> = [
        // next to models
        "models/silver/notes.md",
        "models/README.txt",
        "models/silver/orders.sql.bak",
        // in the lake root and next to model outputs
        "lake/README.txt",
        "lake/dev/silver/notes.txt",
        "lake/dev/silver/orders.parquet.orig",
        "lake/dev/gold/keep.csv",
        // named like a model's output, in other folders (the prod layout among them)
        "lake/silver/orders.parquet",
        "data/orders.parquet",
        "lake/dev/gold/orders.parquet",
        // target/
        "target/notes.txt",
        "target/compiled/mine.sql",
        // the project's own files
        "README.md",
    ]
    .iter()
    .map(|r| p(r))
    .chain([
        base.path().join("sibling/notes.txt"),
        base.path().join("sibling/orders.parquet"),
        base.path().join("sibling/target/run_results.json"),
    ])
    .collect();
    put_user_files(&user);
    Layout {
        _base: base,
        project,
        user_files: user,
    }
}

/// Writes each file, dated 30 days back: old enough for any retention period.
fn put_user_files(files: &[PathBuf]) {
    let old = SystemTime::now() - std::time::Duration::from_secs(30 * 24 * 3600);
    for f in files {
        write(f, &format!("user file {}\n", f.display()));
        let file = std::fs::File::options().write(true).open(f).unwrap();
        file.set_modified(old).unwrap();
    }
}

fn lakeflow(project: &Path, args: &[&str]) -> Run {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lakeflow"))
        .args(args)
        .arg("--project-dir")
        .arg(project)
        .env_remove("LAKEFLOW_TARGET")
        .env_remove("LAKEFLOW_PROFILES_DIR")
        .env_remove("LAKEFLOW_PROJECT_DIR")
        .output()
        .expect("run lakeflow");
    Run::from(out)
}

#[test]
fn build_clean_and_vacuum_leave_user_files_alone() {
    // clean-targets naming a folder outside the project must not reach it either.
    let l = layout("clean-targets: [\"target\", \"../sibling/target\"]\n");
    let mut before = snapshot(&l.user_files);
    assert_eq!(before.len(), l.user_files.len());
    let mut problems = Vec::new();

    lakeflow(&l.project, &["build"]).ok();
    assert!(l.project.join("lake/dev/silver/orders.parquet").is_file());
    problems.extend(changes(&before, "first build"));
    // Files a user puts inside the folders lakeflow made for partitioned, incremental and
    // Delta models.
    let inside: Vec<PathBuf> = [
        "lake/dev/silver/parts/notes.txt",
        "lake/dev/silver/inc.parquet/notes.txt",
        "lake/dev/silver/d/notes.txt",
        "lake/dev/silver/d/mine.parquet",
    ]
    .iter()
    .map(|r| l.project.join(r))
    .collect();
    for f in &inside {
        assert!(f.parent().unwrap().is_dir(), "{}", f.display());
    }
    put_user_files(&inside);
    // A partitioned or incremental model's folder is a link to the version it was written as;
    // a file put there stays with that version (which lakeflow then keeps instead of
    // collecting it), so it is followed where it really is.
    let inside: Vec<PathBuf> = inside
        .iter()
        .map(|f| std::fs::canonicalize(f).unwrap())
        .collect();
    before.extend(snapshot(&inside));
    lakeflow(&l.project, &["build"]).ok();
    problems.extend(changes(&before, "second build"));
    lakeflow(&l.project, &["build", "--full-refresh"]).ok();
    problems.extend(changes(&before, "build --full-refresh"));
    for i in 3..6 {
        lakeflow(&l.project, &["build"]).ok();
        problems.extend(changes(&before, &format!("build {i}")));
    }
    let r = lakeflow(&l.project, &["delta", "vacuum", "--retain-hours", "0"]);
    problems.extend(changes(&before, &format!("delta vacuum (exit {})", r.code)));
    let r = lakeflow(&l.project, &["clean"]);
    assert_eq!(r.code, 2, "a clean-target outside the project is refused");
    problems.extend(changes(&before, &format!("clean (exit {})", r.code)));
    // The default clean-targets (target/, lakeflow's own, which dbt's clean deletes too) take
    // nothing else with them.
    write(
        &l.project.join("lakeflow.yml"),
        "name: proj\nprofile: proj\n",
    );
    before.retain(|p, _| !p.starts_with(l.project.join("target")));
    let r = lakeflow(&l.project, &["clean"]);
    problems.extend(changes(
        &before,
        &format!("clean of target/ (exit {})", r.code),
    ));
    // Each file once, at the first step that changed it.
    let mut seen = std::collections::HashSet::new();
    problems.retain(|p| seen.insert(p.split_once(": ").map(|(_, f)| f.to_string())));

    assert!(
        problems.is_empty(),
        "lakeflow changed files it did not create:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_build_never_adopts_a_user_file_at_a_model_location() {
    let l = layout("");
    // A user's file where a model is configured to write, in a sibling folder, and one at the
    // default location of another model.
    let theirs = l.project.parent().unwrap().join("sibling/report.parquet");
    write(&theirs, "someone else's report\n");
    write(
        &l.project.join("models/gold/report.sql"),
        &format!(
            "{{{{ config(materialized='external', location='{}') }}}} select 1 as x",
            theirs.display()
        ),
    );
    let occupied = l.project.join("lake/dev/gold/taken.parquet");
    write(&occupied, "not lakeflow's\n");
    write(
        &l.project.join("models/gold/taken.sql"),
        "{{ config(materialized='external') }} select 1 as x",
    );
    let before = snapshot(&[theirs.clone(), occupied.clone()]);
    let mut problems = Vec::new();
    let first = lakeflow(&l.project, &["build"]);
    problems.extend(changes(
        &before,
        &format!("first build (exit {})", first.code),
    ));
    let second = lakeflow(&l.project, &["build"]);
    problems.extend(changes(
        &before,
        &format!("second build (exit {})", second.code),
    ));
    assert!(
        problems.is_empty(),
        "lakeflow overwrote files it did not create:\n{}\n{}",
        problems.join("\n"),
        first.stdout
    );
    // Refused, and said why.
    assert_ne!(first.code, 0, "{}", first.stdout);
}
