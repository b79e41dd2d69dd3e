//! `state:` selection: each node of this run against the manifest of `--state DIR` (written
//! by lakeflow or by dbt), compared as dbt compares them. Both sides are in the manifest's
//! shape: the old one as read, the current one as lakeflow would write it now
//! ([`State::set_current`]), so the same rules hold whichever tool wrote the old one.
//!
//! - `state:new`: not in the old manifest. `state:old`: in it. `state:unmodified`: in it and
//!   not modified.
//! - `state:modified` is any of the sub-selectors, plus a changed fqn or versioning:
//!   `.body` (the SQL as written; a seed's checksum), `.configs` (the configs set for it, but
//!   `alias`, `schema`, `database`, `tags`, `group`; a test's failure settings only),
//!   `.relation` (configured database, schema, alias), `.persisted_descriptions` (descriptions
//!   persisted with `persist_docs`), `.contract` (an enforced contract's columns), `.macros`
//!   (a macro it calls, directly or through other macros, changed or is new).

use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

pub struct State {
    /// The old manifest's nodes, sources, exposures and unit tests, by unique_id.
    old: HashMap<String, Value>,
    /// Its macros' text.
    old_macros: HashMap<String, String>,
    current: HashMap<String, Value>,
    /// The current macros: text and the macros each calls.
    macros: Macros,
    /// Each node's status in `DIR/run_results.json`, for `result:`.
    results: HashMap<String, String>,
}

/// Macros by unique_id: their text and the macros each calls.
type Macros = HashMap<String, (String, Vec<String>)>;

const SECTIONS: [&str; 4] = ["nodes", "sources", "exposures", "unit_tests"];

/// Keys `state:modified.configs` never compares (dbt's `CompareBehavior.Exclude`).
const NOT_COMPARED: [&str; 5] = ["alias", "schema", "database", "tags", "group"];

/// The only configs compared for data tests.
const TEST_CONFIGS: [&str; 8] = [
    "severity",
    "where",
    "limit",
    "fail_calc",
    "warn_if",
    "error_if",
    "store_failures",
    "store_failures_as",
];

