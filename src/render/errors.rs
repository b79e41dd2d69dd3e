//! Render errors: a Jinja failure located in the model or macro file with the offending
//! expression, and refs to models that are missing or disabled.

use super::Renderer;
use super::macros;
use crate::error::{Error, Result, line_of};
use crate::project::SqlFile;
use std::path::Path;

impl Renderer<'_> {
    pub(super) fn error(&self, err: minijinja::Error, file: &SqlFile) -> Error {
        let reason = jinja_reason(&err, err.name() == Some(macros::TEMPLATE), self, file);
        let hint = match err.kind() {
            minijinja::ErrorKind::SyntaxError => {
                "fix the Jinja syntax; tags are {{ ... }}, {% ... %} and {# ... #}"
            }
            minijinja::ErrorKind::UndefinedError => {
                "check the name: available are ref, source, config, var, env_var, this, target, model, is_incremental and the macros in macros/"
            }
            minijinja::ErrorKind::UnknownFunction => {
                "define it as a macro in macros/, or check the spelling"
            }
            _ => "see the line shown",
        };
        let base = Error::new("LF202", reason).hint(hint);
        let line = err.line();
        if err.name() == Some(macros::TEMPLATE)
            && let Some((path, mline)) = line.and_then(|l| self.macros.locate(l))
        {
            let source = self
                .project
                .macros
                .iter()
                .find(|m| m.path == path)
                .map(|m| m.source.clone())
                .unwrap_or_default();
            return base.at(&path, mline, None).with_snippet_from(&source);
        }
        match line {
            Some(l) => base.at(&file.path, l, None).with_snippet_from(&file.source),
            None => base.in_file(&file.path),
        }
    }
}

/// The error's reason, naming the offending expression where minijinja gives its span.
fn jinja_reason(err: &minijinja::Error, in_macros: bool, r: &Renderer, file: &SqlFile) -> String {
    let mut reason = crate::project::yaml::jinja_reason(err);
    if let Some(range) = err.range() {
        let text = if in_macros {
            r.macros_source_slice(range)
        } else {
            let start = range.start.checked_sub(r.prefix.len());
            let end = range.end.checked_sub(r.prefix.len());
            start
                .zip(end)
                .and_then(|(s, e)| file.source.get(s..e))
                .map(str::to_string)
        };
        if let Some(text) = text.filter(|t| !t.is_empty() && t.len() < 120) {
            reason = format!("{reason}: `{text}`");
        }
    }
    reason
}

impl Renderer<'_> {
    fn macros_source_slice(&self, range: std::ops::Range<usize>) -> Option<String> {
        self.env
            .get_template(macros::TEMPLATE)
            .ok()
            .and_then(|t| t.source().get(range).map(str::to_string))
    }
}

pub(super) fn check_refs(
    file: &SqlFile,
    refs: &[String],
    shared: &super::functions::Shared,
    enabled: &[bool],
    files: &[&SqlFile],
) -> Result<()> {
    let models = &shared.models;
    for name in refs {
        match models.get(name) {
            Some(&i) if enabled[i] => {}
            Some(&i) => {
                return Err(located(
                    Error::new(
                        "LF204",
                        format!("'{}' refs model '{name}', which is disabled", file.name),
                    ),
                    &file.path,
                    &file.source,
                    name,
                )
                .hint(format!(
                    "enable {} or remove the ref",
                    files[i].path.display()
                )));
            }
            None => {
                let mut close: Vec<(f64, &String)> = models
                    .keys()
                    .map(|k| (strsim::jaro_winkler(name, k), k))
                    .filter(|(score, _)| *score > 0.75)
                    .collect();
                close.sort_by(|a, b| b.0.total_cmp(&a.0));
                let hint = if close.is_empty() {
                    "check the model name; models are named after their .sql files".to_string()
                } else {
                    let names: Vec<String> = close
                        .iter()
                        .take(3)
                        .map(|(_, n)| format!("'{n}'"))
                        .collect();
                    format!("did you mean {}?", names.join(" or "))
                };
                return Err(located(
                    Error::new(
                        "LF203",
                        format!("'{}' refs model '{name}', which does not exist", file.name),
                    ),
                    &file.path,
                    &file.source,
                    name,
                )
                .hint(hint));
            }
        }
    }
    Ok(())
}

/// Locates an error at the first line of `source` mentioning `needle`.
pub(super) fn located(err: Error, path: &Path, source: &str, needle: &str) -> Error {
    let quoted = [
        format!("'{needle}'"),
        format!("\"{needle}\""),
        needle.to_string(),
    ];
    match quoted.iter().find_map(|q| line_of(source, q)) {
        Some(line) => err.at(path, line, None).with_snippet_from(source),
        None => err.in_file(path),
    }
}
