//! Helpers for end-to-end tests: a project in a temp dir, the real binary, DuckDB to check.
#![allow(dead_code)]

pub mod s3;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct TestProject {
    root: PathBuf,
    /// The temporary folder the project lives in, removed on drop; None for `at`.
    _temp: Option<tempfile::TempDir>,
}

pub const PROFILE: &str = "proj:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: catalog.duckdb\n      external_root: lake\n      threads: 4\n    prod:\n      type: duckdb\n      path: prod.duckdb\n      external_root: lake\n";

impl TestProject {
    /// A project named `proj` whose models are given as (relative path, text).
    pub fn new(files: &[(&str, &str)]) -> TestProject {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = TestProject {
            root: dir.path().to_path_buf(),
            _temp: Some(dir),
        };
        t.write("lakeflow.yml", "name: proj\nprofile: proj\n");
        t.write("profiles.yml", PROFILE);
        for (path, text) in files {
            t.write(path, text);
        }
        t
    }

    /// A dbt project (`dbt_project.yml` and `profiles.yml` as given, no lakeflow.yml).
    pub fn dbt(project_yml: &str, profiles_yml: &str) -> TestProject {
        let t = TestProject::new(&[]);
        std::fs::remove_file(t.path().join("lakeflow.yml")).expect("a dbt project only");
        t.write("dbt_project.yml", project_yml);
        t.write("profiles.yml", profiles_yml);
        t
    }

    /// `target/run_results.json` of the last run.
    pub fn run_results(&self) -> serde_json::Value {
        let path = self.path().join("target/run_results.json");
        serde_json::from_str(&std::fs::read_to_string(&path).expect("run_results.json"))
            .expect("run_results.json is JSON")
    }

    /// The last run's status of the node whose unique_id starts with `id` ("missing" if none).
    pub fn status_of(&self, id: &str) -> String {
        self.run_results()["results"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["unique_id"].as_str().is_some_and(|u| u.starts_with(id)))
            .and_then(|r| r["status"].as_str())
            .unwrap_or("missing")
            .to_string()
    }

    /// A project in `dir` (which the caller owns and removes).
    pub fn at(dir: PathBuf) -> TestProject {
        TestProject {
            root: dir,
            _temp: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run lakeflow");
        Run::from(out)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lakeflow"));
        // Run from the project folder, as users do (dbt projects resolve relative paths against
        // the working directory, as in dbt-duckdb).
        cmd.args(args)
            .arg("--project-dir")
            .arg(self.path())
            .current_dir(self.path())
            .env_remove("LAKEFLOW_TARGET")
            .env_remove("LAKEFLOW_PROFILES_DIR")
            .env_remove("LAKEFLOW_PROJECT_DIR")
            .env_remove("DBT_PROFILES_DIR")
            .env_remove("DBT_TARGET")
            .env_remove("DBT_PROJECT_DIR");
        cmd
    }

    pub fn lake(&self, rel: &str) -> PathBuf {
        self.path().join("lake").join(rel)
    }

    pub fn catalog(&self) -> PathBuf {
        self.path().join("catalog.duckdb")
    }

    /// A copy of `example_project/` (without generated data or outputs).
    pub fn example() -> TestProject {
        let t = TestProject::new(&[]);
        copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("example_project"),
            t.path(),
        );
        t
    }

    /// A copy of `tests/fixtures/<name>/` as it is (its own project and profile files),
    /// without its `expected/` outputs.
    pub fn fixture(name: &str) -> TestProject {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
            dir.path(),
        );
        TestProject {
            root: dir.path().to_path_buf(),
            _temp: Some(dir),
        }
    }

    /// Writes the example's raw data: `rows` events.
    pub fn example_data(&self, rows: u64) {
        let dir = self.path().to_string_lossy().into_owned();
        self.run(&["example-data", "--rows", &rows.to_string(), "--out", &dir])
            .ok();
    }
}

/// Copies a project's files (not its outputs) from one folder to another.
pub fn copy_dir(from: &Path, to: &Path) {
    copy_tree(from, to)
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if [
            "landing",
            "lake",
            "catalog",
            "target",
            ".duckdb_spill",
            "expected",
        ]
        .contains(&name.as_str())
        {
            continue;
        }
        let dest = to.join(&name);
        if entry.path().is_dir() {
            std::fs::create_dir_all(&dest).expect("mkdir");
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).expect("copy");
        }
    }
}

