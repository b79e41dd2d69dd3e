//! Data tests as a project declares them: generic tests listed under `data_tests:` (or
//! `tests:`) of models, seeds, columns and source tables in schema files, and `{% docs %}`
//! blocks those files' descriptions pull in with `{{ doc() }}`.

use super::config::Config;
use super::yaml::{self, YamlRenderer};
use crate::error::{Error, Result};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The keys a list of tests may sit under; dbt renamed `tests:` to `data_tests:`.
const TEST_KEYS: &[&str] = &["data_tests", "tests"];

/// Keys of a test entry that configure the test rather than being arguments of it (dbt's list).
const CONFIG_KEYS: &[&str] = &[
    "severity",
    "tags",
    "enabled",
    "where",
    "limit",
    "warn_if",
    "error_if",
    "fail_calc",
    "store_failures",
    "store_failures_as",
    "meta",
    "database",
    "schema",
    "alias",
];

/// What a test is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestTarget {
    /// A model or seed, by name.
    Node(String),
    /// A source table: (source name, table name).
    Source(String, String),
}

/// One generic test declared in a schema file.
#[derive(Debug, Clone)]
pub struct TestDecl {
    /// The generic test's name as written: `unique`, `my_check`, `dbt_utils.expression_is_true`.
    pub test: String,
    pub target: TestTarget,
    /// The column it is declared under (or `column_name:` of a model-level test).
    pub column: Option<String>,
    /// Arguments passed to the test, besides `model` and `column_name`.
    pub args: serde_json::Map<String, serde_json::Value>,
    pub config: Config,
    /// A `name:` given to the test, replacing the generated one.
    pub name: Option<String>,
    pub file: PathBuf,
    pub line: usize,
    /// The text of that line, for errors found when the test is rendered.
    pub snippet: String,
    /// The installed package whose schema file declares it; none for the project's own.
    pub package: Option<String>,
}

/// Reads the tests of one `models:`/`seeds:` entry or source table: its own list and those of
/// its columns.
/// Test arguments stay as written (they are rendered with the test); configs are rendered
/// here like the rest of the file.
pub fn read(
    entry: &Value,
    target: &TestTarget,
    file: &Path,
    text: &str,
    renderer: &YamlRenderer,
) -> Result<Vec<TestDecl>> {
    let anchor = match target {
        TestTarget::Node(n) | TestTarget::Source(_, n) => n.as_str(),
    };
    let mut out = Vec::new();
    for list in test_lists(entry) {
        for t in list {
            out.push(parse_entry(
                t,
                target,
                None,
                (file, text, renderer),
                anchor,
            )?);
        }
    }
    if let Some(Value::Sequence(columns)) = yaml::get(entry, "columns") {
        for c in columns {
            let Some(column) = yaml::get_str(c, "name") else {
                continue;
            };
            for list in test_lists(c) {
                for t in list {
                    out.push(parse_entry(
                        t,
                        target,
                        Some(&column),
                        (file, text, renderer),
                        anchor,
                    )?);
                }
            }
        }
    }
    Ok(out)
}

fn test_lists(v: &Value) -> impl Iterator<Item = &Vec<Value>> {
    TEST_KEYS.iter().filter_map(|k| match yaml::get(v, k) {
        Some(Value::Sequence(items)) => Some(items),
        _ => None,
    })
}

