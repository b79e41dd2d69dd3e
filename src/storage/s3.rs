//! S3-compatible object storage (AWS, MinIO, Garage, ...): the profile's `secrets:` turned into
//! DuckDB secrets for the data path and `object_store` clients for the control path (listing,
//! deleting old versions, small puts), with bounded retries and one-line diagnoses.

use crate::error::{Error, Result};
use crate::render::relation::quote_literal;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as StorePath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One `type: s3` entry of the profile's `secrets:`. `Debug` leaves the keys out.
#[derive(Clone)]
pub struct S3Secret {
    pub key_id: String,
    pub secret: String,
    pub session_token: Option<String>,
    /// `host:port`, as DuckDB wants it; None for AWS itself.
    pub endpoint: Option<String>,
    pub use_ssl: bool,
    pub region: String,
    pub path_style: bool,
    /// `s3://bucket/prefix` this secret is for; None: every bucket.
    pub scope: Option<String>,
}

impl std::fmt::Debug for S3Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Secret({})", self.describe())
    }
}

impl S3Secret {
    pub fn from_profile(entry: &BTreeMap<String, String>) -> Option<S3Secret> {
        let kind = entry
            .get("type")
            .map(|t| t.to_ascii_lowercase())
            .unwrap_or_default();
        if kind != "s3" {
            return None;
        }
        let get = |k: &str| entry.get(k).filter(|v| !v.is_empty()).cloned();
        let truthy = |v: &str| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes");
        let mut use_ssl = get("use_ssl").map(|v| truthy(&v)).unwrap_or(true);
        let endpoint = get("endpoint").map(|e| {
            if let Some(rest) = e.strip_prefix("http://") {
                use_ssl = false;
                rest.trim_end_matches('/').to_string()
            } else if let Some(rest) = e.strip_prefix("https://") {
                use_ssl = true;
                rest.trim_end_matches('/').to_string()
            } else {
                e.trim_end_matches('/').to_string()
            }
        });
        Some(S3Secret {
            key_id: get("key_id").unwrap_or_default(),
            secret: get("secret").unwrap_or_default(),
            session_token: get("session_token"),
            endpoint,
            use_ssl,
            region: get("region").unwrap_or_else(|| "us-east-1".into()),
            path_style: get("url_style").is_some_and(|s| s.eq_ignore_ascii_case("path")),
            scope: get("scope"),
        })
    }

    /// Where requests go, for messages: never includes a key.
    pub fn describe(&self) -> String {
        match &self.endpoint {
            Some(e) => format!(
                "endpoint {}://{e}",
                if self.use_ssl { "https" } else { "http" }
            ),
            None => format!("AWS S3 ({})", self.region),
        }
    }

    /// A DuckDB secret that lives only in this process (never written to the catalog).
    pub fn duckdb_sql(&self, name: &str) -> String {
        let mut parts = vec![
            "TYPE s3".to_string(),
            format!("KEY_ID {}", quote_literal(&self.key_id)),
            format!("SECRET {}", quote_literal(&self.secret)),
            format!("REGION {}", quote_literal(&self.region)),
            format!("USE_SSL {}", self.use_ssl),
            format!(
                "URL_STYLE {}",
                quote_literal(if self.path_style { "path" } else { "vhost" })
            ),
        ];
        if let Some(t) = &self.session_token {
            parts.push(format!("SESSION_TOKEN {}", quote_literal(t)));
        }
        if let Some(e) = &self.endpoint {
            parts.push(format!("ENDPOINT {}", quote_literal(e)));
        }
        if let Some(s) = &self.scope {
            parts.push(format!("SCOPE {}", quote_literal(s)));
        }
        format!(
            "CREATE OR REPLACE TEMPORARY SECRET {name} ({})",
            parts.join(", ")
        )
    }

    fn matches(&self, url: &str) -> usize {
        match &self.scope {
            Some(scope) if url.starts_with(scope.as_str()) => scope.len(),
            Some(_) => 0,
            None => 1,
        }
    }
}

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

