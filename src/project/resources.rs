//! Exposures (what reads the project's models: dashboards, apps), and the semantic layer's
//! resources lakeflow lists but does not run (metrics, semantic models, saved queries,
//! groups), from schema files.

use super::yaml;
use serde_yaml::Value;
use std::path::{Path, PathBuf};

/// The `exposures:` of a schema file; `depends_on` items are read as the `ref(...)` and
/// `source(...)` calls they are.
pub(super) fn read_exposures(doc: &Value, file: &Path, out: &mut Vec<Exposure>) {
    static CALL: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"^\s*(ref|source)\(\s*['"]([^'"]+)['"]\s*(?:,\s*['"]([^'"]+)['"]\s*)?(?:,[^)]*)?\)\s*$"#,
        )
        .ok()
    });
    let Some(Value::Sequence(items)) = yaml::get(doc, "exposures") else {
        return;
    };
    for item in items {
        let Some(name) = yaml::get_str(item, "name") else {
            continue;
        };
        let mut exposure = Exposure {
            name,
            file: file.to_path_buf(),
            fields: yaml::to_json(item),
            ..Exposure::default()
        };
        let deps = match yaml::get(item, "depends_on") {
            Some(Value::Sequence(d)) => d.iter().filter_map(yaml::scalar_string).collect(),
            _ => Vec::new(),
        };
        for dep in deps {
            let Some(c) = CALL.as_ref().and_then(|re| re.captures(&dep)) else {
                continue;
            };
            match (&c[1], c.get(3)) {
                ("ref", Some(model)) => exposure.refs.push(model.as_str().to_string()),
                ("ref", None) => exposure.refs.push(c[2].to_string()),
                ("source", Some(table)) => exposure
                    .sources
                    .push((c[2].to_string(), table.as_str().to_string())),
                _ => {}
            }
        }
        out.push(exposure);
    }
}

/// A dbt exposure: a downstream use of models and sources, in the manifest and `graph`.
#[derive(Debug, Clone, Default)]
pub struct Exposure {
    pub name: String,
    pub package: Option<String>,
    pub file: PathBuf,
    /// The entry as written (`type`, `owner`, `maturity`, `url`, `description`, `label`,
    /// `meta`, `tags`, `config`), rendered.
    pub fields: serde_json::Value,
    /// Models it depends on (`ref('x')`), and sources (`source('s', 't')`).
    pub refs: Vec<String>,
    pub sources: Vec<(String, String)>,
}

/// A resource lakeflow lists in the manifest and does not run: one `metrics:`,
/// `semantic_models:`, `saved_queries:` or `groups:` entry, as written.
#[derive(Debug, Clone, Default)]
pub struct Listed {
    /// `metric`, `semantic_model`, `saved_query` or `group`.
    pub kind: &'static str,
    pub name: String,
    pub package: Option<String>,
    pub file: PathBuf,
    pub fields: serde_json::Value,
}

/// The schema-file (and manifest) section of each kind of [`Listed`] resource.
pub const LISTED_SECTIONS: [(&str, &str); 4] = [
    ("metrics", "metric"),
    ("semantic_models", "semantic_model"),
    ("saved_queries", "saved_query"),
    ("groups", "group"),
];

/// The metrics, semantic models, saved queries and groups of a schema file.
pub(super) fn read_listed(doc: &Value, file: &Path, out: &mut Vec<Listed>) {
    for (key, kind) in LISTED_SECTIONS {
        let Some(Value::Sequence(items)) = yaml::get(doc, key) else {
            continue;
        };
        for item in items {
            if let Some(name) = yaml::get_str(item, "name") {
                out.push(Listed {
                    kind,
                    name,
                    package: None,
                    file: file.to_path_buf(),
                    fields: yaml::to_json(item),
                });
            }
        }
    }
}
