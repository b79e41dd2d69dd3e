//! S3-compatible object storage (AWS, MinIO, Garage, ...): `object_store` clients for the
//! control path (listing, deleting old versions, replica uploads), with bounded retries and
//! one-line diagnoses. The profile's secrets themselves are in `secret.rs`.
//!
//! Keys are literal everywhere here: the key in `s3://bucket/key` is the object's key as
//! DuckDB wrote it and as a listing returns it (a Hive folder `p=a%20b` is the key
//! `p=a%20b`, not `p=a b`). `object_store`'s `Path::from` would percent-encode such a key a
//! second time, so keys become paths with [`key_path`] only.
//!
//! Every request uses the secret whose `scope` is the longest prefix of its URL (as DuckDB
//! picks secrets), so a client is cached per (secret, bucket), never per bucket alone.

use super::runtime::runtime;
pub use super::secret::S3Secret;
use crate::error::{Error, Result};
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as StorePath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, RetryConfig, WriteMultipart,
};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Objects up to this size go up in one PUT; larger ones as a multipart upload of parts of
/// this size (each part is one request, so the client timeout bounds a part, not the file).
const PART_SIZE: usize = 16 << 20;

/// Parts of one multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// `s3://bucket/key` -> (bucket, key).
pub fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url
        .strip_prefix("s3://")
        .or_else(|| url.strip_prefix("s3a://"))?;
    Some(match rest.split_once('/') {
        Some((bucket, key)) => (bucket, key.trim_matches('/')),
        None => (rest, ""),
    })
}

/// The object_store path of a literal key (see the module comment).
pub fn key_path(key: &str) -> Result<StorePath> {
    StorePath::parse(key).map_err(|e| {
        Error::new("LF521", format!("'{key}' is not a usable S3 key: {e}"))
            .hint("avoid empty folder names (`//`) and `.`/`..` folders in locations")
    })
}

/// Which client serves a URL: the index of the secret that applies (None: no secret) and
/// the bucket.
type StoreKey = (Option<usize>, String);

/// Clients for the buckets a run touches, on the process's one async runtime
/// ([`super::runtime`]).
pub struct Remote {
    secrets: Vec<S3Secret>,
    stores: Mutex<HashMap<StoreKey, Arc<dyn ObjectStore>>>,
    /// Whether each (secret, bucket) honours conditional puts, once probed.
    conditional_puts: Arc<Mutex<HashMap<StoreKey, bool>>>,
    /// The target accepts Delta commits on stores that ignore conditional puts.
    pub unsafe_delta_commits: bool,
}

impl Remote {
    pub fn new(secrets: Vec<S3Secret>) -> Result<Remote> {
        // Started here, so a client that cannot start fails where it is made.
        runtime()?;
        Ok(Remote {
            secrets,
            stores: Mutex::new(HashMap::new()),
            conditional_puts: Arc::new(Mutex::new(HashMap::new())),
            unsafe_delta_commits: false,
        })
    }

    /// The secret DuckDB would use for `url`: the longest matching scope; an unscoped secret
    /// matches every URL, below any scope.
    pub fn secret_for(&self, url: &str) -> Option<&S3Secret> {
        self.secret_index(url).map(|i| &self.secrets[i])
    }