impl State {
    /// Reads `DIR/manifest.json` (a previous `target/`, lakeflow's or dbt's).
    pub fn load(dir: &Path) -> Result<State> {
        let file = dir.join("manifest.json");
        let text = std::fs::read_to_string(&file).map_err(|e| {
            Error::new("LF304", format!("cannot read {}: {e}", file.display())).hint(
                "--state takes the target/ folder of an earlier run (lakeflow compile or dbt compile writes one)",
            )
        })?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| {
            Error::new(
                "LF304",
                format!("{} is not a manifest: {e}", file.display()),
            )
        })?;
        if !doc.get("nodes").is_some_and(Value::is_object) {
            return Err(Error::new(
                "LF304",
                format!(
                    "{} is not a manifest: it has no `nodes` mapping",
                    file.display()
                ),
            ));
        }
        let (old, macros) = index(&doc);
        Ok(State {
            old,
            old_macros: macros.into_iter().map(|(k, (sql, _))| (k, sql)).collect(),
            current: HashMap::new(),
            macros: HashMap::new(),
            results: results(dir)?,
        })
    }

    /// The node's status in the state's run results (`success`, `error`, `fail`, `pass`,
    /// `warn`, `skipped`, ...).
    pub fn result_of(&self, id: &str) -> Option<&str> {
        self.results.get(id).map(String::as_str)
    }

    /// This run's manifest (as it would be written now): what the old one is compared with.
    pub fn set_current(&mut self, manifest: &Value) {
        let (current, macros) = index(manifest);
        self.current = current;
        self.macros = macros;
    }

    /// Where the state's run built the node `id`: (database, schema, identifier).
    pub fn relation_of(&self, id: &str) -> Option<(String, String, String)> {
        let n = self.old.get(id)?;
        let get = |k: &str| n.get(k).and_then(Value::as_str).map(str::to_string);
        Some((
            get("database").unwrap_or_default(),
            get("schema")?,
            get("alias")
                .or_else(|| get("identifier"))
                .or_else(|| get("name"))?,
        ))
    }

    /// Whether the node `id` matches `state:<what>` (`modified`, `modified.body`, `new`, ...);
    /// `None` for a state dbt does not have.
    pub fn matches(&self, id: &str, what: &str) -> Option<bool> {
        let (Some(new), old) = (self.current.get(id), self.old.get(id)) else {
            return Some(what == "new" || what.starts_with("modified"));
        };
        Some(match what {
            "new" => old.is_none(),
            "old" => old.is_some(),
            "modified" | "unmodified" => {
                let modified = match old {
                    None => true,
                    Some(old) => self.modified(new, old),
                };
                modified == (what == "modified")
            }
            _ => {
                let sub = what.strip_prefix("modified.")?;
                let Some(old) = old else { return Some(true) };
                match sub {
                    "body" => !same_body(new, old),
                    "configs" => !same_config(new, old),
                    "relation" => !same_relation(new, old),
                    "persisted_descriptions" => !same_descriptions(new, old),
                    "contract" => !same_contract(new, old),
                    "macros" => self.macros_changed(new),
                    _ => return None,
                }
            }
        })
    }

    fn modified(&self, new: &Value, old: &Value) -> bool {
        let kind = new
            .get("resource_type")
            .and_then(Value::as_str)
            .unwrap_or("");
        let fqn = new.get("fqn") == old.get("fqn");
        let same = match kind {
            "source" => {
                fqn && same_config(new, old)
                    && [
                        "schema",
                        "identifier",
                        "quoting",
                        "freshness",
                        "loaded_at_field",
                        "external",
                    ]
                    .iter()
                    .all(|k| new.get(*k) == old.get(*k))
            }
            "exposure" => {
                fqn && same_config(new, old)
                    && ["type", "owner", "maturity", "url", "description", "label"]
                        .iter()
                        .all(|k| new.get(*k) == old.get(*k))
                    && depends(new) == depends(old)
            }
            "unit_test" => new.get("checksum") == old.get("checksum"),
            "test" if new.get("test_metadata").is_some_and(|t| !t.is_null()) => {
                fqn && same_config(new, old)
            }
            _ => {
                fqn && same_body(new, old)
                    && same_config(new, old)
                    && same_relation(new, old)
                    && same_descriptions(new, old)
                    && same_contract(new, old)
                    && (kind != "model"
                        || ["latest_version", "access", "deprecation_date"]
                            .iter()
                            .all(|k| new.get(*k) == old.get(*k)))
            }
        };
        !same || self.macros_changed(new)
    }

    /// Whether a macro `node` calls (directly or through other macros) differs from the old
    /// manifest's, or is not in it.
    fn macros_changed(&self, node: &Value) -> bool {
        let mut todo: Vec<String> = strings(node.pointer("/depends_on/macros"));
        let mut seen = BTreeSet::new();
        while let Some(id) = todo.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let Some((sql, calls)) = self.macros.get(&id) else {
                continue;
            };
            if self.old_macros.get(&id) != Some(sql) {
                return true;
            }
            todo.extend(calls.iter().cloned());
        }
        false
    }
}

/// `DIR/run_results.json`, when there is one: each result's status by unique_id.
fn results(dir: &Path) -> Result<HashMap<String, String>> {
    let file = dir.join("run_results.json");
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Ok(HashMap::new());
    };
    let doc: Value = serde_json::from_str(&text).map_err(|e| {
        Error::new(
            "LF304",
            format!("{} is not a run results file: {e}", file.display()),
        )
    })?;
    statuses(&doc).ok_or_else(|| {
        Error::new(
            "LF304",
            format!(
                "{} is not a run results file: it has no `results` list",
                file.display()
            ),
        )
    })
}

/// Each result's status by unique_id, of a run results document; none when it has no
/// `results` list.
pub fn statuses(doc: &Value) -> Option<HashMap<String, String>> {
    let results = doc.get("results")?.as_array()?;
    Some(
        results
            .iter()
            .filter_map(|r| {
                Some((
                    r.get("unique_id")?.as_str()?.to_string(),
                    r.get("status")?.as_str()?.to_string(),
                ))
            })
            .collect(),
    )
}

