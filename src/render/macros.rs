//! User macros from `macros/*.sql`: one internal template holding them all, renamed so every
//! call goes through a wrapper that gives dbt's `return()` its meaning.

use crate::error::{Error, Result};
use crate::project::SqlFile;
use crate::project::packages::Package;
use std::path::PathBuf;

/// Template name of the combined macro file.
pub const TEMPLATE: &str = "__lakeflow_macros__";
/// Internal prefix of macro names inside that template.
pub const INTERNAL_PREFIX: &str = "lfmacro__";

const BUILTIN_TESTS: &[(&str, &str)] = &[
    ("unique", include_str!("../../templates/tests/unique.sql")),
    (
        "not_null",
        include_str!("../../templates/tests/not_null.sql"),
    ),
    (
        "accepted_values",
        include_str!("../../templates/tests/accepted_values.sql"),
    ),
    (
        "relationships",
        include_str!("../../templates/tests/relationships.sql"),
    ),
];

/// The prefix of internal names: `lfmacro__x` for the project's macro `x`,
/// `lfmacro__pkg__x` for a package's.
fn internal_prefix(package: Option<&str>) -> String {
    match package {
        None => INTERNAL_PREFIX.to_string(),
        Some(p) => format!("{INTERNAL_PREFIX}{p}__"),
    }
}

/// dbt's built-in naming macros, in lakeflow's words.
const NAMING: &str = include_str!("../../templates/macros/naming.sql");

pub struct MacroSet {
    pub source: String,
    /// Every internal macro name, by (package or none for the project, macro name).
    internals: std::collections::BTreeMap<(Option<String>, String), String>,
    /// The installed packages' names (namespaces: `dbt_utils.star(...)`).
    pub packages: Vec<String>,
    /// Lines of `source` so far.
    lines: usize,
    /// (first line in the combined template, file) per macro file, to locate errors.
    line_map: Vec<(usize, PathBuf)>,
}

impl MacroSet {
    /// The project's macro files, then each package's, in one template.
    pub fn build(files: &[SqlFile], packages: &[Package]) -> Result<MacroSet> {
        let mut set = MacroSet {
            source: String::new(),
            internals: Default::default(),
            packages: packages.iter().map(|p| p.name.clone()).collect(),
            lines: 0,
            line_map: Vec::new(),
        };
        for file in files {
            set.add_file(None, file)?;
        }
        for p in packages {
            for file in &p.macros {
                set.add_file(Some(&p.name), file)?;
            }
        }
        Ok(set)
    }

    fn add_file(&mut self, package: Option<&str>, file: &SqlFile) -> Result<()> {
        self.line_map.push((self.lines + 1, file.path.clone()));
        self.add_source(package, &file.source).map_err(|name| {
            Error::new("LF201", format!("macro '{name}' is defined twice"))
                .in_file(&file.path)
                .hint(match package {
                    None => "macro names are global in a project; rename or remove one definition"
                        .to_string(),
                    Some(p) => format!("the package '{p}' defines it twice; reinstall the package"),
                })
        })
    }

