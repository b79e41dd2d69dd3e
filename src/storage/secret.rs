//! One `type: s3` entry of a profile's `secrets:` (dbt-duckdb's shape): read from the profile,
//! turned into a DuckDB secret for the data path, and matched to URLs by its `scope`.

use crate::model::relation::quote_literal;
use std::collections::BTreeMap;

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

    pub(super) fn matches(&self, url: &str) -> usize {
        match &self.scope {
            Some(scope) if url.starts_with(scope.as_str()) => scope.len(),
            Some(_) => 0,
            None => 1,
        }
    }
}

/// A profile's `secrets:` entry from key/value pairs, for tests here and in `s3`.
#[cfg(test)]
pub(crate) fn entry(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
