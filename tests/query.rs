//! `lakeflow query`: a read-only session that still reads every view, and every DuckDB type
//! printed in every format.

mod common;
use common::*;

fn built() -> TestProject {
    let t = TestProject::new(&[
        (
            "models/silver/orders.sql",
            "{{ config(materialized='external') }} select 1 as id, 'a' as name",
        ),
        (
            "models/gold/parts.sql",
            "{{ config(materialized='external', partition_by=['id']) }} select * from {{ ref('orders') }}",
        ),
        (
            "models/gold/v.sql",
            "{{ config(materialized='view') }} select count(*) as n from {{ ref('orders') }}",
        ),
    ]);
    t.run(&["build"]).ok();
    t
}

fn query(t: &TestProject, sql: &str, format: &str) -> Run {
    t.run(&["query", sql, "--format", format, "--from", "catalog"])
}

/// Every file under `dir`, relative.
fn files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn query_reads_views_but_cannot_write_or_reconfigure() {
    let t = built();
    let outside = tempfile::tempdir().unwrap();
    let out = outside.path().display().to_string();
    let lake = t.lake("").display().to_string();

    // Reads still work: external views (a file, a partitioned folder) and a view model.
    let q = query(&t, "select count(*) as n from silver.orders", "csv");
    assert_eq!(q.ok().stdout.trim(), "n\n1");
    assert_eq!(
        query(&t, "from gold.parts", "csv").ok().stdout.trim(),
        "name,id\na,1"
    );
    assert_eq!(
        query(&t, "select n from gold.v", "csv").ok().stdout.trim(),
        "n\n1"
    );
    let q = query(
        &t,
        &format!("select count(*) as n from read_parquet('{lake}/**/*.parquet')"),
        "csv",
    );
    assert_eq!(q.ok().stdout.trim(), "n\n2");
    // DESCRIBE, SUMMARIZE, SHOW and WITH are reads too.
    query(&t, "describe silver.orders", "csv").ok();
    query(&t, "summarize silver.orders", "csv").ok();
    query(&t, "show tables", "csv").ok();
    query(&t, "with x as (select 1 as a) select * from x;", "csv").ok();

    let lake_before = files(&t.lake(""));
    let refused = [
        format!("COPY (select 1) TO '{out}/x.csv'"),
        format!("copy (select 1) to '{lake}/x.csv'"),
        format!("copy silver.orders to '{lake}/dev/silver/orders.parquet'"),
        format!("select 1; copy (select 1) to '{out}/y.csv'"),
        format!("ATTACH '{lake}/z.duckdb' AS z"),
        format!("attach '{out}/z.duckdb' as z"),
        "INSTALL httpfs".to_string(),
        "LOAD httpfs".to_string(),
        "CREATE TABLE t AS SELECT 1".to_string(),
        "create temp table t as select 1".to_string(),
        "create view silver.w as select 1".to_string(),
        "insert into silver.orders values (2, 'b')".to_string(),
        "SET enable_external_access = true".to_string(),
        "set lock_configuration = false".to_string(),
        "reset allowed_directories".to_string(),
        "PRAGMA enable_profiling".to_string(),
        "checkpoint".to_string(),
        format!(
            "select * from read_csv('{}/lakeflow.yml')",
            t.path().display()
        ),
        format!("select * from read_text('{out}/../../etc/hostname')"),
        "select * from read_text('/etc/hostname')".to_string(),
        "select * from glob('/tmp/*')".to_string(),
        "select * from duckdb_secrets(redact = false)".to_string(),
    ];
    for sql in &refused {
        let q = query(&t, sql, "table");
        assert_eq!(
            q.code, 2,
            "{sql} was not refused:\n{}\n{}",
            q.stdout, q.stderr
        );
        assert!(q.stderr.contains("error[LF60"), "{sql}: {}", q.stderr);
    }
    let q = query(&t, "copy (select 1) to 'x.csv'", "table");
    assert!(q.stderr.contains("LF604"), "{}", q.stderr);
    assert!(q.stderr.contains("read statement"), "{}", q.stderr);
    assert!(
        files(outside.path()).is_empty(),
        "{:?}",
        files(outside.path())
    );
    assert_eq!(files(&t.lake("")), lake_before);
    assert!(!t.path().join("x.csv").exists());
    let c = read_only(&t.catalog());
    assert_eq!(query_i64(&c, "select count(*) from silver.orders"), 1);
}