    /// Renames and appends the macros of `source`; the name of a macro defined twice in one
    /// package (or the project) is the error.
    fn add_source(
        &mut self,
        package: Option<&str>,
        source: &str,
    ) -> std::result::Result<(), String> {
        let prefix = internal_prefix(package);
        let (renamed, found) = rename_macros(source, &prefix);
        for name in found {
            let key = (package.map(str::to_string), name.clone());
            if self.internals.contains_key(&key) {
                return Err(name);
            }
            self.internals.insert(key, format!("{prefix}{name}"));
        }
        self.lines += renamed.lines().count().max(1);
        self.source.push_str(&renamed);
        if !renamed.ends_with('\n') {
            self.source.push('\n');
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.internals.is_empty()
    }

    /// The project's own macros as (name, internal name): as in dbt, only these are callable
    /// without a namespace; a package's are reached as `package.name` or through
    /// `adapter.dispatch`.
    pub fn names(&self) -> impl Iterator<Item = (&str, &str)> {
        self.all()
            .filter(|(p, _, _)| p.is_none())
            .map(|(_, n, i)| (n, i))
    }

    /// The internal name of `package`'s macro `name` (`package` none: the project's).
    pub fn internal(&self, package: Option<&str>, name: &str) -> Option<&str> {
        self.internals
            .get(&(package.map(str::to_string), name.to_string()))
            .map(String::as_str)
    }

    /// Every macro as (package or none, name, internal name).
    pub fn all(&self) -> impl Iterator<Item = (Option<&str>, &str, &str)> {
        self.internals
            .iter()
            .map(|((p, n), i)| (p.as_deref(), n.as_str(), i.as_str()))
    }

    /// Adds lakeflow's generic tests (`unique`, `not_null`, `accepted_values`,
    /// `relationships`) that the project does not define itself.
    pub fn add_builtin_tests(&mut self) {
        for (name, source) in BUILTIN_TESTS {
            self.add_builtin(
                &format!("test_{name}"),
                &format!("tests/{name}.sql"),
                source,
            );
        }
    }

    /// Adds dbt's built-in naming macros (`default__generate_schema_name`,
    /// `generate_schema_name_for_env`, ...) the project does not define, for its overrides
    /// of `generate_*_name` to call.
    pub fn add_naming_builtins(&mut self) {
        let mut rest = NAMING;
        while let Some(start) = rest.find("{% macro ") {
            let chunk = &rest[start..];
            let end = chunk
                .find("{%- endmacro %}")
                .map_or(chunk.len(), |e| e + "{%- endmacro %}".len());
            let name: String = chunk["{% macro ".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            self.add_builtin(&name, "macros/naming.sql", &chunk[..end]);
            rest = &chunk[end..];
        }
    }

    /// Appends one built-in macro unless the project defines `name` itself.
    fn add_builtin(&mut self, name: &str, label: &str, source: &str) {
        if self.has(name) {
            return;
        }
        self.line_map
            .push((self.lines + 1, PathBuf::from(format!("<lakeflow>/{label}"))));
        // A built-in is defined once, and only when the name is free.
        let _ = self.add_source(None, source);
    }

    /// The `{% from ... import ... %}` put before a model's first line (no newline, so the
    /// model's line numbers stay as in its file).
    pub fn import_prefix(&self) -> String {
        if self.internals.is_empty() {
            return String::new();
        }
        let list: Vec<&str> = self.internals.values().map(String::as_str).collect();
        format!("{{% from '{TEMPLATE}' import {} %}}", list.join(", "))
    }

    /// Maps a line of the combined template back to (file, line).
    pub fn locate(&self, line: usize) -> Option<(PathBuf, usize)> {
        self.line_map
            .iter()
            .rev()
            .find(|(start, _)| *start <= line)
            .map(|(start, file)| (file.clone(), line - start + 1))
    }

    pub fn has(&self, name: &str) -> bool {
        self.internal(None, name).is_some()
    }
}

/// Renames `{% macro name(` to the internal name and returns the names found. A dbt generic
/// test block, `{% test name(model, column_name) %}...{% endtest %}`, is the macro `test_name`.
fn rename_macros(source: &str, prefix: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(source.len() + 64);
    let mut names = Vec::new();
    let mut rest = source;
    while let Some(open) = rest.find("{%") {
        out.push_str(&rest[..open]);
        let tag = &rest[open..];
        let body_start = if tag[2..].starts_with(['-', '+']) {
            3
        } else {
            2
        };
        let body = &tag[body_start..];
        let trimmed = body.trim_start();
        let ws = body.len() - trimmed.len();
        let keyword = ["macro", "test"].into_iter().find(|k| {
            trimmed
                .strip_prefix(k)
                .is_some_and(|after| after.starts_with(char::is_whitespace))
        });
        if let Some(keyword) = keyword {
            let name_part = trimmed[keyword.len()..].trim_start();
            let name_len = name_part
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(name_part.len());
            let name = &name_part[..name_len];
            if !name.is_empty() {
                let name = match keyword {
                    "test" => format!("test_{name}"),
                    _ => name.to_string(),
                };
                out.push_str(&tag[..body_start + ws]);
                out.push_str("macro ");
                out.push_str(prefix);
                out.push_str(&name);
                names.push(name);
                rest = &name_part[name_len..];
                // Jinja2's catch-alls: a macro whose body names `kwargs` (`varargs`) takes
                // any other keyword (positional) arguments as that dict (list).
                if let Some((signature_end, body)) = signature_and_body(rest) {
                    // Defaults that read earlier arguments (`b=a`) are set in the body, where
                    // those are bound (as Jinja2 evaluates them).
                    let (params, prelude) = late_defaults(&rest[1..signature_end - 1]);
                    out.push('(');
                    out.push_str(&params);
                    let empty = params.trim().is_empty();
                    let mut sep = if empty { "" } else { ", " };
                    for (word, default) in [("kwargs", "{}"), ("varargs", "[]")] {
                        if mentions(body, word) {
                            out.push_str(&format!("{sep}{word}={default}"));
                            sep = ", ";
                        }
                    }
                    out.push(')');
                    rest = &rest[signature_end..];
                    if !prelude.is_empty()
                        && let Some(close) = rest.find("%}")
                    {
                        out.push_str(&rest[..close + 2]);
                        out.push_str(&prelude);
                        rest = &rest[close + 2..];
                    }
                }
                continue;
            }
        }
        if let Some(after) = trimmed.strip_prefix("endtest")
            && after.trim_start().starts_with(['-', '+', '%'])
        {
            out.push_str(&tag[..body_start + ws]);
            out.push_str("endmacro");
            rest = after;
            continue;
        }
        out.push_str("{%");
        rest = &tag[2..];
    }
    out.push_str(rest);
    (out, names)
}

/// A macro's parameters with the defaults that read an earlier parameter replaced by a
/// marker, and the tags that set them in the body when the marker is still there.
fn late_defaults(params: &str) -> (String, String) {
    let parts = split_top_level(params);
    let mut names: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut prelude = String::new();
    for part in parts {
        let Some((name, default)) = part.split_once('=').filter(|(_, d)| !d.starts_with('='))
        else {
            names.push(part.trim().to_string());
            out.push(part.to_string());
            continue;
        };
        let name = name.trim();
        let reads_earlier = identifiers(default)
            .iter()
            .any(|id| names.iter().any(|n| n == id));
        if reads_earlier {
            let marker = format!("'__lf_default_{name}__'");
            out.push(format!(" {name}={marker}"));
            prelude.push_str(&format!(
                "{{% if {name} == {marker} %}}{{% set {name} = ({}) %}}{{% endif %}}",
                default.trim()
            ));
        } else {
            out.push(part.to_string());
        }
        names.push(name.to_string());
    }
    (out.join(","), prelude)
}

/// `text` split at commas outside brackets and quotes.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut start) = (0usize, None::<char>, 0);
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth = depth.saturating_sub(1),
            (None, ',') if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !text[start..].trim().is_empty() {
        out.push(&text[start..]);
    }
    out
}

/// The names an expression reads (outside string literals).
fn identifiers(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    for c in expr.chars().chain([' ']) {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c.is_alphanumeric() || c == '_' || (c == '.' && !word.is_empty()) => {
                word.push(c)
            }
            None => {
                if let Some(first) = word.split('.').next()
                    && first.chars().next().is_some_and(|f| !f.is_ascii_digit())
                {
                    out.push(first.to_string());
                }
                word.clear();
            }
        }
    }
    out
}