    fn secret_index(&self, url: &str) -> Option<usize> {
        self.secrets
            .iter()
            .enumerate()
            .filter(|(_, s)| s.matches(url) > 0)
            .max_by_key(|(i, s)| (s.matches(url), std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
    }

    fn store_key(&self, url: &str) -> Result<StoreKey> {
        let (bucket, _) = split_url(url)
            .ok_or_else(|| Error::new("LF521", format!("'{url}' is not an s3:// URL")))?;
        Ok((self.secret_index(url), bucket.to_string()))
    }

    /// "bucket B at endpoint E", for messages.
    pub fn describe(&self, url: &str) -> String {
        let bucket = split_url(url).map(|(b, _)| b).unwrap_or("?");
        match self.secret_for(url) {
            Some(s) => format!("bucket '{bucket}' at {}", s.describe()),
            None => format!("bucket '{bucket}' (no s3 secret in the profile)"),
        }
    }

    /// The client for `url` (the one of its secret and bucket) and the path of its key.
    fn store(&self, url: &str) -> Result<(Arc<dyn ObjectStore>, StorePath)> {
        let (_, key) = split_url(url)
            .ok_or_else(|| Error::new("LF521", format!("'{url}' is not an s3:// URL")))?;
        Ok((self.client(url)?, key_path(key)?))
    }

    /// The client rooted at the bucket of `url`, made once per (secret, bucket) and shared
    /// by every file and Delta log request on the one runtime.
    pub fn client(&self, url: &str) -> Result<Arc<dyn ObjectStore>> {
        let cache_key = self.store_key(url)?;
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        Ok(match stores.get(&cache_key) {
            Some(s) => s.clone(),
            None => {
                let store = self.new_store(url)?;
                stores.insert(cache_key, store.clone());
                store
            }
        })
    }

    /// A new client rooted at the bucket of `url`.
    fn new_store(&self, url: &str) -> Result<Arc<dyn ObjectStore>> {
        let (bucket, _) = split_url(url)
            .ok_or_else(|| Error::new("LF521", format!("'{url}' is not an s3:// URL")))?;
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: 4,
                retry_timeout: Duration::from_secs(20),
            });
        b = b.with_client_options(
            ClientOptions::new()
                .with_timeout(Duration::from_secs(30))
                .with_connect_timeout(Duration::from_secs(5)),
        );
        if let Some(s) = self.secret_for(url) {
            b = b
                .with_access_key_id(&s.key_id)
                .with_secret_access_key(&s.secret)
                .with_region(&s.region)
                .with_virtual_hosted_style_request(!s.path_style)
                .with_allow_http(!s.use_ssl);
            if let Some(t) = &s.session_token {
                b = b.with_token(t);
            }
            if let Some(e) = &s.endpoint {
                b = b.with_endpoint(format!(
                    "{}://{e}",
                    if s.use_ssl { "https" } else { "http" }
                ));
            }
        }
        Ok(Arc::new(b.build().map_err(|e| {
            Error::new(
                "LF521",
                format!("cannot configure S3 for {}: {e}", self.describe(url)),
            )
        })?))
    }