/// Every node, source, exposure and unit test of a manifest by unique_id, and its macros.
fn index(doc: &Value) -> (HashMap<String, Value>, Macros) {
    let mut out = HashMap::new();
    for s in SECTIONS {
        if let Some(m) = doc.get(s).and_then(Value::as_object) {
            out.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    let macros = doc
        .get("macros")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let sql = v.get("macro_sql").and_then(Value::as_str).unwrap_or("");
                    (
                        k.clone(),
                        (sql.to_string(), strings(v.pointer("/depends_on/macros"))),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (out, macros)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn depends(v: &Value) -> BTreeSet<String> {
    strings(v.pointer("/depends_on/nodes"))
        .into_iter()
        .collect()
}

/// The SQL as written; a seed's file checksum (a checksum named `none` never matches). A
/// generic test's body is its call, which its unique_id already names.
fn same_body(new: &Value, old: &Value) -> bool {
    if new.get("test_metadata").is_some_and(|t| !t.is_null()) {
        return true;
    }
    if new.get("resource_type").and_then(Value::as_str) == Some("seed") {
        let name = |v: &Value| v.pointer("/checksum/name").cloned();
        return name(new) != Some(Value::from("none"))
            && name(new) == name(old)
            && new.pointer("/checksum/checksum") == old.pointer("/checksum/checksum");
    }
    new.get("raw_code") == old.get("raw_code")
}

fn unrendered(v: &Value) -> Map<String, Value> {
    v.get("unrendered_config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn same_config(new: &Value, old: &Value) -> bool {
    let (a, b) = (unrendered(new), unrendered(old));
    let is_test = new.get("resource_type").and_then(Value::as_str) == Some("test");
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| {
            if is_test {
                TEST_CONFIGS.contains(&k.as_str())
            } else {
                !NOT_COMPARED.contains(&k.as_str())
            }
        })
        .all(|k| a.get(k) == b.get(k))
}

fn same_relation(new: &Value, old: &Value) -> bool {
    let (a, b) = (unrendered(new), unrendered(old));
    ["database", "schema", "alias"]
        .iter()
        .all(|k| a.get(*k) == b.get(*k))
}

fn same_descriptions(new: &Value, old: &Value) -> bool {
    let persist = |key: &str| {
        new.pointer(&format!("/config/persist_docs/{key}"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let columns = |v: &Value| -> HashMap<String, Value> {
        v.get("columns")
            .and_then(Value::as_object)
            .map(|c| {
                c.iter()
                    .map(|(k, c)| (k.clone(), c.get("description").cloned().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default()
    };
    (!persist("relation") || new.get("description") == old.get("description"))
        && (!persist("columns") || columns(new) == columns(old))
}

fn same_contract(new: &Value, old: &Value) -> bool {
    let enforced = |v: &Value| {
        v.pointer("/contract/enforced")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    match (enforced(old), enforced(new)) {
        (false, false) => true,
        (false, true) => false,
        _ => new.pointer("/contract/checksum") == old.pointer("/contract/checksum"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(old: Value, new: Value) -> State {
        let mut s = State {
            old: HashMap::new(),
            old_macros: HashMap::new(),
            current: HashMap::new(),
            macros: HashMap::new(),
            results: HashMap::new(),
        };
        let (o, om) = index(&old);
        s.old = o;
        s.old_macros = om.into_iter().map(|(k, (sql, _))| (k, sql)).collect();
        s.set_current(&new);
        s
    }

    #[test]
    fn compares_as_dbt() {
        let node = |raw: &str, cfg: Value, calls: Value| {
            json!({"nodes": {"model.p.m": {"resource_type": "model", "fqn": ["p", "m"], "raw_code": raw,
                "unrendered_config": cfg, "depends_on": {"macros": calls, "nodes": []}}},
                "macros": {"macro.p.a": {"macro_sql": "{% macro a() %}1{% endmacro %}", "depends_on": {"macros": []}}}})
        };
        let base = node(
            "select 1",
            json!({"materialized": "table"}),
            json!(["macro.p.a"]),
        );
        let same = state(base.clone(), base.clone());
        assert_eq!(same.matches("model.p.m", "modified"), Some(false));
        assert_eq!(same.matches("model.p.m", "unmodified"), Some(true));
        // Tags are not compared; the materialization is.
        let tagged = node(
            "select 1",
            json!({"materialized": "table", "tags": ["x"]}),
            json!(["macro.p.a"]),
        );
        assert_eq!(
            state(base.clone(), tagged).matches("model.p.m", "modified"),
            Some(false)
        );
        let view = node(
            "select 1",
            json!({"materialized": "view"}),
            json!(["macro.p.a"]),
        );
        let s = state(base.clone(), view);
        assert_eq!(s.matches("model.p.m", "modified.configs"), Some(true));
        assert_eq!(s.matches("model.p.m", "modified.body"), Some(false));
        // A macro it calls changed.
        let mut changed = base.clone();
        changed["macros"]["macro.p.a"]["macro_sql"] = json!("{% macro a() %}2{% endmacro %}");
        let s = state(base.clone(), changed);
        assert_eq!(s.matches("model.p.m", "modified.macros"), Some(true));
        assert_eq!(s.matches("model.p.m", "modified.body"), Some(false));
        assert_eq!(s.matches("model.p.m", "modified"), Some(true));
        assert_eq!(
            state(json!({}), base).matches("model.p.m", "new"),
            Some(true)
        );
    }
}