/// For text that starts at a macro's `(`: where its signature ends (just after `)`) and the
/// macro's body (up to its `endmacro`/`endtest`).
fn signature_and_body(rest: &str) -> Option<(usize, &str)> {
    if !rest.starts_with('(') {
        return None;
    }
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut end = None;
    for (i, c) in rest.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    end = Some(i + 1);
                    break;
                }
            }
            _ => {}
        }
    }
    let end = end?;
    let after = &rest[end..];
    let stop = ["endmacro", "endtest"]
        .iter()
        .filter_map(|k| after.find(k))
        .min()
        .unwrap_or(after.len());
    Some((end, &after[..stop]))
}

/// Whether `body` uses the name `word` (not as part of a longer name, not as `word=`).
pub(super) fn mentions(body: &str, word: &str) -> bool {
    let is_name = |c: char| c.is_alphanumeric() || c == '_';
    body.match_indices(word).any(|(i, _)| {
        let before = body[..i].chars().next_back();
        let after = body[i + word.len()..].trim_start();
        let whole = !before.is_some_and(|c| is_name(c) || c == '.')
            && !body[i + word.len()..].starts_with(is_name);
        let assigned = after.starts_with('=') && !after.starts_with("==");
        whole && !assigned
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_all_arguments_join_the_signature() {
        let src = "{% macro a(model, cols=[]) %}{{ kwargs.get('x') }}{% endmacro %}\n{% macro b() %}{{ varargs | length }}{{ f(**kwargs) }}{% endmacro %}{% macro c(kw) %}{{ kwargs_x }}{% endmacro %}";
        let (out, _) = rename_macros(src, INTERNAL_PREFIX);
        assert!(
            out.contains("lfmacro__a(model, cols=[], kwargs={})"),
            "{out}"
        );
        assert!(out.contains("lfmacro__b(kwargs={}, varargs=[])"), "{out}");
        assert!(out.contains("lfmacro__c(kw)"), "{out}");
    }

    #[test]
    fn renames_every_macro_and_keeps_lines() {
        let src = "{% macro a(x) %}{{ x }}{% endmacro %}\n{%- macro  b_2() -%}\nhi\n{%- endmacro %}\n{% if macro %}{% endif %}";
        let (out, names) = rename_macros(src, INTERNAL_PREFIX);
        assert_eq!(names, vec!["a", "b_2"]);
        assert!(out.contains("{% macro lfmacro__a(x) %}"));
        assert!(out.contains("{%- macro lfmacro__b_2() -%}"));
        assert!(out.contains("{% if macro %}"));
        assert_eq!(out.lines().count(), src.lines().count());
    }

    #[test]
    fn test_blocks_become_test_macros() {
        let src = "{% test positive(model, column_name) %}\nselect 1\n{%- endtest %}\n{%test  x() -%}{% endtest -%}";
        let (out, names) = rename_macros(src, INTERNAL_PREFIX);
        assert_eq!(names, vec!["test_positive", "test_x"]);
        assert!(out.contains("{% macro lfmacro__test_positive(model, column_name) %}"));
        assert!(out.contains("{%- endmacro %}"));
        assert!(
            out.contains("{%macro lfmacro__test_x() -%}{% endmacro -%}"),
            "{out}"
        );
    }

    #[test]
    fn defaults_that_read_earlier_arguments_render_in_the_body() {
        let src =
            "{% macro m(a, b=a, c=a ~ '!', d='a') %}{{ a }}|{{ b }}|{{ c }}|{{ d }}{% endmacro %}";
        let (out, _) = rename_macros(src, INTERNAL_PREFIX);
        let mut env = minijinja::Environment::new();
        env.add_template("m", &out).unwrap();
        let tmpl = env
            .template_from_str("{% from 'm' import lfmacro__m %}{{ lfmacro__m('x') }} {{ lfmacro__m('x', 'y', d='z') }}")
            .unwrap();
        assert_eq!(tmpl.render(()).unwrap(), "x|x|x!|a x|y|x!|z");
        // Signatures without such defaults stay as written.
        let plain = "{% macro p(a, b='a', c=[1, 2]) %}{% endmacro %}";
        assert!(
            rename_macros(plain, INTERNAL_PREFIX)
                .0
                .contains("(a, b='a', c=[1, 2])")
        );
    }

    #[test]
    fn locates_lines_per_file() {
        let file = |name: &str, source: &str| SqlFile {
            name: name.into(),
            path: PathBuf::from(format!("macros/{name}.sql")),
            folders: vec![],
            source: source.into(),
            kind: Default::default(),
            checksum: String::new(),
            package: None,
            version: None,
        };
        let set = MacroSet::build(
            &[
                file("a", "{% macro a() %}\n1\n{% endmacro %}\n"),
                file("b", "\n{% macro b() %}{{ nope }}{% endmacro %}\n"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(set.locate(5), Some((PathBuf::from("macros/b.sql"), 2)));
        assert_eq!(set.locate(2), Some((PathBuf::from("macros/a.sql"), 2)));
    }
}