    /// Keys under `prefix` (an s3:// URL), as full URLs.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let (store, path) = self.store(prefix)?;
        let bucket = split_url(prefix)
            .map(|(b, _)| b.to_string())
            .unwrap_or_default();
        let metas: Vec<object_store::ObjectMeta> = runtime()?
            .block_on(store.list(Some(&path)).try_collect())
            .map_err(|e| self.error("list", prefix, &e))?;
        Ok(metas
            .into_iter()
            .map(|m| format!("s3://{bucket}/{}", m.location))
            .collect())
    }

    /// Deletes the object `url` and every object under `url/`.
    pub fn delete_prefix(&self, url: &str) -> Result<usize> {
        let mut keys = self.list(url)?;
        keys.push(url.trim_end_matches('/').to_string());
        for key in &keys {
            let (store, path) = self.store(key)?;
            match runtime()?.block_on(store.delete(&path)) {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error("delete", key, &e)),
            }
        }
        Ok(keys.len())
    }

    /// Deletes the one object `url` (gone already is fine).
    pub fn delete(&self, url: &str) -> Result<()> {
        let (store, path) = self.store(url)?;
        match runtime()?.block_on(store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", url, &e)),
        }
    }

    /// A text that changes whenever the object `url` is replaced (its ETag, else its size and
    /// time); None when there is no such object.
    pub fn version(&self, url: &str) -> Result<Option<String>> {
        let (store, path) = self.store(url)?;
        match runtime()?.block_on(store.head(&path)) {
            Ok(meta) => Ok(Some(meta.e_tag.unwrap_or_else(|| {
                format!("{}@{}", meta.size, meta.last_modified.timestamp_millis())
            }))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("read", url, &e)),
        }
    }

    /// Whether the object `url` exists.
    pub fn exists(&self, url: &str) -> Result<bool> {
        let (store, path) = self.store(url)?;
        match runtime()?.block_on(store.head(&path)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error("read", url, &e)),
        }
    }

    pub fn put(&self, url: &str, bytes: Vec<u8>) -> Result<()> {
        let (store, path) = self.store(url)?;
        runtime()?
            .block_on(store.put(&path, bytes.into()))
            .map(|_| ())
            .map_err(|e| self.error("write", url, &e))
    }

    /// Server-side copy of one object (same bucket).
    pub fn copy(&self, from: &str, to: &str) -> Result<()> {
        let (store, from_path) = self.store(from)?;
        let (_, to_path) = self.store(to)?;
        runtime()?
            .block_on(store.copy(&from_path, &to_path))
            .map_err(|e| self.error("copy", from, &e))
    }

    pub fn get(&self, url: &str) -> Result<Vec<u8>> {
        let (store, path) = self.store(url)?;
        runtime()?
            .block_on(async { store.get(&path).await?.bytes().await })
            .map(|b| b.to_vec())
            .map_err(|e| self.error("read", url, &e))
    }

    /// Uploads the local file `from` as the object `url`: one PUT when small, else a
    /// multipart upload read from the file part by part (never the whole file in memory).
    /// The object appears whole when the upload completes, or not at all.
    pub fn put_file(&self, from: &std::path::Path, url: &str) -> Result<()> {
        let io = |e: std::io::Error| Error::io("LF525", "read", from, e);
        let mut file = std::fs::File::open(from).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        if size <= PART_SIZE as u64 {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes).map_err(io)?;
            return self.put(url, bytes);
        }
        let (store, path) = self.store(url)?;
        runtime()?.block_on(async {
            let upload = store
                .put_multipart(&path)
                .await
                .map_err(|e| self.error("write", url, &e))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            let mut buf = vec![0u8; PART_SIZE];
            loop {
                let n = match read_full(&mut file, &mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = writer.abort().await;
                        return Err(io(e));
                    }
                };
                if n == 0 {
                    break;
                }
                if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    let _ = writer.abort().await;
                    return Err(self.error("write", url, &e));
                }
                writer.write(&buf[..n]);
            }
            writer
                .finish()
                .await
                .map(|_| ())
                .map_err(|e| self.error("write", url, &e))
        })
    }

    /// Downloads the object `url` into the local file `to` (created or truncated), in ranged
    /// requests of one part each, and syncs it; the caller renames it into place.
    pub fn get_file(&self, url: &str, to: &std::path::Path) -> Result<()> {
        let (store, path) = self.store(url)?;
        let size = runtime()?
            .block_on(store.head(&path))
            .map_err(|e| self.error("read", url, &e))?
            .size;
        let io = |e: std::io::Error| Error::io("LF525", "write", to, e);
        let mut file = std::fs::File::create(to).map_err(io)?;
        let mut offset = 0u64;
        while offset < size {
            let end = (offset + PART_SIZE as u64).min(size);
            let bytes = runtime()?
                .block_on(store.get_range(&path, offset..end))
                .map_err(|e| self.error("read", url, &e))?;
            file.write_all(&bytes).map_err(io)?;
            offset = end;
        }
        file.sync_all().map_err(io)
    }

    /// One request that tells whether the bucket of `location` is reachable, readable and
    /// there, made with the secret that applies to `location` (a secret scoped to a prefix
    /// of the bucket does not apply to the bucket's root). Lists under the location only, so
    /// credentials limited to that prefix pass too.
    pub fn check_bucket(&self, location: &str) -> Result<()> {
        let (store, path) = self.store(location)?;
        let prefix = (!path.as_ref().is_empty()).then_some(&path);
        runtime()?
            .block_on(async { store.list_with_delimiter(prefix).await })
            .map(|_| ())
            .map_err(|e| self.error("list", location, &e))
    }

    /// [`Remote::check_bucket`] once per (secret, bucket) among the S3 ones of `locations`,
    /// each with a location it serves.
    pub fn check_locations<'a>(&self, locations: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for location in locations {
            if split_url(location).is_some() && seen.insert(self.store_key(location)?) {
                self.check_bucket(location)?;
            }
        }
        Ok(())
    }

    /// Whether the store behind `location` honours conditional puts (`If-None-Match: *`),
    /// which Delta commits rely on so that two writers never both write one version. Probed
    /// once per (secret, bucket) with [`probe_conditional_put`] under
    /// `<location>/_delta_log/`. For `lakeflow debug`; Delta commits check it through
    /// [`Remote::commit_check`].
    pub fn conditional_put_support(&self, location: &str) -> Result<bool> {
        let check = self.commit_check(location)?;
        let (store, path) = self.store(location)?;
        let dir = path.join("_delta_log");
        runtime()?
            .block_on(check.supported(store.as_ref(), &dir))
            .map_err(|e| self.error("probe conditional writes at", location, &e))
    }

    /// What a Delta table at `location` needs to check, before its first commit, that the
    /// store honours conditional puts (shares this Remote's probe results).
    pub fn commit_check(&self, location: &str) -> Result<CommitCheck> {
        Ok(CommitCheck {
            key: self.store_key(location)?,
            probed: self.conditional_puts.clone(),
            describe: self.describe(location),
            allow_unsafe: self.unsafe_delta_commits,
        })
    }

    fn error(&self, action: &str, url: &str, err: &object_store::Error) -> Error {
        let text = err.to_string();
        let (what, hint) = diagnose(&text);
        Error::new(
            "LF522",
            format!("cannot {action} {url}: {what} ({})", self.describe(url)),
        )
        .hint(hint)
    }
}

