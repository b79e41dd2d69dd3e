//! Read replicas: readers keep querying a published replica while builds and publishes run.

mod common;
use common::s3::S3;
use common::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Gold must agree with silver inside one replica; returns the replica's build id.
const CONSISTENCY: &str = "select
    (select sum(orders)::bigint from gold.daily_revenue)
      = (select count(*) from silver.events e join silver.users u using (user_id) where event_type = 'purchase')
    and (select sum(orders)::bigint from gold.country_summary) = (select sum(orders)::bigint from gold.daily_revenue),
    (select build_id from _lakeflow.replica)";

#[derive(Default)]
struct Seen {
    reads: usize,
    errors: Vec<String>,
    inconsistent: usize,
    builds: std::collections::BTreeSet<String>,
}

/// Runs `read` in a loop on another thread until `cycles` is done; returns what it saw.
fn read_while(
    read: impl Fn() -> Result<(bool, String), String> + Send + 'static,
    cycles: impl FnOnce(),
) -> Seen {
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let reader = {
        let (stop, seen) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let result = read();
                let mut s = seen.lock().unwrap();
                s.reads += 1;
                match result {
                    Ok((true, build)) => {
                        s.builds.insert(build);
                    }
                    Ok((false, _)) => s.inconsistent += 1,
                    Err(e) => s.errors.push(e),
                }
            }
        })
    };
    cycles();
    std::thread::sleep(std::time::Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    reader.join().unwrap();
    Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap()
}

fn check(conn: &duckdb::Connection) -> Result<(bool, String), String> {
    conn.query_row(CONSISTENCY, [], |r| {
        Ok((r.get::<_, bool>(0)?, r.get::<_, String>(1)?))
    })
    .map_err(|e| e.to_string())
}

#[test]
fn local_replica_readers_never_fail_while_three_builds_publish() {
    let t = TestProject::example();
    let profile = std::fs::read_to_string(t.path().join("profiles.yml")).unwrap().replace(
        "      threads: 4\n      settings:",
        "      threads: 4\n      publish:\n        to: catalog/replica.duckdb\n        keep: 2\n      settings:",
    );
    assert!(profile.contains("publish:"));
    t.write("profiles.yml", &profile);
    t.example_data(2000);
    t.run(&["build"]).ok();
    let replica = t.path().join("catalog/replica.duckdb");
    assert!(
        !Path::new(&format!("{}.wal", replica.display())).exists(),
        "checkpointed: no WAL"
    );

    let path = replica.clone();
    let seen = read_while(
        move || {
            let conn = duckdb::Connection::open_with_flags(
                &path,
                duckdb::Config::default()
                    .access_mode(duckdb::AccessMode::ReadOnly)
                    .unwrap(),
            )
            .map_err(|e| e.to_string())?;
            check(&conn)
        },
        || {
            for rows in [3000, 4000, 5000] {
                t.example_data(rows);
                let run = t.run(&["build"]);
                run.ok();
                assert!(run.stdout.contains("Published replica"), "{}", run.stdout);
            }
        },
    );
    assert!(
        seen.errors.is_empty(),
        "reader errors: {:?}",
        &seen.errors[..seen.errors.len().min(3)]
    );
    assert_eq!(seen.inconsistent, 0, "a replica mixed builds");
    assert!(
        seen.builds.len() >= 2,
        "the reader saw replicas of several builds: {:?}",
        seen.builds
    );
    assert!(seen.reads > 10, "{} reads", seen.reads);

    // The last replica: its metadata, and 11 models pinned to this build's files.
    let c = read_only(&replica);
    assert_eq!(query_i64(&c, "select count(*) from _lakeflow.models"), 11);
    assert_eq!(
        query_strings(&c, "select target from _lakeflow.replica"),
        vec!["dev"]
    );
    let loc = query_strings(
        &c,
        "select location from _lakeflow.models where name = 'users'",
    );
    assert!(
        loc[0].contains(".users.parquet.lf-v-"),
        "pinned to a version: {loc:?}"
    );
    // keep: 2 -> two versioned replicas.
    assert_eq!(
        std::fs::read_dir(format!("{}.versions", replica.display()))
            .unwrap()
            .count(),
        2
    );

    // lakeflow query reads the replica by default.
    let q = t.run(&[
        "query",
        "select count(*) as n from gold.country_summary",
        "--format",
        "csv",
    ]);
    q.ok();
    assert_eq!(q.stdout.trim(), "n\n8");
}

