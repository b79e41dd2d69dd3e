//! The S3 server of the test run (scripts/test starts it) and servers of a test's own.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct S3 {
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
    pub root: PathBuf,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the S3 tests through scripts/test, which starts the S3 server"
        )
    })
}

impl S3 {
    /// The shared server of this test run.
    pub fn shared() -> S3 {
        S3 {
            endpoint: env("LAKEFLOW_TEST_S3_ENDPOINT"),
            key_id: env("LAKEFLOW_TEST_S3_KEY_ID"),
            secret: env("LAKEFLOW_TEST_S3_SECRET"),
            root: PathBuf::from(env("LAKEFLOW_TEST_S3_ROOT")),
        }
    }

    /// A new bucket (s3s-fs keeps each bucket as a folder of its root).
    pub fn bucket(&self, name: &str) -> String {
        let bucket = format!("{name}-{}", std::process::id());
        std::fs::create_dir_all(self.root.join(&bucket)).expect("create bucket");
        bucket
    }

    pub fn profile(&self, bucket: &str, secret: &str) -> String {
        format!(
            "proj:\n  target: s3\n  outputs:\n    s3:\n      type: duckdb\n      path: catalog.duckdb\n      external_root: s3://{bucket}/lake\n      threads: 4\n      secrets:\n        - type: s3\n          key_id: {}\n          secret: \"{{{{ env_var('LF_TEST_SECRET', '{secret}') }}}}\"\n          endpoint: {}\n          url_style: path\n          use_ssl: false\n          region: us-east-1\n",
            self.key_id, self.endpoint
        )
    }

    /// Files the server holds for `prefix` of `bucket`, relative to the bucket.
    pub fn objects(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let base = self.root.join(bucket);
        let mut out = Vec::new();
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        walk(&base, &base, &mut out);
        out.retain(|k| k.starts_with(prefix) && !k.contains(".s3s-fs"));
        out.sort();
        out
    }

    /// An in-memory DuckDB that reads this server, as any reader of a catalog would.
    pub fn reader(&self) -> duckdb::Connection {
        let config = duckdb::Config::default()
            .with("extension_directory", env("LAKEFLOW_EXTENSION_DIR"))
            .expect("config");
        let conn = duckdb::Connection::open_in_memory_with_flags(config).expect("duckdb");
        conn.execute_batch(&format!(
            "LOAD httpfs; CREATE SECRET (TYPE s3, KEY_ID '{}', SECRET '{}', ENDPOINT '{}', URL_STYLE 'path', USE_SSL false, REGION 'us-east-1');",
            self.key_id, self.secret, self.endpoint
        ))
        .expect("httpfs and secret");
        conn
    }
}

/// An S3 server of the test's own, to stop and start.
pub struct OwnServer {
    pub s3: S3,
    child: Option<Child>,
    port: u16,
}

impl OwnServer {
    pub fn start() -> OwnServer {
        let root = tempfile::tempdir().expect("tempdir").keep();
        let port = free_port();
        let mut server = OwnServer {
            s3: S3 {
                endpoint: format!("127.0.0.1:{port}"),
                key_id: "own-key".into(),
                secret: "own-secret-value".into(),
                root,
            },
            child: None,
            port,
        };
        server.resume();
        server
    }

    pub fn resume(&mut self) {
        let child = Command::new(env("LAKEFLOW_TEST_S3S_BIN"))
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--access-key",
                &self.s3.key_id,
                "--secret-key",
                &self.s3.secret,
            ])
            .arg(&self.s3.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "s3s-fs did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.s3.root);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A proxy in front of an S3 server that answers like a store ignoring `If-None-Match: *`
/// (Garage before 2.x): a refused conditional put (412) comes back as a success. Each
/// request gets `Connection: close`, so each connection carries one response.
pub struct IgnoresConditionalPuts {
    pub endpoint: String,
}

impl IgnoresConditionalPuts {
    pub fn start(upstream: &str) -> IgnoresConditionalPuts {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("127.0.0.1:{}", listener.local_addr().expect("addr").port());
        let upstream = upstream.to_string();
        fn head(s: &mut std::net::TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let rest = buf.split_off(i + 4);
                    return Some((buf, rest));
                }
                let n = s.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let upstream = upstream.clone();
                std::thread::spawn(move || {
                    let mut client = client;
                    let Some((req, rest)) = head(&mut client) else {
                        return;
                    };
                    let text = String::from_utf8_lossy(&req).into_owned();
                    let (line, headers) = text.split_once("\r\n").unwrap_or((&text, ""));
                    let req = format!("{line}\r\nConnection: close\r\n{headers}");
                    let Ok(mut server) = std::net::TcpStream::connect(&upstream) else {
                        return;
                    };
                    if server.write_all(req.as_bytes()).is_err() || server.write_all(&rest).is_err()
                    {
                        return;
                    }
                    let (mut c_in, mut s_out) = (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    );
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c_in, &mut s_out);
                    });
                    let Some((resp, rest)) = head(&mut server) else {
                        return;
                    };
                    let text = String::from_utf8_lossy(&resp).into_owned();
                    let resp = if text.starts_with("HTTP/1.1 412") {
                        let (_, headers) = text.split_once("\r\n").unwrap_or(("", ""));
                        format!("HTTP/1.1 200 OK\r\nETag: \"ignored-condition\"\r\n{headers}")
                    } else {
                        text
                    };
                    let _ = client.write_all(resp.as_bytes());
                    let _ = client.write_all(&rest);
                    let _ = std::io::copy(&mut server, &mut client);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        IgnoresConditionalPuts { endpoint }
    }
}
