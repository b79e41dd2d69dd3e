//! Delta deletion vectors (merge-on-read, `delta.enableDeletionVectors`): merges mark replaced
//! rows deleted instead of rewriting files, and every reader — lakeflow's views, replicas,
//! DuckDB's delta extension, Python deltalake's DataFusion reader — sees exactly the rows a
//! copy-on-write table holds; readers without deletion-vector support are refused.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::path::Path;

/// An incremental Delta model: 20,000 rows, then per round a scattered set of updated keys and
/// ten new ones.
fn model(strategy: &str, extra: &str) -> String {
    format!(
        "{{{{ config(materialized='incremental', format='delta', unique_key='id', incremental_strategy='{strategy}', target_file_size='64KB'{extra}) }}}}\n\
         {{% if is_incremental() %}}\n\
         select id, 'r{{{{ var(\"round\") }}}}' as s, id * {{{{ var(\"round\") }}}} as v, id % 7 as p from range(0, 20000) t(id) where hash(id * {{{{ var(\"round\") }}}}) % 37 = 0\n\
         union all select id, 'new' as s, 0 as v, id % 7 as p from range(20000 + {{{{ var(\"round\") }}}} * 10, 20010 + {{{{ var(\"round\") }}}} * 10) t(id)\n\
         {{% else %}}\n\
         select id, 'orig' as s, id as v, id % 7 as p from range(0, 20000) t(id)\n\
         {{% endif %}}\n"
    )
}

const DV: &str = ", table_properties={'delta.enableDeletionVectors': 'true'}";

/// The data files of a table (not the lists lakeflow keeps under `_lakeflow/`).
fn data_files(table: &Path) -> BTreeSet<String> {
    parquet_files(table)
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("/_lakeflow/"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

fn vector_files(table: &Path) -> usize {
    std::fs::read_dir(table)
        .unwrap()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("deletion_vector_") && name.ends_with(".bin")
        })
        .count()
}

fn last_commit(t: &TestProject, model: &str) -> serde_json::Value {
    let h = t.run(&["delta", "history", model, "--json", "--limit", "1"]);
    serde_json::from_str(h.ok().stdout.trim()).unwrap()
}

const MOR: [&str; 3] = ["mor", "mor_parts", "mor_di"];

#[test]
fn merge_on_read_agrees_with_copy_on_write_for_every_reader() {
    let t = TestProject::new(&[
        ("models/cow.sql", &model("merge", "")),
        ("models/mor.sql", &model("merge", DV)),
        (
            "models/mor_parts.sql",
            &model("merge", &format!("{DV}, partition_by=['p']")),
        ),
        ("models/mor_di.sql", &model("delete+insert", DV)),
    ]);
    t.run(&["run", "--vars", "{round: 0}"]).ok();
    let replica = t.path().join("replica.duckdb");
    let saved = t.path().join("round2.parquet");
    for round in 1..=3 {
        if round == 3 {
            // A replica of round 2, and round 2's rows as a copy-on-write table holds them.
            t.run(&["catalog", "publish", "--to", &replica.to_string_lossy()])
                .ok();
            let c = read_only(&t.catalog());
            c.execute_batch(&format!(
                "copy (from main.cow) to '{}' (format parquet)",
                saved.display()
            ))
            .unwrap();
        }
        let before: Vec<BTreeSet<String>> = MOR
            .iter()
            .map(|m| data_files(&t.lake(&format!("dev/{m}"))))
            .collect();
        let out = t.run(&["run", "--vars", &format!("{{round: {round}}}")]);
        assert!(
            out.ok().stdout.contains("with rows deleted in place"),
            "{}",
            out.stdout
        );
        for (m, before) in MOR.iter().zip(&before) {
            // No file was rewritten: the old files are all still in the table, one more joined.
            let after = data_files(&t.lake(&format!("dev/{m}")));
            assert!(after.is_superset(before), "{m}: a data file went away");
            let commit = last_commit(&t, m);
            assert_eq!(commit["files_removed"], 0, "{m}: {commit}");
            assert!(
                commit["files_marked"].as_u64().unwrap() > 0,
                "{m}: {commit}"
            );
        }
        let c = read_only(&t.catalog());
        for m in MOR {
            assert_eq!(
                diff_rows(&c, "main.cow", &format!("main.{m}")),
                0,
                "{m}, round {round}"
            );
        }
        assert_eq!(
            query_i64(&c, "select count(*) from main.cow"),
            20_000 + 10 * round
        );
        // DuckDB's delta extension applies the same deletion vectors.
        let d = duckdb_with_delta();
        d.execute_batch(&format!(
            "ATTACH '{}' AS c (READ_ONLY)",
            t.catalog().display()
        ))
        .unwrap();
        for m in MOR {
            let scan = format!("delta_scan('{}')", t.lake(&format!("dev/{m}")).display());
            assert_eq!(diff_rows(&d, "c.main.cow", &scan), 0, "{m}, round {round}");
        }
    }

    // Python deltalake: its pyarrow reader lacks deletion vectors and is refused by the
    // protocol; its DataFusion reader applies them.
    let table = t.lake("dev/mor");
    let out = python(
        "import sys\nfrom deltalake import DeltaTable, QueryBuilder\ndt = DeltaTable(sys.argv[1])\ntry:\n    dt.to_pyarrow_table()\n    print('read')\nexcept Exception as e:\n    print('refused', 'deletionVectors' in str(e))\nimport pyarrow as pa\nprint(pa.table(QueryBuilder().register('t', dt).execute('select count(*) as n, sum(v) as v from t').read_all()).to_pylist())",
        &[&table.to_string_lossy()],
    );
    let c = read_only(&t.catalog());
    let sum = query_i64(&c, "select sum(v)::bigint from main.cow");
    assert!(out.contains("refused True"), "{out}");
    assert!(
        out.contains(&format!("'n': 20030, 'v': {sum}")),
        "{out} (expected 20030 rows summing to {sum})"
    );
    drop(c);

    // Optimize folds the deletion vectors back into files; the views read no deleted rows
    // any more and still agree.
    t.run(&["delta", "optimize", "-s", "mor", "mor_parts", "mor_di"])
        .ok();
    let c = read_only(&t.catalog());
    for m in MOR {
        assert_eq!(diff_rows(&c, "main.cow", &format!("main.{m}")), 0, "{m}");
        let sql = query_strings(
            &c,
            &format!("select sql from duckdb_views() where view_name = '{m}'"),
        );
        assert!(!sql[0].contains("file_row_number"), "{m}: {}", sql[0]);
    }
    drop(c);

    // Vacuum keeps what the replica (round 2) reads and deletes the other vectors.
    let vectors = vector_files(&table);
    assert!(vectors >= 3, "{vectors}");
    t.run(&["delta", "vacuum", "--retain-hours", "0"]).ok();
    let left = vector_files(&table);
    assert!(left >= 1 && left < vectors, "{left} of {vectors}");
    let r = read_only(&replica);
    for m in MOR {
        assert_eq!(
            diff_rows(
                &r,
                &format!("read_parquet('{}')", saved.display()),
                &format!("main.{m}")
            ),
            0,
            "replica, {m}"
        );
    }
}