#[test]
fn kept_replicas_keep_their_files_through_later_builds() {
    let t = TestProject::new(&[(
        "models/silver/n.sql",
        "{{ config(materialized='external') }} select {{ var('n') }} as n",
    )]);
    let replica = t.path().join("out/replica.duckdb");
    for n in 1..=3 {
        t.run(&["build", "--vars", &format!("{{n: {n}}}")]).ok();
        t.run(&[
            "catalog",
            "publish",
            "--to",
            &replica.to_string_lossy(),
            "--keep",
            "2",
        ])
        .ok();
    }
    let versions: Vec<_> = std::fs::read_dir(format!("{}.versions", replica.display()))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(versions.len(), 2);
    let oldest_kept = versions.iter().min().unwrap().clone();
    for n in 4..=6 {
        t.run(&["build", "--vars", &format!("{{n: {n}}}")]).ok();
    }
    // The catalog moved on; the replica of build 2 still reads its own files.
    assert_eq!(
        query_i64(&read_only(&t.catalog()), "select n from silver.n"),
        6
    );
    assert_eq!(
        query_i64(&read_only(&oldest_kept), "select n from silver.n"),
        2
    );
    assert_eq!(query_i64(&read_only(&replica), "select n from silver.n"), 3);
    // Versions no replica needs were collected: live, one previous, two pinned.
    let left = std::fs::read_dir(t.lake("dev/silver")).unwrap().count();
    assert_eq!(left, 5, "n.parquet + 4 versions");
}

#[test]
fn s3_replica_readers_never_fail_while_three_builds_publish() {
    let s3 = S3::shared();
    let bucket = s3.bucket("replica");
    let t = TestProject::example();
    let profile = std::fs::read_to_string(t.path().join("profiles.yml")).unwrap().replace(
        "      path: catalog/s3.duckdb\n",
        "      path: catalog/s3.duckdb\n      publish:\n        to: \"s3://{{ env_var('LAKEFLOW_S3_BUCKET') }}/replicas/shop.duckdb\"\n",
    );
    t.write("profiles.yml", &profile);
    let lakeflow = |args: &[&str]| {
        Run::from(
            t.command(args)
                .env("LAKEFLOW_S3_BUCKET", &bucket)
                .env("LAKEFLOW_S3_KEY_ID", &s3.key_id)
                .env("LAKEFLOW_S3_SECRET", &s3.secret)
                .env("LAKEFLOW_S3_ENDPOINT", &s3.endpoint)
                .output()
                .unwrap(),
        )
    };
    t.example_data(2000);
    lakeflow(&["build", "--target", "s3"]).ok();

    let pulled = t.path().join("pulled/replica.duckdb");
    let pull_args = [
        "catalog",
        "pull",
        "--target",
        "s3",
        "--to",
        &pulled.to_string_lossy(),
    ]
    .map(String::from);
    let bin = env!("CARGO_BIN_EXE_lakeflow");
    let (dir, env) = (
        t.path().to_path_buf(),
        [
            ("LAKEFLOW_S3_BUCKET", bucket.clone()),
            ("LAKEFLOW_S3_KEY_ID", s3.key_id.clone()),
            ("LAKEFLOW_S3_SECRET", s3.secret.clone()),
            ("LAKEFLOW_S3_ENDPOINT", s3.endpoint.clone()),
        ],
    );
    let shared = S3::shared();
    let seen = read_while(
        move || {
            let out = std::process::Command::new(bin)
                .args(&pull_args)
                .arg("--project-dir")
                .arg(&dir)
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).into_owned());
            }
            let reader = shared.reader();
            reader
                .execute_batch(&format!(
                    "ATTACH '{}' AS r (READ_ONLY); USE r;",
                    dir.join("pulled/replica.duckdb").display()
                ))
                .map_err(|e| e.to_string())?;
            check(&reader)
        },
        || {
            for rows in [3000, 4000, 5000] {
                t.example_data(rows);
                lakeflow(&["build", "--target", "s3"]).ok();
            }
        },
    );
    assert!(
        seen.errors.is_empty(),
        "reader errors: {:?}",
        &seen.errors[..seen.errors.len().min(3)]
    );
    assert_eq!(seen.inconsistent, 0);
    assert!(seen.builds.len() >= 2, "{:?}", seen.builds);
    let bytes = std::fs::read(&pulled).unwrap();
    assert!(
        !String::from_utf8_lossy(&bytes).contains(&s3.secret),
        "the replica holds no secret"
    );
}