/// Clients for the buckets a run touches, on a small private async runtime.
pub struct Remote {
    runtime: tokio::runtime::Runtime,
    secrets: Vec<S3Secret>,
    stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl Remote {
    pub fn new(secrets: Vec<S3Secret>) -> Result<Remote> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| Error::new("LF520", format!("cannot start the storage client: {e}")))?;
        Ok(Remote {
            runtime,
            secrets,
            stores: Mutex::new(HashMap::new()),
        })
    }

    pub fn secret_for(&self, url: &str) -> Option<&S3Secret> {
        self.secrets
            .iter()
            .filter(|s| s.matches(url) > 0)
            .max_by_key(|s| s.matches(url))
    }

    /// "bucket B at endpoint E", for messages.
    pub fn describe(&self, url: &str) -> String {
        let bucket = split_url(url).map(|(b, _)| b).unwrap_or("?");
        match self.secret_for(url) {
            Some(s) => format!("bucket '{bucket}' at {}", s.describe()),
            None => format!("bucket '{bucket}' (no s3 secret in the profile)"),
        }
    }

    fn store(&self, url: &str) -> Result<(Arc<dyn ObjectStore>, StorePath)> {
        let (bucket, key) = split_url(url)
            .ok_or_else(|| Error::new("LF521", format!("'{url}' is not an s3:// URL")))?;
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        let store = match stores.get(bucket) {
            Some(s) => s.clone(),
            None => {
                let store = self.new_store(url)?;
                stores.insert(bucket.to_string(), store.clone());
                store
            }
        };
        Ok((store, StorePath::from(key)))
    }

    /// A new client rooted at the bucket of `url`, for use on another async runtime.
    pub fn new_store(&self, url: &str) -> Result<Arc<dyn ObjectStore>> {
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
        let metas: Vec<object_store::ObjectMeta> = self
            .runtime
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
            match self.runtime.block_on(store.delete(&path)) {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error("delete", key, &e)),
            }
        }
        Ok(keys.len())
    }

    pub fn put(&self, url: &str, bytes: Vec<u8>) -> Result<()> {
        let (store, path) = self.store(url)?;
        self.runtime
            .block_on(store.put(&path, bytes.into()))
            .map(|_| ())
            .map_err(|e| self.error("write", url, &e))
    }

    /// Server-side copy of one object (same bucket).
    pub fn copy(&self, from: &str, to: &str) -> Result<()> {
        let (store, from_path) = self.store(from)?;
        let (_, to_path) = self.store(to)?;
        self.runtime
            .block_on(store.copy(&from_path, &to_path))
            .map_err(|e| self.error("copy", from, &e))
    }

    pub fn get(&self, url: &str) -> Result<Vec<u8>> {
        let (store, path) = self.store(url)?;
        self.runtime
            .block_on(async { store.get(&path).await?.bytes().await })
            .map(|b| b.to_vec())
            .map_err(|e| self.error("read", url, &e))
    }

    /// One request that tells whether the bucket is reachable, readable and there.
    pub fn check_bucket(&self, url: &str) -> Result<()> {
        let (bucket, _) = split_url(url).unwrap_or(("", ""));
        let probe = format!("s3://{bucket}/");
        let (store, _) = self.store(&probe)?;
        self.runtime
            .block_on(async { store.list_with_delimiter(None).await })
            .map(|_| ())
            .map_err(|e| self.error("list", &probe, &e))
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

    fn entry(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_dbt_duckdb_secret_and_renders_duckdb_sql() {
        let s = S3Secret::from_profile(&entry(&[
            ("type", "s3"),
            ("key_id", "AK"),
            ("secret", "S'K"),
            ("endpoint", "http://127.0.0.1:9000/"),
            ("url_style", "path"),
            ("region", "eu-west-1"),
        ]))
        .unwrap();
        assert_eq!(s.endpoint.as_deref(), Some("127.0.0.1:9000"));
        assert!(!s.use_ssl && s.path_style);
        let sql = s.duckdb_sql("lf_s3_0");
        assert!(
            sql.starts_with("CREATE OR REPLACE TEMPORARY SECRET lf_s3_0 (TYPE s3"),
            "{sql}"
        );
        assert!(
            sql.contains("SECRET 'S''K'") && sql.contains("ENDPOINT '127.0.0.1:9000'"),
            "{sql}"
        );
        assert!(!format!("{s:?}").contains("S'K"));
        assert!(S3Secret::from_profile(&entry(&[("type", "gcs")])).is_none());
    }

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
