//! Delta Lake models and sources: written by DuckDB + the deltalake log writer, read back by
//! lakeflow's views, by Python `deltalake` and by DuckDB's delta extension.

mod common;
use common::*;
use std::path::Path;

const DELTA: &[&str] = &["--vars", "{lake_format: delta}"];

fn with(args: &[&str], extra: &[&str]) -> Vec<String> {
    args.iter().chain(extra).map(|s| s.to_string()).collect()
}

fn run(t: &TestProject, args: &[&str], extra: &[&str]) -> Run {
    let all = with(args, extra);
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    t.run(&refs)
}

/// Dumps the latest version (or `version`) of the Delta table at `path`, read by Python
/// `deltalake`, into a Parquet file, and returns that file.
fn python_dump(path: &Path, out: &Path, version: Option<i64>) -> String {
    let script = "
import sys
from deltalake import DeltaTable
import pyarrow.parquet as pq
v = None if sys.argv[3] == '-' else int(sys.argv[3])
dt = DeltaTable(sys.argv[1], version=v)
pq.write_table(dt.to_pyarrow_table(), sys.argv[2])
print(dt.version(), len(dt.file_uris()))
";
    let v = version.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    python(
        script,
        &[&path.to_string_lossy(), &out.to_string_lossy(), &v],
    );
    out.to_string_lossy().into_owned()
}

/// (version, number of active files) of the latest version, as Python `deltalake` sees it.
fn python_version_files(path: &Path) -> (i64, usize) {
    let out = python(
        "import sys\nfrom deltalake import DeltaTable\ndt = DeltaTable(sys.argv[1])\nprint(dt.version(), len(dt.file_uris()))",
        &[&path.to_string_lossy()],
    );
    let mut it = out.split_whitespace();
    (
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse().unwrap(),
    )
}

const DELTA_MODELS: &[(&str, &str)] = &[
    ("silver.events", "silver/events"),
    ("silver.users", "silver/users"),
    ("silver.products", "silver/products"),
    ("gold.daily_revenue", "gold/daily_revenue"),
    ("gold.funnel_daily", "gold/funnel_daily"),
    ("gold.user_activity", "gold/user_activity"),
];

#[test]
fn example_as_delta_equals_parquet_and_reads_back_in_python_and_the_delta_extension() {
    let delta = TestProject::example();
    delta.example_data(3000);
    run(&delta, &["build"], DELTA).ok();
    let parquet = TestProject::example();
    parquet.example_data(3000);
    parquet.run(&["build"]).ok();

    let conn = duckdb_with_delta();
    conn.execute_batch(&format!(
        "ATTACH '{}' AS d (READ_ONLY); ATTACH '{}' AS p (READ_ONLY);",
        delta.path().join("catalog/dev.duckdb").display(),
        parquet.path().join("catalog/dev.duckdb").display()
    ))
    .unwrap();
    let dump = tempfile::tempdir().unwrap();
    for (view, rel) in DELTA_MODELS {
        let table = delta.path().join("lake/dev").join(rel);
        assert!(
            table.join("_delta_log").is_dir(),
            "{view} is not a Delta table"
        );
        let n = query_i64(&conn, &format!("select count(*) from d.{view}"));
        assert!(n > 0, "{view} is empty");
        assert_eq!(
            diff_rows(&conn, &format!("d.{view}"), &format!("p.{view}")),
            0,
            "{view}: Delta and Parquet builds differ"
        );
        let file = python_dump(&table, &dump.path().join(format!("{view}.parquet")), None);
        assert_eq!(
            diff_rows(
                &conn,
                &format!("d.{view}"),
                &format!("read_parquet('{file}')")
            ),
            0,
            "{view}: Python deltalake reads other rows"
        );
        assert_eq!(
            diff_rows(
                &conn,
                &format!("d.{view}"),
                &format!("delta_scan('{}')", table.display())
            ),
            0,
            "{view}: DuckDB's delta extension reads other rows"
        );
    }
    // Partitioned by event_date, with the partition column typed as in the model.
    let events = delta.path().join("lake/dev/silver/events");
    assert!(
        std::fs::read_dir(&events)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("event_date=")),
        "no Hive partition folders under {}",
        events.display()
    );
    assert_eq!(
        query_strings(
            &conn,
            "select data_type from duckdb_columns() where database_name = 'd' and schema_name = 'silver' and table_name = 'events' and column_name = 'event_date'"
        ),
        vec!["DATE"]
    );

    // A second build is a second version; history shows one version per build.
    conn.execute_batch("DETACH d; DETACH p").unwrap();
    run(&delta, &["build"], DELTA).ok();
    conn.execute_batch(&format!(
        "ATTACH '{}' AS d (READ_ONLY)",
        delta.path().join("catalog/dev.duckdb").display()
    ))
    .unwrap();
    let h = run(&delta, &["delta", "history", "events", "--json"], DELTA);
    h.ok();
    let lines: Vec<serde_json::Value> = h
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", h.stdout);
    assert_eq!(lines[0]["version"], 1);
    assert_eq!(lines[0]["operation"], "WRITE");
    assert_eq!(lines[1]["operation"], "CREATE TABLE");
    assert_ne!(lines[0]["build_id"], lines[1]["build_id"]);
    let rr: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(delta.path().join("target/run_results.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        Some(lines[0]["build_id"].as_str().unwrap()),
        rr["metadata"]["invocation_id"]
            .as_str()
            .or(rr["build_id"].as_str()),
        "the commit carries the build id of the run"
    );
    // The old version's files stay for time travel.
    let (version, _) = python_version_files(&events);
    assert_eq!(version, 1);
    let v0 = python_dump(&events, &dump.path().join("v0.parquet"), Some(0));
    assert_eq!(
        diff_rows(&conn, &format!("read_parquet('{v0}')"), "d.silver.events"),
        0
    );
}