#[test]
fn a_table_gets_deletion_vectors_when_the_property_is_added_and_stays_writable() {
    let t = TestProject::new(&[("models/t.sql", &model("merge", ""))]);
    t.run(&["run", "--vars", "{round: 0}"]).ok();
    t.run(&["run", "--vars", "{round: 1}"]).ok();
    let protocol = |t: &TestProject| {
        python(
            "import sys\nfrom deltalake import DeltaTable\np = DeltaTable(sys.argv[1]).protocol()\nprint(p.min_reader_version, p.min_writer_version, sorted(p.reader_features or []), sorted(p.writer_features or []))",
            &[&t.lake("dev/t").to_string_lossy()],
        )
    };
    assert_eq!(protocol(&t).trim(), "1 2 [] []");
    t.write("models/t.sql", &model("merge", DV));
    for round in 2..=4 {
        let out = t.run(&["run", "--vars", &format!("{{round: {round}}}")]);
        assert!(
            out.ok().stdout.contains("with rows deleted in place"),
            "round {round}: {}",
            out.stdout
        );
    }
    // Only the features in use: a legacy table's `invariants` would make the Delta writer
    // refuse every later commit.
    assert_eq!(
        protocol(&t).trim(),
        "3 7 ['deletionVectors'] ['appendOnly', 'deletionVectors']"
    );
    let c = read_only(&t.catalog());
    assert_eq!(query_i64(&c, "select count(*) from main.t"), 20_040);
    drop(c);

    // Another project reads a copy of the table as a Delta source: without lakeflow's list of
    // deleted rows (a table lakeflow does not write), the vectors themselves are applied.
    let other = TestProject::new(&[("models/copy.sql", "select * from {{ source('ext', 't') }}")]);
    std::fs::create_dir_all(other.path().join("ext/t")).unwrap();
    copy_dir(&t.lake("dev/t"), &other.path().join("ext/t"));
    std::fs::remove_dir_all(other.path().join("ext/t/_lakeflow")).unwrap();
    other.write(
        "models/sources.yml",
        "sources:\n  - name: ext\n    config: {format: delta}\n    tables:\n      - name: t\n        config: {external_location: ext/t}\n",
    );
    other.run(&["run"]).ok();
    let o = memory();
    o.execute_batch(&format!(
        "ATTACH '{}' AS a (READ_ONLY); ATTACH '{}' AS b (READ_ONLY);",
        t.catalog().display(),
        other.catalog().display()
    ))
    .unwrap();
    assert_eq!(diff_rows(&o, "a.main.t", "b.main.copy"), 0);
    let sql = query_strings(
        &o,
        "select sql from duckdb_views() where database_name = 'b' and view_name = 'copy'",
    );
    assert!(sql[0].contains("file_row_number"), "{}", sql[0]);
    assert!(!other.path().join("ext/t/_lakeflow").exists());
    let c = read_only(&t.catalog());
    assert_eq!(
        query_i64(&c, "select count(*) from main.t where s = 'r4'"),
        query_i64(
            &memory(),
            "select count(*) from range(0, 20000) t(id) where hash(id * 4) % 37 = 0"
        )
    );
}