/// One item of a test list: `unique`, `{accepted_values: {values: [...]}}`, or
/// `{name: x, test_name: accepted_values, ...}`.
fn parse_entry(
    item: &Value,
    target: &TestTarget,
    column: Option<&str>,
    (file, text, renderer): (&Path, &str, &YamlRenderer),
    anchor: &str,
) -> Result<TestDecl> {
    let rendered = |v: &Value| -> Result<serde_json::Value> {
        Ok(yaml::to_json(&renderer.render_tree(
            v.clone(),
            file,
            text,
        )?))
    };
    let bad = |why: String, line: usize| {
        Error::new("LF117", why).at(file, line, None).with_snippet_from(text).hint(
            "write a test as `- unique`, or `- accepted_values: {values: [a, b]}`, or with `name:` and `test_name:`",
        )
    };
    let anchor_line = anchor_line(text, anchor);
    let (test, body): (String, Option<&Value>) = match item {
        Value::String(s) => (s.clone(), None),
        Value::Mapping(map) => {
            if let Some(name) = yaml::get_str(item, "test_name") {
                (name, Some(item))
            } else if map.len() == 1 {
                let (k, v) = map.iter().next().expect("one entry");
                let Some(k) = k.as_str() else {
                    return Err(bad("a test's name must be text".into(), anchor_line));
                };
                (k.to_string(), Some(v))
            } else {
                return Err(bad(
                    "a test entry must have one key, the test's name (or `test_name:`)".into(),
                    anchor_line,
                ));
            }
        }
        other => {
            return Err(bad(
                format!("a test entry must be a name or a mapping, not {other:?}"),
                anchor_line,
            ));
        }
    };
    let column_line = column
        .and_then(|c| line_after(text, anchor_line, &format!("name: {c}")))
        .unwrap_or(anchor_line);
    let line = line_after(text, column_line, &test).unwrap_or(column_line);
    let mut args = serde_json::Map::new();
    let mut config = Config::new();
    let mut name = None;
    let mut column = column.map(str::to_string);
    if let Some(Value::Mapping(map)) = body {
        for (k, v) in map {
            let Some(k) = k.as_str() else { continue };
            match k {
                "test_name" | "description" => {}
                "name" => name = yaml::scalar_string(v),
                "column_name" => column = yaml::scalar_string(v),
                "config" => match rendered(v)? {
                    serde_json::Value::Object(obj) => super::config::merge_into(&mut config, &obj),
                    serde_json::Value::Null => {}
                    other => {
                        return Err(bad(
                            format!(
                                "`config:` of test '{test}' must be a mapping, but it is {}",
                                super::config::json_kind(&other)
                            ),
                            line,
                        ));
                    }
                },
                "arguments" => match yaml::to_json(v) {
                    serde_json::Value::Object(obj) => args.extend(obj),
                    serde_json::Value::Null => {}
                    _ => {
                        return Err(bad(
                            format!("`arguments:` of test '{test}' must be a mapping"),
                            line,
                        ));
                    }
                },
                k if CONFIG_KEYS.contains(&k) => {
                    config.insert(k.to_string(), rendered(v)?);
                }
                k => {
                    args.insert(k.to_string(), yaml::to_json(v));
                }
            }
        }
    } else if let Some(other) = body.filter(|b| !b.is_null()) {
        return Err(bad(
            format!("the arguments of test '{test}' must be a mapping, not {other:?}"),
            line,
        ));
    }
    if let Some((key, expected, found)) = super::config::wrong_shape(&config) {
        return Err(bad(
            format!("config `{key}` of test '{test}' must be {expected}, but it is {found}"),
            line,
        ));
    }
    if let Some(model_arg) = args.keys().find(|k| *k == "model") {
        return Err(bad(
            format!(
                "test '{test}' has an argument named `{model_arg}`; that name is reserved for the tested relation"
            ),
            line,
        ));
    }
    Ok(TestDecl {
        test,
        target: target.clone(),
        column,
        args,
        config,
        name,
        file: file.to_path_buf(),
        line,
        snippet: text
            .lines()
            .nth(line.saturating_sub(1))
            .unwrap_or_default()
            .to_string(),
        package: None,
    })
}

/// The line of `- name: <anchor>` (the entry a test belongs to), or 1.
fn anchor_line(text: &str, anchor: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches('-').trim_start();
            l.strip_prefix("name:")
                .map(|v| v.trim().trim_matches(['\'', '"']) == anchor)
                .unwrap_or(false)
        })
        .map(|i| i + 1)
        .unwrap_or(1)
}

/// The first line at or after `from` that mentions `needle`.
fn line_after(text: &str, from: usize, needle: &str) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
}

/// `{% docs name %}...{% enddocs %}` blocks of the Markdown files under `dirs`.
pub fn read_docs(root: &Path, dirs: &[String]) -> Result<BTreeMap<String, String>> {
    let mut docs = BTreeMap::new();
    for path in super::files::discover(root, dirs, &["md"])? {
        let text =
            std::fs::read_to_string(&path).map_err(|e| Error::io("LF100", "read", &path, e))?;
        let rel = path.strip_prefix(root).unwrap_or(&path);
        for (name, body) in docs_blocks(&text) {
            if docs.insert(name.clone(), body).is_some() {
                return Err(Error::new(
                    "LF118",
                    format!("the docs block '{name}' is defined twice"),
                )
                .in_file(rel)
                .hint("docs block names are global; rename one"));
            }
        }
    }
    Ok(docs)
}