#[test]
fn a_local_publish_keeps_the_previous_replicas_inode_alive() {
    use std::os::unix::fs::MetadataExt;
    let t = TestProject::new(&[(
        "models/silver/n.sql",
        "{{ config(materialized='external') }} select {{ var('n') }} as n",
    )]);
    let replica = t.path().join("out/replica.duckdb");
    let publish = || {
        t.run(&[
            "catalog",
            "publish",
            "--to",
            &replica.to_string_lossy(),
            "--keep",
            "2",
        ])
        .ok();
    };
    t.run(&["build", "--vars", "{n: 1}"]).ok();
    publish();
    let first = std::fs::metadata(&replica).unwrap();
    // A reader has the replica open (an NFS client holds its file handle).
    let open = std::fs::File::open(&replica).unwrap();
    t.run(&["build", "--vars", "{n: 2}"]).ok();
    publish();
    let versions: Vec<std::fs::Metadata> =
        std::fs::read_dir(format!("{}.versions", replica.display()))
            .unwrap()
            .flatten()
            .map(|e| e.metadata().unwrap())
            .collect();
    assert_eq!(
        versions.len(),
        2,
        "only the kept versions, no temporary files"
    );
    // The previous replica's inode is still a file (its version), not just an open handle,
    // and the replica is the newest version itself, not a copy of it.
    assert!(
        versions.iter().any(|v| v.ino() == first.ino()),
        "the previous replica's inode is referenced by its version file"
    );
    let now = std::fs::metadata(&replica).unwrap();
    assert_ne!(now.ino(), first.ino());
    assert!(versions.iter().any(|v| v.ino() == now.ino()));
    assert_eq!(open.metadata().unwrap().nlink(), 1);
    assert_eq!(query_i64(&read_only(&replica), "select n from silver.n"), 2);
    // Nothing temporary is left beside the replica.
    let names: Vec<String> = std::fs::read_dir(t.path().join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn large_replicas_go_to_s3_in_parts_and_come_back_whole() {
    let s3 = S3::shared();
    let bucket = s3.bucket("large-replica");
    // About 35 MB of incompressible text in a catalog table: several upload parts.
    let t = TestProject::new(&[(
        "models/silver/big.sql",
        "{{ config(materialized='table') }} select range as id, md5(range::varchar) || md5((range * 7)::varchar) as pad from range(1000000)",
    )]);
    let to = format!("s3://{bucket}/replicas/big.duckdb");
    t.write(
        "profiles.yml",
        &format!(
            "{}      publish:\n        to: {to}\n",
            s3.profile(&bucket, &s3.secret)
        ),
    );
    // The build publishes the replica.
    t.run(&["build"]).ok();
    let stored = s3.root.join(&bucket).join("replicas/big.duckdb");
    let size = std::fs::metadata(&stored).unwrap().len();
    assert!(size > 32 << 20, "replica of {size} bytes");
    // s3s-fs keeps each object's ETag beside it; a multipart upload's is `<md5>-<parts>`.
    for key in ["replicas/big.duckdb", &versions_key(&s3, &bucket)] {
        let info = s3.root.join(format!(
            ".bucket-{}.object-{}.internal.json",
            base64url(&bucket),
            base64url(key)
        ));
        let text = std::fs::read_to_string(&info).unwrap_or_default();
        let parts: Option<u32> = text
            .split('"')
            .find_map(|v| v.rsplit_once('-').and_then(|(_, n)| n.parse().ok()));
        assert!(
            parts.is_some_and(|n| n > 1),
            "{key} went up in one request: {text}"
        );
    }
    let pulled = t.path().join("pulled/big.duckdb");
    t.run(&["catalog", "pull", "--to", &pulled.to_string_lossy()])
        .ok();
    assert_eq!(
        std::fs::read(&pulled).unwrap(),
        std::fs::read(&stored).unwrap()
    );
    let c = read_only(&pulled);
    assert_eq!(query_i64(&c, "select count(*) from silver.big"), 1_000_000);
    let versions = s3.objects(&bucket, "replicas/big.duckdb.versions/");
    assert_eq!(versions.len(), 1, "{versions:?}");
    let leftovers: Vec<String> = std::fs::read_dir(t.path().join("pulled"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, vec!["big.duckdb".to_string()]);
}

/// The one version object of the replica in `bucket`.
fn versions_key(s3: &S3, bucket: &str) -> String {
    let keys = s3.objects(bucket, "replicas/big.duckdb.versions/");
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys[0].clone()
}

/// URL-safe base64 without padding, as s3s-fs names its metadata files.
fn base64url(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}
