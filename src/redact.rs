//! Secrets never reach what a person reads: every line lakeflow prints (`outln!`, `errln!`),
//! every JSON log line and every file it writes for people (`target/`) passes through
//! [`redact`], which masks each registered secret value as `***`.
//!
//! Values are registered once they are known: the `DBT_ENV_SECRET*` environment variables at
//! start-up ([`register_env`]), the profile's secret values when the profile is loaded
//! ([`register`]). The list is process-wide, so a message built deep in a phase is masked
//! however it travels to the screen.

use std::borrow::Cow;
use std::sync::RwLock;

pub const MASK: &str = "***";

/// dbt's prefix of environment variables whose values are secret (`DBT_ENV_SECRET_...`).
pub const SECRET_ENV_PREFIX: &str = "DBT_ENV_SECRET";

/// Shorter values are not masked: masking `1` or `abc` would garble every line, and such a
/// value is no secret worth the name.
const MIN_LEN: usize = 4;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Whether the value under `key` (of a `secrets:` entry or a DuckDB setting) is a secret.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    // Switches and paths about secrets (`allow_persistent_secrets`, `secret_directory`) are
    // not secrets themselves.
    if k.starts_with("allow_")
        || k.starts_with("enable_")
        || k.ends_with("directory")
        || k.ends_with("_dir")
        || k.ends_with("_path")
        || k == "type"
    {
        return false;
    }
    [
        "secret",
        "password",
        "passwd",
        "token",
        "key_id",
        "access_key",
        "account_key",
        "private_key",
        "connection_string",
        "credential",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// Adds secret values to mask from now on.
pub fn register<I, S>(values: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut secrets = SECRETS.write().unwrap_or_else(|p| p.into_inner());
    for value in values {
        for form in forms(value.as_ref()) {
            if !secrets.contains(&form) {
                secrets.push(form);
            }
        }
    }
    // Longest first: a secret that contains another is masked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Registers the values of the `DBT_ENV_SECRET*` environment variables, as dbt scrubs them.
pub fn register_env() {
    register(
        std::env::vars_os()
            .filter(|(k, _)| k.to_string_lossy().starts_with(SECRET_ENV_PREFIX))
            .map(|(_, v)| v.to_string_lossy().into_owned()),
    );
}

/// The ways a value shows up in text: as it is, escaped inside a JSON string, and quoted as a
/// SQL literal (in an error that echoes a statement).
fn forms(value: &str) -> Vec<String> {
    let value = value.trim();
    let boolean = value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false");
    if value.len() < MIN_LEN || boolean {
        return Vec::new();
    }
    let mut out = vec![value.to_string()];
    let json = serde_json::to_string(value).unwrap_or_default();
    let json = json.trim_matches('"');
    if json != value {
        out.push(json.to_string());
    }
    let sql = value.replace('\'', "''");
    if sql != value {
        out.push(sql);
    }
    out
}

/// `text` with every registered secret value replaced by `***`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(|p| p.into_inner());
    mask(text, secrets.iter().map(String::as_str))
}

/// `text` with each of `secrets` (longest first) replaced by `***`.
pub fn mask<'a, 't>(text: &'t str, secrets: impl IntoIterator<Item = &'a str>) -> Cow<'t, str> {
    let mut out = Cow::Borrowed(text);
    for s in secrets {
        if !s.is_empty() && out.contains(s) {
            out = Cow::Owned(out.replace(s, MASK));
        }
    }
    out
}

/// Prints one line on stdout, masked. Used through [`outln!`](crate::outln).
pub fn print_out(text: &str) {
    use std::io::Write;
    let text = redact(text);
    let mut out = std::io::stdout().lock();
    // A closed stdout (`lakeflow ls | head`) ends the process by SIGPIPE; other errors
    // cannot be reported anywhere better than where they happened.
    let _ = writeln!(out, "{text}");
}

/// Prints one line on stderr, masked. Used through [`errln!`](crate::errln).
pub fn print_err(text: &str) {
    use std::io::Write;
    let text = redact(text);
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

static JSON_EVENTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Under `--log-format json`, warnings and notes become JSON events on stdout beside the
/// progress events, so a consumer of the JSON stream sees them and no stray text line.
pub fn set_json_events(on: bool) {
    JSON_EVENTS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Prints a warning or a note, masked: `{level}: {text}` on stderr, or a JSON event line on
/// stdout under `--log-format json`. Used through [`warnln!`](crate::warnln) and
/// [`noteln!`](crate::noteln).
pub fn print_event(level: &str, text: &str) {
    if JSON_EVENTS.load(std::sync::atomic::Ordering::Relaxed) {
        let event = serde_json::json!({ "event": level, "message": text });
        print_out(&event.to_string());
    } else {
        print_err(&format!("{level}: {text}"));
    }
}

/// A warning the user should act on (`warning: ...`), honouring `--log-format`.
#[macro_export]
macro_rules! warnln {
    ($($arg:tt)*) => {
        $crate::redact::print_event("warning", &format!($($arg)*))
    };
}

/// Something the run decided on its own that the user should know (`note: ...`).
#[macro_export]
macro_rules! noteln {
    ($($arg:tt)*) => {
        $crate::redact::print_event("note", &format!($($arg)*))
    };
}

/// `println!` with secrets masked: the one way lakeflow writes to stdout.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::redact::print_out("")
    };
    ($($arg:tt)*) => {
        $crate::redact::print_out(&format!($($arg)*))
    };
}

/// `eprintln!` with secrets masked: the one way lakeflow writes to stderr.
#[macro_export]
macro_rules! errln {
    () => {
        $crate::redact::print_err("")
    };
    ($($arg:tt)*) => {
        $crate::redact::print_err(&format!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_form_longest_first() {
        register(["pa\"ss'word-9", "pa\"ss"]);
        assert_eq!(redact("x pa\"ss'word-9 y"), "x *** y");
        assert_eq!(redact(r#"{"m":"pa\"ss'word-9"}"#), r#"{"m":"***"}"#);
        assert_eq!(redact("where k = 'pa\"ss''word-9'"), "where k = '***'");
        assert_eq!(redact("no secret here"), "no secret here");
    }

    #[test]
    fn short_and_boolean_values_are_not_masked() {
        register(["abc", "true", "FALSE"]);
        assert_eq!(redact("abc true FALSE"), "abc true FALSE");
    }

    #[test]
    fn secret_keys() {
        for k in [
            "secret",
            "key_id",
            "session_token",
            "s3_secret_access_key",
            "s3_access_key_id",
            "s3_session_token",
            "password",
            "bearer_token",
            "azure_storage_connection_string",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "type",
            "region",
            "endpoint",
            "secret_directory",
            "allow_persistent_secrets",
            "memory_limit",
            "url_style",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }
}