fn docs_blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some((_, close, tag)) = next_tag(rest) {
        let after = &rest[close..];
        let name = match tag.strip_prefix("docs") {
            Some(name) if name.is_empty() || name.starts_with(char::is_whitespace) => name.trim(),
            _ => {
                rest = after;
                continue;
            }
        };
        let Some(end) = find_enddocs(after) else {
            break;
        };
        out.push((name.to_string(), after[..end.0].trim().to_string()));
        rest = &after[end.1..];
    }
    out
}

/// The first `{% ... %}` tag of `text`: (its start, the end of its `%}`, the tag's words). The
/// closing `%}` is looked for after the opening `{%`, so `{%}` is no tag.
fn next_tag(text: &str) -> Option<(usize, usize, &str)> {
    let open = text.find("{%")?;
    let inner = open + 2;
    let close = text[inner..].find("%}")? + inner;
    let tag = text[inner..close].trim_matches(['-', '+', ' ', '\t', '\n', '\r']);
    Some((open, close + 2, tag))
}

/// (start, end) of the `{% enddocs %}` tag in `text`.
fn find_enddocs(text: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some((open, close, tag)) = next_tag(&text[from..]) {
        if tag == "enddocs" {
            return Some((from + open, from + close));
        }
        from += close;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<TestDecl> {
        let doc: Value = serde_yaml::from_str(text).unwrap();
        let entry = &yaml::get(&doc, "models").unwrap().as_sequence().unwrap()[0];
        read(
            entry,
            &TestTarget::Node("orders".into()),
            Path::new("models/s.yml"),
            text,
            &YamlRenderer::new(Default::default()),
        )
        .unwrap()
    }

    #[test]
    fn reads_every_spelling_of_a_test() {
        let text = "models:\n  - name: orders\n    data_tests:\n      - unique:\n          column_name: \"a || b\"\n    columns:\n      - name: id\n        tests:\n          - unique\n          - not_null:\n              config: {severity: warn, where: \"id > 0\"}\n      - name: status\n        data_tests:\n          - accepted_values:\n              arguments:\n                values: [a, b]\n              severity: warn\n          - name: status_ok\n            test_name: accepted_values\n            values: [x]\n";
        let t = parse(text);
        assert_eq!(t.len(), 5);
        assert_eq!(t[0].column.as_deref(), Some("a || b"));
        assert_eq!((t[1].test.as_str(), t[1].line), ("unique", 9));
        assert_eq!(t[2].config["severity"], "warn");
        assert_eq!(t[2].config["where"], "id > 0");
        assert_eq!(t[3].args["values"], serde_json::json!(["a", "b"]));
        assert_eq!(t[3].config["severity"], "warn");
        assert_eq!(t[4].name.as_deref(), Some("status_ok"));
        assert_eq!(t[4].test, "accepted_values");
        assert_eq!(t[4].column.as_deref(), Some("status"));
    }

    #[test]
    fn a_malformed_test_names_its_line() {
        let text = "models:\n  - name: orders\n    columns:\n      - name: id\n        tests:\n          - {unique: 1, not_null: 2}\n";
        let doc: Value = serde_yaml::from_str(text).unwrap();
        let entry = &yaml::get(&doc, "models").unwrap().as_sequence().unwrap()[0];
        let err = read(
            entry,
            &TestTarget::Node("orders".into()),
            Path::new("m.yml"),
            text,
            &YamlRenderer::new(Default::default()),
        )
        .unwrap_err();
        assert_eq!(err.code, "LF117");
        assert_eq!(err.location.clone().unwrap().line, Some(2));
    }

    #[test]
    fn finds_docs_blocks() {
        let text = "# intro\n{% docs orders_status %}\nOne of:\n- placed\n{% enddocs %}\n{%- docs  other -%} x {%- enddocs -%}";
        let blocks = docs_blocks(text);
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            blocks[0],
            ("orders_status".into(), "One of:\n- placed".into())
        );
        assert_eq!(blocks[1], ("other".into(), "x".into()));
    }

    #[test]
    fn odd_tags_in_markdown_are_text_not_a_panic() {
        for text in [
            "{%}",
            "a {%} b %}",
            "{% docs x %}{%}",
            "{%%}",
            "{% docs",
            "%}{%",
            "{% docsy %}",
        ] {
            let _ = docs_blocks(text);
        }
        assert!(docs_blocks("{% docsy %} a {% enddocs %}").is_empty());
        assert_eq!(
            docs_blocks("{%}\n%}\n{% docs a %}b{% enddocs %}"),
            vec![("a".to_string(), "b".to_string())]
        );
    }
}
