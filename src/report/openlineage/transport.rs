//! Where OpenLineage events go: the transport OpenLineage's clients would pick (`http`,
//! `file`, `console`), and the background thread that sends them in order.

use super::{CODE, QUEUE, env};
use crate::error::{Error, Result};
use crate::project::Project;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Duration;

/// Sends one event (a JSON text).
pub type SendFn = Box<dyn FnMut(&str) -> std::result::Result<(), String> + Send>;

/// Where events go (for messages) and what sends one, as OpenLineage's clients pick it.
pub fn sink(project: &Project) -> Result<Option<(String, SendFn)>> {
    if env("OPENLINEAGE_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let places = [
        env("OPENLINEAGE_CONFIG").map(PathBuf::from),
        std::env::current_dir().ok(),
        Some(project.root.clone()),
        env("HOME").map(|h| Path::new(&h).join(".openlineage")),
    ];
    let file = places
        .into_iter()
        .flatten()
        .map(|p| {
            if p.is_dir() {
                p.join("openlineage.yml")
            } else {
                p
            }
        })
        .find(|p| p.is_file());
    if let Some(file) = file
        && let Some(sink) = from_file(&file)?
    {
        return Ok(Some(sink));
    }
    let Some(url) = env("OPENLINEAGE_URL") else {
        return Ok(None);
    };
    let endpoint = env("OPENLINEAGE_ENDPOINT").unwrap_or_else(|| "api/v1/lineage".into());
    let bad = |m: String| Error::new(CODE, format!("OPENLINEAGE_URL: {m}"));
    http(&url, &endpoint, env("OPENLINEAGE_API_KEY"), 5.0)
        .map(Some)
        .map_err(bad)
}

fn from_file(file: &Path) -> Result<Option<(String, SendFn)>> {
    let bad = |m: String| {
        let hint =
            "lakeflow sends OpenLineage events with a transport of type http, file or console";
        Error::new(CODE, m).in_file(file).hint(hint)
    };
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(CODE, "read", file, e))?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| bad(format!("not valid YAML: {e}")))?;
    let t = &doc["transport"];
    let get = |key: &str| t[key].as_str().map(str::to_string);
    let need = |key: &str| get(key).ok_or_else(|| bad(format!("the transport has no `{key}`")));
    match get("type").as_deref() {
        None => Ok(None),
        Some("console") => {
            let send = |body: &str| {
                crate::errln!("{body}");
                Ok::<(), String>(())
            };
            Ok(Some(("the console".into(), Box::new(send))))
        }
        Some("file") => {
            let raw = need("log_file_path")?;
            let path = match url::Url::parse(&raw) {
                Ok(u) if u.scheme() == "file" => u.to_file_path().ok(),
                Ok(u) if u.scheme().len() > 1 => None,
                _ => Some(PathBuf::from(&raw)),
            };
            let path = path.ok_or_else(|| bad(format!("`{raw}` is not a local path")))?;
            let append = t["append"].as_bool().unwrap_or(false);
            let send = move |body: &str| write_file(&path, append, body).map_err(|e| e.to_string());
            Ok(Some((raw, Box::new(send))))
        }
        Some("http") => {
            let url = need("url")?;
            let endpoint = get("endpoint").unwrap_or_else(|| "api/v1/lineage".into());
            let auth = &t["auth"];
            let key = match auth["type"].as_str() {
                None => None,
                Some("api_key") => Some(
                    auth["apiKey"]
                        .as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad("an `auth` of type api_key needs `apiKey`".into()))?,
                ),
                Some(other) => return Err(bad(format!("`auth` of type {other} is not supported"))),
            };
            let timeout = t["timeout"].as_f64().unwrap_or(5.0);
            http(&url, &endpoint, key, timeout).map(Some).map_err(bad)
        }
        Some(other) => Err(bad(format!(
            "the OpenLineage transport `{other}` is not supported"
        ))),
    }
}

/// POSTs each event to `url` + `endpoint`, with the key as a bearer token.
fn http(
    url: &str,
    endpoint: &str,
    key: Option<String>,
    timeout: f64,
) -> std::result::Result<(String, SendFn), String> {
    use reqwest::header::CONTENT_TYPE;
    let base = url::Url::parse(url.trim()).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(format!("`{url}` is not an http or https URL"));
    }
    let full = base
        .join(endpoint)
        .map_err(|e| format!("endpoint `{endpoint}`: {e}"))?;
    // What messages show: no credentials, no query.
    let mut shown = full.clone();
    let _ = (shown.set_password(None), shown.set_username(""));
    shown.set_query(None);
    crate::redact::register(key.iter());
    let timeout = Duration::try_from_secs_f64(timeout).unwrap_or(Duration::from_secs(5));
    // A connection idle for a while may have been closed by the server: a new one then.
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| causes(&e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let runtime = runtime.map_err(|e| format!("cannot start an HTTP client: {e}"))?;
    let send = move |body: &str| {
        let mut request = client
            .post(full.clone())
            .header(CONTENT_TYPE, "application/json");
        if let Some(key) = &key {
            request = request.bearer_auth(key);
        }
        runtime.block_on(async {
            let response = request.body(body.to_string()).send().await;
            let response = response.map_err(|e| causes(&e.without_url()))?;
            let status = response.status();
            let _ = response.bytes().await;
            if status.is_success() {
                Ok::<(), String>(())
            } else {
                Err(format!("the server answered {status}"))
            }
        })
    };
    Ok((shown.to_string(), Box::new(send)))
}

/// The sending thread: each event in turn; the first failure is one warning.
pub fn spawn(target: String, mut send: SendFn) -> Option<(SyncSender<String>, Receiver<()>)> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<String>(QUEUE);
    let (done_tx, done) = std::sync::mpsc::channel();
    let work = move || {
        let mut warned = false;
        for body in rx {
            if let Err(e) = send(&body)
                && !std::mem::replace(&mut warned, true)
            {
                crate::warnln!(
                    "cannot send OpenLineage events to {target}: {e}; the run goes on, later events are still tried"
                );
            }
        }
        let _ = done_tx.send(());
    };
    match std::thread::Builder::new()
        .name("openlineage".into())
        .spawn(work)
    {
        Ok(_) => Some((tx, done)),
        Err(e) => {
            crate::warnln!("OpenLineage events are not sent: cannot start a thread: {e}");
            None
        }
    }
}

/// An error with its causes (`error sending request: ... Connection refused`).
fn causes(e: &dyn std::error::Error) -> String {
    let (mut text, mut source) = (e.to_string(), e.source());
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

/// Appends one JSON line, or (without `append`, as OpenLineage's clients do) writes one file
/// per event, named by the time.
fn write_file(path: &Path, append: bool, body: &str) -> std::io::Result<()> {
    use std::io::Write;
    let (line, mut options) = (format!("{body}\n"), std::fs::OpenOptions::new());
    if append {
        return options
            .create(true)
            .append(true)
            .open(path)?
            .write_all(line.as_bytes());
    }
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S%.6f");
    for n in 0..100 {
        let extra = if n == 0 {
            String::new()
        } else {
            format!("-{n}")
        };
        let name = format!("{}-{stamp}{extra}.json", path.display());
        match options.write(true).create_new(true).open(name) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            opened => return opened?.write_all(line.as_bytes()),
        }
    }
    Err(std::io::Error::other("no free file name for the event"))
}