fn delta_model(n_var: &str, extra_columns: &str) -> String {
    format!(
        "{{{{ config(materialized='external', format='delta') }}}}\nselect range as id, 'n' || range as name{extra_columns} from range({n_var})\n"
    )
}

#[test]
fn time_travel_schema_change_and_delta_sources_with_as_of() {
    let t = TestProject::new(&[("models/silver/t.sql", &delta_model("{{ var('n', 3) }}", ""))]);
    t.run(&["build"]).ok();
    t.run(&["build", "--vars", "{n: 5}"]).ok();
    let table = t.lake("dev/silver/t");
    // Schema change on overwrite: a new column and a changed type.
    t.write(
        "models/silver/t.sql",
        "{{ config(materialized='external', format='delta') }}\nselect range::varchar as id, range * 1.5 as score from range(4)\n",
    );
    t.run(&["build"]).ok();
    let schema = python(
        "import sys\nfrom deltalake import DeltaTable\nprint([f.name + ':' + str(f.type.type) for f in DeltaTable(sys.argv[1]).schema().fields])",
        &[&table.to_string_lossy()],
    );
    assert!(schema.contains("id:string"), "{schema}");
    assert!(schema.contains("score:decimal"), "{schema}");
    assert!(!schema.contains("name"), "{schema}");

    // Sources read older versions by number and by time.
    let loc = table.to_string_lossy();
    t.write(
        "models/sources.yml",
        &format!(
            "sources:\n  - name: hist\n    config: {{format: delta}}\n    tables:\n      - name: v0\n        config: {{external_location: '{loc}', as_of_version: 0}}\n      - name: v1\n        config: {{external_location: '{loc}', as_of_version: '1'}}\n      - name: now\n        config: {{external_location: '{loc}'}}\n      - name: then\n        config: {{external_location: '{loc}', as_of_timestamp: '2000-01-01'}}\n"
        ),
    );
    t.write(
        "models/gold/v0.sql",
        "select * from {{ source('hist', 'v0') }}",
    );
    t.write(
        "models/gold/v1.sql",
        "select * from {{ source('hist', 'v1') }}",
    );
    t.write(
        "models/gold/now.sql",
        "select * from {{ source('hist', 'now') }}",
    );
    t.run(&["run", "--select", "gold"]).ok();
    let c = read_only(&t.catalog());
    assert_eq!(query_i64(&c, "select count(*) from gold.v0"), 3);
    assert_eq!(query_i64(&c, "select count(*) from gold.v1"), 5);
    assert_eq!(query_i64(&c, "select max(id) from gold.v1"), 4);
    assert_eq!(query_i64(&c, "select count(*) from gold.now"), 4);
    assert_eq!(
        query_strings(&c, "select cast(sum(score) as varchar) from gold.now"),
        vec!["9.0"]
    );
    drop(c);

    // A timestamp before the table existed is a located error.
    t.write(
        "models/gold/then.sql",
        "select * from {{ source('hist', 'then') }}",
    );
    let r = t.run(&["run", "--select", "gold"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("LF131"), "{}", r.stderr);
    assert!(r.stderr.contains("sources.yml"), "{}", r.stderr);
    assert!(r.stderr.contains("hist.then"), "{}", r.stderr);
}

#[test]
fn tables_written_by_python_deltalake_read_as_sources() {
    let t = TestProject::new(&[]);
    let sales = t.path().join("ext/sales");
    let plain = t.path().join("ext/plain");
    python(
        "
import sys, datetime
import pyarrow as pa
from deltalake import write_deltalake
p, q = sys.argv[1], sys.argv[2]
write_deltalake(p, pa.table({'id': [1, 2, 3], 'region': ['eu', 'us', 'eu'], 'amount': [10.5, 20.0, 30.25]}), partition_by=['region'])
write_deltalake(p, pa.table({'id': [4, 5], 'region': ['us', 'a b/c'], 'amount': [1.0, 2.0]}), mode='append', partition_by=['region'])
write_deltalake(p, pa.table({'id': [6], 'region': ['eu'], 'amount': [99.0]}), mode='overwrite', predicate=\"region = 'eu'\", partition_by=['region'])
ts = pa.array([datetime.datetime(2024, 1, 1, 10, 0, 0, 123456), None], pa.timestamp('us'))
write_deltalake(q, pa.table({'k': pa.array([1, 2], pa.int32()), 'ts': ts, 'tags': [['a'], []]}))
write_deltalake(q, pa.table({'k': pa.array([3], pa.int32()), 'ts': pa.array([None], pa.timestamp('us')), 'tags': [['b', 'c']]}), mode='append')
",
        &[&sales.to_string_lossy(), &plain.to_string_lossy()],
    );
    t.write(
        "models/sources.yml",
        "sources:\n  - name: ext\n    config: {format: delta}\n    tables:\n      - name: sales\n        config: {external_location: ext/sales}\n      - name: sales_v1\n        config: {external_location: ext/sales, as_of_version: 1}\n      - name: plain\n        config: {external_location: ext/plain}\n",
    );
    t.write(
        "models/silver/sales.sql",
        "select * from {{ source('ext', 'sales') }}",
    );
    t.write(
        "models/silver/sales_v1.sql",
        "select * from {{ source('ext', 'sales_v1') }}",
    );
    t.write(
        "models/silver/plain.sql",
        "select * from {{ source('ext', 'plain') }}",
    );
    t.write(
        "models/gold/by_region.sql",
        "{{ config(materialized='external', format='delta', partition_by='region') }}\nselect region, sum(amount) as amount, count(*) as n from {{ ref('sales') }} group by region",
    );
    t.run(&["build"]).ok();
    let c = read_only(&t.catalog());
    assert_eq!(
        query_strings(
            &c,
            "select string_agg(id::varchar, ',' order by id) from silver.sales"
        ),
        vec!["2,4,5,6"]
    );
    assert_eq!(
        query_strings(
            &c,
            "select string_agg(id::varchar || region, ',' order by id) from silver.sales_v1"
        ),
        vec!["1eu,2us,3eu,4us,5a b/c"]
    );
    assert_eq!(
        query_strings(
            &c,
            "select cast(sum(amount) as varchar) from silver.sales where region = 'eu'"
        ),
        vec!["99.0"]
    );
    assert_eq!(
        query_strings(
            &c,
            "select string_agg(k || ':' || coalesce(ts::varchar, 'null') || ':' || len(tags), ',' order by k) from silver.plain"
        ),
        vec!["1:2024-01-01 10:00:00.123456:1,2:null:0,3:null:2"]
    );
    drop(c);
    // lakeflow's own partitioned output, with an awkward partition value, reads back in Python.
    let conn = memory();
    conn.execute_batch(&format!(
        "ATTACH '{}' AS c (READ_ONLY)",
        t.catalog().display()
    ))
    .unwrap();
    let dump = python_dump(
        &t.lake("dev/gold/by_region"),
        &t.path().join("by_region.parquet"),
        None,
    );
    assert_eq!(
        diff_rows(
            &conn,
            "c.gold.by_region",
            &format!("read_parquet('{dump}')")
        ),
        0
    );
    assert_eq!(query_i64(&conn, "select count(*) from c.gold.by_region"), 3);
}

fn small_files_model(n: &str) -> String {
    format!(
        "{{{{ config(materialized='external', format='delta', target_file_size='16KB', options={{'row_group_size': 2048}}) }}}}\nselect range as id, range % 3 as p, md5(range::varchar) as h from range({n})\n"
    )
}

#[test]
fn optimize_compacts_without_changing_results_and_vacuum_spares_pinned_versions() {
    let t = TestProject::new(&[(
        "models/silver/t.sql",
        &small_files_model("{{ var('n', 40000) }}"),
    )]);
    t.run(&["build"]).ok();
    let table = t.lake("dev/silver/t");
    let (_, files_v0) = python_version_files(&table);
    assert!(files_v0 > 6, "expected many small files, got {files_v0}");
    let replica = t.path().join("replica.duckdb");
    t.run(&["catalog", "publish", "--to", &replica.to_string_lossy()])
        .ok();
    t.run(&["build", "--vars", "{n: 50000}"]).ok();
    let (_, files_v1) = python_version_files(&table);

    let conn = memory();
    conn.execute_batch(&format!(
        "ATTACH '{}' AS c (READ_ONLY); create table before as from c.silver.t; DETACH c;",
        t.catalog().display()
    ))
    .unwrap();
    let out = t.run(&["delta", "optimize", "--target-size", "64MB"]);
    out.ok();
    assert!(
        out.stdout.contains(&format!("{files_v1} files -> 1")),
        "{}",
        out.stdout
    );
    let (version, files_after) = python_version_files(&table);
    assert_eq!((version, files_after), (2, 1));
    conn.execute_batch(&format!(
        "ATTACH '{}' AS c (READ_ONLY)",
        t.catalog().display()
    ))
    .unwrap();
    assert_eq!(diff_rows(&conn, "before", "c.silver.t"), 0);
    let dump = python_dump(&table, &t.path().join("after.parquet"), None);
    assert_eq!(
        diff_rows(&conn, "before", &format!("read_parquet('{dump}')")),
        0
    );
    conn.execute_batch("DETACH c").unwrap();
    let h = t.run(&["delta", "history", "t", "--json", "--limit", "1"]);
    let last: serde_json::Value = serde_json::from_str(h.ok().stdout.trim()).unwrap();
    assert_eq!(last["operation"], "OPTIMIZE");
    assert_eq!(last["data_change"], false);

    // Vacuum with no retention: version 1's files go, version 0 stays for the replica.
    let on_disk = parquet_files(&table).len();
    assert_eq!(on_disk, files_v0 + files_v1 + 1);
    let dry = t.run(&["delta", "vacuum", "--retain-hours", "0", "--dry-run"]);
    assert!(
        dry.ok()
            .stdout
            .contains(&format!("would delete {files_v1} files")),
        "{}",
        dry.stdout
    );
    assert_eq!(parquet_files(&table).len(), on_disk);
    let v = t.run(&["delta", "vacuum", "--retain-hours", "0"]);
    assert!(
        v.ok().stdout.contains(&format!("deleted {files_v1} files")),
        "{}",
        v.stdout
    );
    assert!(
        v.stdout.contains(&format!("{files_v0} pinned")),
        "{}",
        v.stdout
    );
    assert_eq!(parquet_files(&table).len(), files_v0 + 1);
    let r = read_only(&replica);
    assert_eq!(query_i64(&r, "select count(*) from silver.t"), 40000);
    let c = read_only(&t.catalog());
    assert_eq!(query_i64(&c, "select count(*) from silver.t"), 50000);
    assert_eq!(python_version_files(&table), (2, 1));
}

#[test]
fn optimize_compacts_each_partition_of_a_table_other_tools_appended_to() {
    let t = TestProject::new(&[]);
    let table = t.path().join("ext/appended");
    python(
        "
import sys
import pyarrow as pa
from deltalake import write_deltalake
for i in range(4):
    ids = list(range(i * 30, i * 30 + 30))
    write_deltalake(sys.argv[1], pa.table({'id': ids, 'p': [['a', 'b', None][x % 3] for x in ids]}), mode='append', partition_by=['p'])
",
        &[&table.to_string_lossy()],
    );
    assert_eq!(python_version_files(&table), (3, 12));
    t.write(
        "models/silver/appended.sql",
        &format!(
            "{{{{ config(materialized='external', format='delta', partition_by='p', location='{}') }}}}\nselect 1 as id, 'a' as p\n",
            table.display()
        ),
    );
    let before = python_dump(&table, &t.path().join("before.parquet"), None);
    let out = t.run(&["delta", "optimize"]);
    assert!(out.ok().stdout.contains("12 files -> 3"), "{}", out.stdout);
    assert_eq!(python_version_files(&table), (4, 3));
    let after = python_dump(&table, &t.path().join("after.parquet"), None);
    let conn = memory();
    assert_eq!(
        query_i64(
            &conn,
            &format!("select count(*) from read_parquet('{after}')")
        ),
        120
    );
    assert_eq!(
        diff_rows(
            &conn,
            &format!("read_parquet('{before}')"),
            &format!("read_parquet('{after}')")
        ),
        0
    );
    // The catalog view follows the compacted version.
    let c = read_only(&t.catalog());
    assert_eq!(
        query_i64(&c, "select count(*) from silver.appended where p is null"),
        40
    );
}

#[test]
fn a_failed_write_leaves_the_table_and_its_files_as_they_were() {
    let t = TestProject::new(&[("models/silver/t.sql", &delta_model("1000", ""))]);
    t.run(&["build"]).ok();
    let table = t.lake("dev/silver/t");
    let files = parquet_files(&table);
    t.write(
        "models/silver/t.sql",
        "{{ config(materialized='external', format='delta') }}\nselect range as id, case when range = 2500000 then error('boom') else range end as v from range(3000000)\n",
    );
    let r = t.run(&["build"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("boom") || r.stderr.contains("boom"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(python_version_files(&table).0, 0);
    assert_eq!(
        parquet_files(&table),
        files,
        "the failed write left files behind"
    );
    let c = read_only(&t.catalog());
    assert_eq!(query_i64(&c, "select count(*) from silver.t"), 1000);
}

/// Starts a build in every project at once, `rounds` times (writer `w` = round * 10 + index);
/// returns whether each run succeeded and what it printed.
fn race(projects: &[TestProject], rounds: usize) -> Vec<(bool, String)> {
    let mut outcomes = Vec::new();
    for round in 0..rounds {
        let children: Vec<_> = projects
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.command(&["build", "--vars", &format!("{{w: {}}}", round * 10 + i)])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            outcomes.push((out.status.success(), text));
        }
    }
    outcomes
}

#[test]
fn racing_writers_never_corrupt_the_log() {
    let shared = tempfile::tempdir().unwrap();
    let location = shared.path().join("t");
    let model = format!(
        "{{{{ config(materialized='external', format='delta', location='{}') }}}}\nselect range as id, {{{{ var('w') }}}} as writer from range(200000)\n",
        location.display()
    );
    let projects: Vec<TestProject> = (0..4)
        .map(|_| TestProject::new(&[("models/silver/t.sql", &model)]))
        .collect();
    for (ok, text) in race(&projects, 2) {
        assert!(
            ok,
            "a writer that lost a version retries on top of the winner's:\n{text}"
        );
    }
    // Every version is readable, each holds exactly one writer's rows, and no file is orphaned.
    let out = python(
        "
import sys, os
from deltalake import DeltaTable
dt = DeltaTable(sys.argv[1])
referenced = set()
for v in range(dt.version() + 1):
    d = DeltaTable(sys.argv[1], version=v)
    t = d.to_pyarrow_table()
    assert t.num_rows == 200000, (v, t.num_rows)
    assert len(set(t.column('writer').to_pylist())) == 1, v
    referenced |= {os.path.normpath(u.replace('file://', '')) for u in d.file_uris()}
on_disk = set()
for root, _, files in os.walk(sys.argv[1]):
    on_disk |= {os.path.normpath(os.path.join(root, f)) for f in files if f.endswith('.parquet')}
assert on_disk == referenced, (on_disk - referenced, referenced - on_disk)
print(dt.version())
",
        &[&location.to_string_lossy()],
    );
    let version: i64 = out.trim().parse().unwrap();
    assert_eq!(version, 7, "8 builds, 8 versions");
}

#[test]
fn checkpoints_are_written_at_the_configured_interval() {
    let t = TestProject::new(&[(
        "models/silver/t.sql",
        "{{ config(materialized='external', format='delta', table_properties={'delta.checkpointInterval': '2'}) }}\nselect range as id, current_timestamp as at from range({{ var('n', 10) }})\n",
    )]);
    for n in [10, 20, 30] {
        t.run(&["build", "--vars", &format!("{{n: {n}}}")]).ok();
    }
    let log = t.lake("dev/silver/t/_delta_log");
    assert!(
        log.join("00000000000000000001.checkpoint.parquet")
            .is_file(),
        "no checkpoint after the second commit (version 1) in {}",
        log.display()
    );
    assert!(log.join("_last_checkpoint").is_file());
    let conn = duckdb_with_delta();
    assert_eq!(
        query_i64(
            &conn,
            &format!(
                "select count(*) from delta_scan('{}')",
                t.lake("dev/silver/t").display()
            )
        ),
        30
    );
    assert_eq!(python_version_files(&t.lake("dev/silver/t")).0, 2);
}

#[test]
fn delta_scan_sources_work_with_the_delta_extension() {
    let t = TestProject::new(&[("models/silver/t.sql", &delta_model("7", ""))]);
    t.run(&["build"]).ok();
    let dir = std::env::var("LAKEFLOW_EXTENSION_DIR").unwrap();
    t.write(
        "profiles.yml",
        &PROFILE.replace(
            "      threads: 4\n",
            &format!("      threads: 4\n      extension_directory: '{dir}'\n"),
        ),
    );
    t.write(
        "models/sources.yml",
        &format!(
            "sources:\n  - name: ext\n    tables:\n      - name: t\n        meta: {{external_location: \"delta_scan('{}')\"}}\n",
            t.lake("dev/silver/t").display()
        ),
    );
    t.write(
        "models/gold/scan.sql",
        "select * from {{ source('ext', 't') }}",
    );
    t.run(&["run", "--select", "scan"]).ok();
    let q = t.run(&[
        "query",
        "select count(*) as n from gold.scan",
        "--format",
        "csv",
        "--from",
        "catalog",
    ]);
    assert!(q.ok().stdout.contains('7'), "{}", q.stdout);
}

#[test]
fn example_as_delta_on_s3_equals_the_local_delta_build() {
    let s3 = common::s3::S3::shared();
    let bucket = s3.bucket("delta");
    let t = TestProject::example();
    t.example_data(3000);
    run(&t, &["build"], DELTA).ok();
    let mut cmd = t.command(&["build", "--target", "s3", "--vars", "{lake_format: delta}"]);
    cmd.env("LAKEFLOW_S3_BUCKET", &bucket)
        .env("LAKEFLOW_S3_KEY_ID", &s3.key_id)
        .env("LAKEFLOW_S3_SECRET", &s3.secret)
        .env("LAKEFLOW_S3_ENDPOINT", &s3.endpoint);
    Run::from(cmd.output().unwrap()).ok();
    // A second build: a second version on S3, committed with a conditional put.
    Run::from(cmd.output().unwrap()).ok();
    let log = s3.objects(&bucket, "shop/s3/silver/events/_delta_log/");
    assert!(
        log.iter().any(|k| k.ends_with("00000000000000000001.json")),
        "{log:?}"
    );

    let reader = s3.reader();
    reader
        .execute_batch(&format!(
            "ATTACH '{}' AS l (READ_ONLY); ATTACH '{}' AS r (READ_ONLY);",
            t.path().join("catalog/dev.duckdb").display(),
            t.path().join("catalog/s3.duckdb").display()
        ))
        .unwrap();
    for (view, _) in DELTA_MODELS {
        assert!(query_i64(&reader, &format!("select count(*) from r.{view}")) > 0);
        assert_eq!(
            diff_rows(&reader, &format!("l.{view}"), &format!("r.{view}")),
            0,
            "{view}: S3 and local differ"
        );
    }
    // Python deltalake reads the table on S3 too.
    let out = python(
        "
import sys
from deltalake import DeltaTable
opts = {'AWS_ENDPOINT_URL': 'http://' + sys.argv[2], 'AWS_ACCESS_KEY_ID': sys.argv[3],
        'AWS_SECRET_ACCESS_KEY': sys.argv[4], 'AWS_REGION': 'us-east-1', 'AWS_ALLOW_HTTP': 'true',
        'AWS_S3_ALLOW_UNSAFE_RENAME': 'true'}
dt = DeltaTable(sys.argv[1], storage_options=opts)
print(dt.version(), dt.to_pyarrow_table().num_rows)
",
        &[
            &format!("s3://{bucket}/shop/s3/silver/events"),
            &s3.endpoint,
            &s3.key_id,
            &s3.secret,
        ],
    );
    let rows = query_i64(&reader, "select count(*) from l.silver.events");
    assert_eq!(out.trim(), format!("1 {rows}"));

    // A replica of the S3 catalog reads the version its build wrote.
    reader.execute_batch("DETACH r").unwrap();
    let replica = t.path().join("replica.duckdb");
    let mut publish = t.command(&[
        "catalog",
        "publish",
        "--to",
        &replica.to_string_lossy(),
        "--target",
        "s3",
        "--vars",
        "{lake_format: delta}",
    ]);
    publish
        .env("LAKEFLOW_S3_BUCKET", &bucket)
        .env("LAKEFLOW_S3_KEY_ID", &s3.key_id)
        .env("LAKEFLOW_S3_SECRET", &s3.secret)
        .env("LAKEFLOW_S3_ENDPOINT", &s3.endpoint);
    Run::from(publish.output().unwrap()).ok();
    reader
        .execute_batch(&format!(
            "ATTACH '{}' AS rep (READ_ONLY)",
            replica.display()
        ))
        .unwrap();
    assert_eq!(
        diff_rows(&reader, "rep.silver.events", "l.silver.events"),
        0
    );
    assert!(
        !std::fs::read(&replica)
            .unwrap()
            .windows(s3.secret.len())
            .any(|w| w == s3.secret.as_bytes()),
        "the replica holds the secret"
    );
}

#[test]
fn racing_writers_on_s3_keep_every_version_whole() {
    let s3 = common::s3::S3::shared();
    let bucket = s3.bucket("race");
    let location = format!("s3://{bucket}/t");
    let model = format!(
        "{{{{ config(materialized='external', format='delta', location='{location}') }}}}\nselect range as id, {{{{ var('w') }}}} as writer from range(100000)\n"
    );
    let projects: Vec<TestProject> = (0..3)
        .map(|_| {
            let p = TestProject::new(&[("models/silver/t.sql", &model)]);
            p.write("profiles.yml", &s3.profile(&bucket, &s3.secret));
            p
        })
        .collect();
    for (ok, text) in race(&projects, 2) {
        assert!(
            ok || text.contains("at the same time"),
            "a writer must commit or fail cleanly:\n{text}"
        );
        assert!(!text.contains(&s3.secret), "the secret leaked:\n{text}");
    }
    let out = python(
        "
import sys
from deltalake import DeltaTable
opts = {'AWS_ENDPOINT_URL': 'http://' + sys.argv[2], 'AWS_ACCESS_KEY_ID': sys.argv[3],
        'AWS_SECRET_ACCESS_KEY': sys.argv[4], 'AWS_REGION': 'us-east-1', 'AWS_ALLOW_HTTP': 'true',
        'AWS_S3_ALLOW_UNSAFE_RENAME': 'true'}
latest = DeltaTable(sys.argv[1], storage_options=opts).version()
for v in range(latest + 1):
    t = DeltaTable(sys.argv[1], version=v, storage_options=opts).to_pyarrow_table()
    assert t.num_rows == 100000, (v, t.num_rows)
    assert len(set(t.column('writer').to_pylist())) == 1, v
print(latest)
",
        &[&location, &s3.endpoint, &s3.key_id, &s3.secret],
    );
    assert!(out.trim().parse::<i64>().unwrap() >= 1, "{out}");
}

#[test]
fn an_empty_result_is_an_empty_version_with_the_schema() {
    let t = TestProject::new(&[(
        "models/silver/t.sql",
        "{{ config(materialized='external', format='delta', partition_by='p') }}\nselect range as id, 'x' || (range % 2) as p, range::double * 0.5 as v from range({{ var('n', 0) }})\n",
    )]);
    t.run(&["build"]).ok();
    let c = read_only(&t.catalog());
    assert_eq!(query_i64(&c, "select count(*) from silver.t"), 0);
    assert_eq!(
        query_strings(
            &c,
            "select string_agg(column_name || ' ' || data_type, ', ' order by column_index) from duckdb_columns() where table_name = 't'"
        ),
        vec!["id BIGINT, p VARCHAR, v DOUBLE"]
    );
    drop(c);
    assert_eq!(python_version_files(&t.lake("dev/silver/t")), (0, 0));
    t.run(&["build", "--vars", "{n: 5}"]).ok();
    let c = read_only(&t.catalog());
    assert_eq!(
        query_i64(&c, "select count(*) from silver.t where p = 'x1'"),
        2
    );
}

#[test]
fn a_delta_model_never_writes_over_files_of_another_format() {
    let t = TestProject::new(&[(
        "models/silver/t.sql",
        "{{ config(materialized='external', partition_by='p') }}\nselect range as id, range % 2 as p from range(10)\n",
    )]);
    t.run(&["build"]).ok();
    let before = parquet_files(&t.lake("dev/silver/t"));
    assert!(!before.is_empty());
    t.write(
        "models/silver/t.sql",
        "{{ config(materialized='external', format='delta', partition_by='p') }}\nselect range as id, range % 2 as p from range(10)\n",
    );
    let r = t.run(&["build"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("no Delta table"), "{}", r.stdout);
    assert_eq!(parquet_files(&t.lake("dev/silver/t")), before);
    let c = read_only(&t.catalog());
    assert_eq!(query_i64(&c, "select count(*) from silver.t"), 10);
}

#[test]
fn maintenance_of_a_model_never_built_does_nothing() {
    let t = TestProject::new(&[("models/silver/t.sql", &delta_model("3", ""))]);
    for cmd in [["delta", "optimize"], ["delta", "vacuum"]] {
        let r = t.run(&cmd);
        assert!(
            r.ok().stdout.contains("t: not built yet, nothing to do"),
            "{}",
            r.stdout
        );
    }
}

/// Partition values that a path must escape: a space, `:` (so every timestamp), `/`,
/// non-ASCII, `%`. DuckDB's Hive folders escape them (`p=a%20b`), so each data file's name
/// holds a `%` and its log path an encoded `%25`.
const AWKWARD_ROWS: &str = "(values (1, 'a b', timestamp '2024-01-01 10:30:00'), (2, 'x:y', timestamp '2024-01-01 10:30:00'), (3, 'a/b', timestamp '2024-01-02 00:00:01'), (4, 'ü', timestamp '2024-01-02 00:00:01'), (5, '50%', timestamp '2024-01-03 23:59:59'), (6, 'plain', timestamp '2024-01-03 23:59:59')) as t(id, p, ts)";

fn awkward_model(config: &str) -> String {
    format!(
        "{{{{ config(materialized='incremental', format='delta', {config}) }}}}\nselect id, p, ts, {{{{ var('batch') }}}} * 100 + id as v from {AWKWARD_ROWS}\n"
    )
}

#[test]
fn merges_and_overwrites_replace_rows_in_partitions_whose_values_need_escaping() {
    let models = [
        (
            "merge_p",
            "unique_key='id', incremental_strategy='merge', partition_by='p'",
        ),
        (
            "delete_insert_ts",
            "unique_key='id', incremental_strategy='delete+insert', partition_by='ts'",
        ),
        (
            "overwrite_p",
            "incremental_strategy='insert_overwrite', partition_by='p'",
        ),
        (
            "overwrite_ts",
            "incremental_strategy='insert_overwrite', partition_by='ts'",
        ),
    ];
    let files: Vec<(String, String)> = models
        .iter()
        .map(|(name, config)| (format!("models/silver/{name}.sql"), awkward_model(config)))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let t = TestProject::new(&refs);
    for batch in 1..=3 {
        t.run(&["build", "--vars", &format!("{{batch: {batch}}}")])
            .ok();
    }
    let c = read_only(&t.catalog());
    let ext = duckdb_with_delta();
    for (name, _) in models {
        // Every batch has the six ids: the last one replaced all earlier rows.
        assert_eq!(
            query_i64(&c, &format!("select count(*) from silver.{name}")),
            6,
            "{name}: rows of earlier batches are still there"
        );
        assert_eq!(
            query_i64(&c, &format!("select sum(v) from silver.{name}")),
            6 * 300 + 21,
            "{name}"
        );
        assert_eq!(
            query_i64(
                &c,
                &format!("select count(distinct p) + count(distinct ts) from silver.{name}")
            ),
            6 + 3,
            "{name}: partition values read back as written"
        );
        // Other readers see the same version: the log removed what was replaced.
        let location = t.lake(&format!("dev/silver/{name}"));
        assert_eq!(
            query_i64(
                &ext,
                &format!("select count(*) from delta_scan('{}')", location.display())
            ),
            6,
            "{name}: the delta extension reads rows of earlier batches"
        );
    }
    drop(c);
    // Vacuum deletes the replaced files (their names on disk, decoded once) and nothing else.
    t.run(&[
        "delta",
        "vacuum",
        "--retain-hours",
        "0",
        "--vars",
        "{batch: 3}",
    ])
    .ok();
    let c = read_only(&t.catalog());
    for (name, _) in models {
        assert_eq!(
            query_i64(&c, &format!("select sum(v) from silver.{name}")),
            6 * 300 + 21,
            "{name} after vacuum"
        );
        let live = parquet_files(&t.lake(&format!("dev/silver/{name}")));
        assert!(
            live.len() <= 6,
            "{name}: {} files left: {live:?}",
            live.len()
        );
    }
}

#[test]
fn delta_commits_are_refused_on_s3_stores_that_ignore_conditional_puts() {
    let s3 = common::s3::S3::shared();
    let bucket = s3.bucket("ignores-conditions");
    let proxy = common::s3::IgnoresConditionalPuts::start(&s3.endpoint);
    let t = TestProject::new(&[(
        "models/silver/t.sql",
        "{{ config(materialized='external', format='delta') }}\nselect range as id from range(3)\n",
    )]);
    let through_proxy = s3
        .profile(&bucket, &s3.secret)
        .replace(&s3.endpoint, &proxy.endpoint);
    t.write("profiles.yml", &through_proxy);
    let run = t.run(&["build"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let out = format!("{}{}", run.stdout, run.stderr);
    assert!(out.contains("ignores conditional writes"), "{out}");
    assert!(out.contains(&proxy.endpoint), "{out}");
    assert!(out.contains("unsafe_delta_commits: true"), "{out}");
    let log = s3.objects(&bucket, "lake/s3/silver/t/");
    assert!(log.is_empty(), "nothing written, no probe left: {log:?}");
    // `lakeflow debug` says so before any build.
    let debug = t.run(&["debug"]);
    assert_eq!(debug.code, 1, "{}", debug.stdout);
    assert!(
        debug
            .stdout
            .contains("FAIL  conditional writes: ignored by this store"),
        "{}",
        debug.stdout
    );
    // The target that opts in commits anyway.
    t.write(
        "profiles.yml",
        &through_proxy.replace(
            "      threads: 4\n",
            "      threads: 4\n      unsafe_delta_commits: true\n",
        ),
    );
    t.run(&["build"]).ok();
    // The server itself honours the condition: no opt-in needed.
    t.write("profiles.yml", &s3.profile(&bucket, &s3.secret));
    t.run(&["build"]).ok();
    let debug = t.run(&["debug"]);
    assert!(
        debug.stdout.contains("OK    conditional writes: honoured"),
        "{}",
        debug.stdout
    );
    let log = s3.objects(&bucket, "lake/s3/silver/t/_delta_log/");
    assert!(
        log.iter().any(|k| k.ends_with("00000000000000000001.json")),
        "{log:?}"
    );
    assert!(
        !log.iter().any(|k| k.contains("_lakeflow_probe_")),
        "{log:?}"
    );
}

/// dbt-duckdb's source forms read natively: `plugin: delta` with `delta_table_path` (and
/// `as_of_version`), and `external_location` templates under each `formatter`. Another plugin
/// is a warning naming it.
#[test]
fn dbt_duckdb_plugin_sources_and_location_formatters() {
    let t = TestProject::new(&[("models/silver/t.sql", &delta_model("{{ var('n', 3) }}", ""))]);
    t.run(&["build"]).ok();
    t.run(&["build", "--vars", "{n: 5}"]).ok();
    let loc = t.lake("dev/silver/t").to_string_lossy().into_owned();
    let root = t.path().to_string_lossy().into_owned();
    std::fs::write(t.path().join("seed_a.csv"), "x\n1\n2\n").unwrap();
    t.write(
        "models/sources.yml",
        &format!(
            "sources:\n  - name: lake\n    meta:\n      plugin: delta\n    tables:\n      - name: first\n        meta: {{delta_table_path: '{loc}', as_of_version: 0}}\n      - name: latest\n        meta: {{delta_table_path: '{loc}'}}\n  - name: files\n    meta:\n      root: '{root}'\n    tables:\n      - name: new_style\n        meta: {{external_location: \"read_csv('{{root}}/{{name}}.csv')\"}}\n        identifier: seed_a\n      - name: seed_a\n        meta: {{external_location: \"read_csv('%(root)s/%(name)s.csv')\", formatter: oldstyle}}\n      - name: tmpl\n        identifier: seed_a\n        meta: {{external_location: \"read_csv('${{root}}/$identifier.csv')\", formatter: template}}\n  - name: other\n    meta:\n      plugin: excel\n    tables:\n      - name: sheet\n"
        ),
    );
    t.write(
        "models/gold/first.sql",
        "select * from {{ source('lake', 'first') }}",
    );
    t.write(
        "models/gold/latest.sql",
        "select * from {{ source('lake', 'latest') }}",
    );
    t.write(
        "models/gold/files.sql",
        "select (select sum(x) from {{ source('files', 'seed_a') }}) + (select sum(x) from {{ source('files', 'tmpl') }}) as total",
    );
    let run = t.run(&["run", "--select", "gold"]);
    run.ok();
    assert!(
        run.stderr
            .contains("source other.sheet uses the dbt-duckdb plugin 'excel'"),
        "{}",
        run.stderr
    );
    let c = read_only(&t.catalog());
    assert_eq!(query_i64(&c, "select count(*) from gold.first"), 3);
    assert_eq!(query_i64(&c, "select count(*) from gold.latest"), 5);
    assert_eq!(query_i64(&c, "select total from gold.files"), 6);
}