const TYPES: &str = r#"select
 1::tinyint as ti,
 170141183460469231731687303715884105727::hugeint as hi,
 340282366920938463463374607431768211455::uhugeint as uhi,
 '12:34:56.123456789'::time_ns as tns,
 '1 year 2 days 3 hours'::interval as iv,
 union_value(num := 2)::union(num int, s varchar) as un,
 map {'a': 1, 'b': 2} as mp,
 '10101'::bit as bt,
 'ok'::enum ('sad', 'ok') as en,
 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid as uu,
 12345678901234567890123456789012.123456::decimal(38,6) as dec,
 [[1, 2], [3]] as nl,
 {'x': [1, 2], 'y': {'z': 'q'}} as st,
 '2024-01-02 03:04:05.123456+00'::timestamptz as tz,
 '\x00\xFFab'::blob as bl,
 'nan'::double as nan,
 1.5::double as d,
 null::int as nul,
 date '2024-02-29' as dt,
 timestamp '2024-01-02 03:04:05' as ts,
 timestamp_ns '2024-01-01 00:00:00.123456789' as tsn,
 [1, 2]::int[2] as arr,
 true as b,
 'a,"b"' as s"#;

#[test]
fn every_type_prints_in_every_format() {
    let t = built();
    let table = query(&t, TYPES, "table");
    let table = table.ok();
    for text in [
        "170141183460469231731687303715884105727",
        "340282366920938463463374607431768211455",
        "12:34:56.123456789",
        "1 year 2 days 03:00:00",
        "{a=1, b=2}",
        "10101",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "12345678901234567890123456789012.123456",
        "[[1, 2], [3]]",
        "{'x': [1, 2], 'y': {'z': q}}",
        "2024-01-02",
        "\\x00\\xFFab",
        "2024-02-29",
        "2024-01-02 03:04:05",
        "2024-01-01 00:00:00.123456789",
        "NULL",
        "(1 rows)",
    ] {
        assert!(
            table.stdout.contains(text),
            "{text} missing in\n{}",
            table.stdout
        );
    }

    let csv = query(&t, TYPES, "csv");
    let lines: Vec<&str> = csv.ok().stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", csv.stdout);
    assert!(lines[0].starts_with(
        "ti,hi,uhi,tns,iv,un,mp,bt,en,uu,dec,nl,st,tz,bl,nan,d,nul,dt,ts,tsn,arr,b,s"
    ));
    assert!(lines[1].contains(",\"[[1, 2], [3]]\","), "{}", lines[1]);
    assert!(lines[1].ends_with(",true,\"a,\"\"b\"\"\""), "{}", lines[1]);

    let json = query(&t, TYPES, "json");
    let v: serde_json::Value = serde_json::from_str(json.ok().stdout.trim())
        .unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{}", json.stdout));
    let row = &v[0];
    assert_eq!(row["ti"], 1);
    assert_eq!(row["tns"], "12:34:56.123456789");
    assert_eq!(row["un"], serde_json::json!({"num": 2}));
    assert_eq!(row["mp"], serde_json::json!({"a": 1, "b": 2}));
    assert_eq!(row["nl"], serde_json::json!([[1, 2], [3]]));
    assert_eq!(row["st"], serde_json::json!({"x": [1, 2], "y": {"z": "q"}}));
    assert_eq!(row["en"], "ok");
    assert_eq!(row["nan"], "nan");
    assert_eq!(row["d"], 1.5);
    assert_eq!(row["nul"], serde_json::Value::Null);
    assert_eq!(row["b"], true);
    assert_eq!(row["s"], "a,\"b\"");
    assert_eq!(row["arr"], serde_json::json!([1, 2]));
    // Wide numbers keep every digit in the JSON text.
    assert!(
        json.stdout
            .contains("\"hi\":170141183460469231731687303715884105727"),
        "{}",
        json.stdout
    );
    assert!(
        json.stdout
            .contains("\"dec\":12345678901234567890123456789012.123456"),
        "{}",
        json.stdout
    );
}

#[test]
fn query_on_s3_reads_the_lake_but_cannot_write_to_the_bucket() {
    let s3 = common::s3::S3::shared();
    let bucket = s3.bucket("query");
    let t = TestProject::new(&[(
        "models/silver/orders.sql",
        "{{ config(materialized='external') }} select range as id from range(3)",
    )]);
    t.write("profiles.yml", &s3.profile(&bucket, &s3.secret));
    t.run(&["build"]).ok();
    let before = s3.objects(&bucket, "");
    let q = query(&t, "select count(*) as n from silver.orders", "csv");
    assert_eq!(q.ok().stdout.trim(), "n\n3");
    for sql in [
        format!("copy (select 1) to 's3://{bucket}/lake/x.csv'"),
        format!("copy (select 1) to 's3://{bucket}/other/x.csv'"),
        format!("select * from read_csv('s3://{bucket}/other/*.csv')"),
        "select * from duckdb_secrets(redact = false)".to_string(),
    ] {
        let q = query(&t, &sql, "csv");
        assert_eq!(
            q.code, 2,
            "{sql} was not refused:\n{}\n{}",
            q.stdout, q.stderr
        );
    }
    assert_eq!(s3.objects(&bucket, ""), before);
}