/// A small deterministic generator (xorshift), so a failing sequence can be replayed from its
/// seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// An index into something of `len` items.
    pub fn pick(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn ok(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "lakeflow failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs lakeflow with a time limit: a run that hangs fails the test instead of the suite.
pub fn run_bounded(t: &TestProject, args: &[&str], limit: std::time::Duration) -> Run {
    let mut child = t
        .command(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start lakeflow");
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return Run::from(child.wait_with_output().expect("output"));
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "lakeflow {args:?} hung for {limit:?}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Opens a catalog read-only, as a reader would.
pub fn read_only(path: &Path) -> duckdb::Connection {
    let config = duckdb::Config::default()
        .access_mode(duckdb::AccessMode::ReadOnly)
        .expect("config");
    duckdb::Connection::open_with_flags(path, config).expect("open catalog read-only")
}

pub fn query_i64(conn: &duckdb::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get::<_, i64>(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub fn query_strings(conn: &duckdb::Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query");
    rows.map(|r| r.expect("row")).collect()
}

pub fn memory() -> duckdb::Connection {
    duckdb::Connection::open_in_memory().expect("duckdb")
}

pub fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::symlink_metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs `script` with the test venv's Python (which has `deltalake` and pyarrow) and returns
/// its stdout; `scripts/test` creates the venv and sets LAKEFLOW_TEST_PYTHON.
pub fn python(script: &str, args: &[&str]) -> String {
    let py = std::env::var("LAKEFLOW_TEST_PYTHON").expect(
        "LAKEFLOW_TEST_PYTHON is not set: run the tests with scripts/test, which makes the venv with deltalake",
    );
    // Python deltalake's runtime threads sometimes abort the interpreter's teardown
    // ("terminate called without an active exception") after the script has done its work;
    // leave without the teardown.
    let script =
        format!("{script}\nimport os as _os, sys as _sys\n_sys.stdout.flush()\n_os._exit(0)\n");
    let out = Command::new(py)
        .arg("-c")
        .arg(&script)
        .args(args)
        .output()
        .expect("start python");
    assert!(
        out.status.success(),
        "python failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An in-memory DuckDB with the delta extension loaded from LAKEFLOW_EXTENSION_DIR.
pub fn duckdb_with_delta() -> duckdb::Connection {
    let dir = std::env::var("LAKEFLOW_EXTENSION_DIR")
        .expect("LAKEFLOW_EXTENSION_DIR is not set: run the tests with scripts/test");
    let conn = memory();
    conn.execute_batch(&format!("SET extension_directory = '{dir}'; LOAD delta;"))
        .expect("load delta extension");
    conn
}

/// Rows in `a` but not `b` plus rows in `b` but not `a` (0: the same multiset).
pub fn diff_rows(conn: &duckdb::Connection, a: &str, b: &str) -> i64 {
    query_i64(
        conn,
        &format!(
            "select count(*) from ((from {a} except all from {b}) union all (from {b} except all from {a}))"
        ),
    )
}

/// Parquet files under `dir`, recursively (hidden ones too).
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(parquet_files(&p));
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out
}

/// Every Rust file under the crate's `src/`, as (path relative to src/, text), sorted: for
/// tests that read the source itself (layering, the error-code table).
pub fn rust_sources() -> Vec<(PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("utf-8 source");
                let rel = path.strip_prefix(&src).expect("under src").to_path_buf();
                out.push((rel, text));
            }
        }
    }
    out.sort();
    out
}

/// Runs a headless-Chromium check (`tests/browser/<script>` with `args`, then the screenshot
/// path) and asserts it passed and wrote a screenshot of at least `min_shot` bytes.
/// `scripts/test` installs Chromium and the script's npm packages and sets
/// LAKEFLOW_TEST_CHROMIUM.
pub fn browser_check(script: &str, args: &[&str], min_shot: u64) {
    let chromium = std::env::var("LAKEFLOW_TEST_CHROMIUM").expect(
        "LAKEFLOW_TEST_CHROMIUM is not set: run the tests with scripts/test, which installs Chromium and the browser test's npm packages",
    );
    let shots = tempfile::tempdir().expect("tempdir");
    let shot = shots.path().join("shot.png");
    let out = Command::new("node")
        .arg(format!("tests/browser/{script}"))
        .args(args)
        .arg(&shot)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CHROMIUM", chromium)
        .output()
        .expect("run node (Node.js must be installed)");
    assert!(
        out.status.success(),
        "the browser test failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > min_shot, "the screenshot is {size} bytes");
}