/// Whether commits to one (secret, bucket) are safe: see [`Remote::commit_check`].
#[derive(Clone)]
pub struct CommitCheck {
    key: StoreKey,
    probed: Arc<Mutex<HashMap<StoreKey, bool>>>,
    /// "bucket 'b' at endpoint …", for messages.
    pub describe: String,
    /// The target's `unsafe_delta_commits: true`.
    pub allow_unsafe: bool,
}

impl CommitCheck {
    /// Whether the store honours conditional puts; probes under `dir` (a folder the caller
    /// owns, e.g. a table's `_delta_log`) the first time for this (secret, bucket).
    pub async fn supported(
        &self,
        store: &dyn ObjectStore,
        dir: &StorePath,
    ) -> std::result::Result<bool, object_store::Error> {
        let known = self
            .probed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&self.key)
            .copied();
        if let Some(known) = known {
            return Ok(known);
        }
        let supported = probe_conditional_put(store, dir).await?;
        self.probed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.key.clone(), supported);
        Ok(supported)
    }
}

/// Reads until `buf` is full or the file ends; returns how many bytes were read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Puts a probe object under `dir` twice with `PutMode::Create` and deletes it: true when the
/// second put failed with AlreadyExists (the store honours `If-None-Match: *`), false when it
/// succeeded (the store ignores the condition, as some Garage versions and proxies do).
pub async fn probe_conditional_put(
    store: &dyn ObjectStore,
    dir: &StorePath,
) -> std::result::Result<bool, object_store::Error> {
    let probe = dir
        .clone()
        .join(format!("_lakeflow_probe_{}", uuid::Uuid::new_v4()));
    let create = || object_store::PutOptions::from(PutMode::Create);
    store
        .put_opts(&probe, b"probe".to_vec().into(), create())
        .await?;
    let second = store
        .put_opts(&probe, b"probe".to_vec().into(), create())
        .await;
    let _ = store.delete(&probe).await;
    match second {
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Ok(true),
        Ok(_) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A one-line reason and what to do, from an S3 error's text. Never echoes a key.
pub fn diagnose(text: &str) -> (&'static str, &'static str) {
    let t = text.to_ascii_lowercase();
    if t.contains("nosuchbucket") || t.contains("bucket does not exist") {
        (
            "the bucket does not exist",
            "create the bucket, or fix the bucket name in external_root",
        )
    } else if t.contains("invalidaccesskeyid")
        || t.contains("signaturedoesnotmatch")
        || t.contains("accessdenied")
        || t.contains("403")
    {
        (
            "access denied: the key id or secret is wrong, or lacks permission",
            "check key_id and secret of the s3 secret in profiles.yml",
        )
    } else if t.contains("connect")
        || t.contains("sending request")
        || t.contains("timed out")
        || t.contains("dns")
    {
        (
            "the endpoint cannot be reached",
            "check that the S3 server is running and `endpoint`/`use_ssl` in profiles.yml",
        )
    } else {
        (
            "the storage request failed",
            "see the error above; transient errors were already retried",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::secret::entry;

    #[test]
    fn splits_urls_and_picks_the_narrowest_scope() {
        assert_eq!(split_url("s3://b/x/y.parquet"), Some(("b", "x/y.parquet")));
        assert_eq!(split_url("s3://b"), Some(("b", "")));
        assert_eq!(split_url("/local"), None);
        let wide = S3Secret::from_profile(&entry(&[("type", "s3"), ("key_id", "wide")])).unwrap();
        let narrow = S3Secret::from_profile(&entry(&[
            ("type", "s3"),
            ("key_id", "narrow"),
            ("scope", "s3://b/x"),
        ]))
        .unwrap();
        let remote = Remote::new(vec![wide, narrow]).unwrap();
        assert_eq!(remote.secret_for("s3://b/x/1").unwrap().key_id, "narrow");
        assert_eq!(remote.secret_for("s3://c/1").unwrap().key_id, "wide");
    }

    #[test]
    fn keys_stay_literal_and_each_scope_gets_its_own_client() {
        // A Hive folder DuckDB escaped is the key as it is, not encoded once more.
        assert_eq!(
            key_path("lake/p=a%20b/ts=2024-01-01%2010%3A00%3A00/x.parquet")
                .unwrap()
                .as_ref(),
            "lake/p=a%20b/ts=2024-01-01%2010%3A00%3A00/x.parquet"
        );
        let scoped = |key: &str, scope: &str| {
            S3Secret::from_profile(&entry(&[
                ("type", "s3"),
                ("key_id", key),
                ("endpoint", "http://127.0.0.1:1"),
                ("scope", scope),
            ]))
            .unwrap()
        };
        let remote = Remote::new(vec![
            scoped("gold", "s3://b/lake/gold"),
            scoped("silver", "s3://b/lake/silver"),
        ])
        .unwrap();
        assert_eq!(
            remote.store_key("s3://b/lake/gold/x").unwrap(),
            (Some(0), "b".to_string())
        );
        assert_eq!(
            remote.store_key("s3://b/lake/silver/x").unwrap(),
            (Some(1), "b".to_string())
        );
        assert_eq!(
            remote.store_key("s3://b/").unwrap(),
            (None, "b".to_string())
        );
        let (gold, _) = remote.store("s3://b/lake/gold/x").unwrap();
        let (silver, _) = remote.store("s3://b/lake/silver/x").unwrap();
        let (gold_again, _) = remote.store("s3://b/lake/gold/y").unwrap();
        assert!(!Arc::ptr_eq(&gold, &silver), "one client per scope");
        assert!(Arc::ptr_eq(&gold, &gold_again));
    }

    #[test]
    fn the_probe_sees_a_store_that_honours_conditional_puts_and_cleans_up() {
        let store = object_store::memory::InMemory::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let dir = StorePath::from("t/_delta_log");
        assert!(rt.block_on(probe_conditional_put(&store, &dir)).unwrap());
        let left: Vec<object_store::ObjectMeta> =
            rt.block_on(store.list(None).try_collect()).unwrap();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn diagnoses_common_failures() {
        assert_eq!(
            diagnose("... NoSuchBucket ...").0,
            "the bucket does not exist"
        );
        assert!(
            diagnose("Client error with status 403 Forbidden")
                .0
                .starts_with("access denied")
        );
        assert_eq!(
            diagnose("error sending request for url").0,
            "the endpoint cannot be reached"
        );
    }
}
