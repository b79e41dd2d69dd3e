//! The one error type every phase returns: a stable code, what went wrong, where, and what to do.
//! The codes and their meanings are one table, [`codes::CODES`].

pub mod codes;

use std::fmt;
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

/// Boxed so `Result<T, Error>` stays one pointer wide on the happy path.
#[derive(Debug, Clone)]
pub struct Error(Box<ErrorInfo>);

#[derive(Debug, Clone)]
pub struct ErrorInfo {
    /// Stable code, one of [`codes::CODES`] (`LF1xx` project, `LF2xx` render, `LF3xx`
    /// graph/select, `LF4xx` run, `LF5xx` storage/catalog/publish, `LF6xx` query, `LF7xx`
    /// artifacts) so scripts and docs can refer to it.
    pub code: &'static str,
    pub message: String,
    pub location: Option<Location>,
    /// The offending source line, shown under the location.
    pub snippet: Option<String>,
    pub hint: Option<String>,
}

impl Error {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Error(Box::new(ErrorInfo {
            code,
            message: message.into(),
            location: None,
            snippet: None,
            hint: None,
        }))
    }

    pub fn in_file(mut self, file: impl AsRef<Path>) -> Self {
        self.0.location = Some(Location {
            file: file.as_ref().to_path_buf(),
            line: None,
            column: None,
        });
        self
    }

    pub fn at(mut self, file: impl AsRef<Path>, line: usize, column: Option<usize>) -> Self {
        self.0.location = Some(Location {
            file: file.as_ref().to_path_buf(),
            line: Some(line),
            column,
        });
        self
    }

    /// Attach the text of the located line from `source` (1-based line numbers).
    pub fn with_snippet_from(mut self, source: &str) -> Self {
        if let Some(line) = self.location.as_ref().and_then(|l| l.line) {
            self.0.snippet = source
                .lines()
                .nth(line.saturating_sub(1))
                .map(str::to_string);
        }
        self
    }

    /// Attach `line`, the text of the located line, read when the file was loaded.
    pub fn with_snippet(mut self, line: &str) -> Self {
        self.0.snippet = Some(line.to_string());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.0.hint = Some(hint.into());
        self
    }

    pub fn io(code: &'static str, what: &str, path: &Path, err: std::io::Error) -> Self {
        Error::new(code, format!("cannot {what} {}: {err}", path.display()))
    }
}

impl std::ops::Deref for Error {
    type Target = ErrorInfo;

    fn deref(&self) -> &ErrorInfo {
        &self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error[{}]: {}", self.code, self.message)?;
        if let Some(loc) = &self.location {
            write!(f, "\n  --> {}", loc.file.display())?;
            if let Some(line) = loc.line {
                write!(f, ":{line}")?;
                if let Some(col) = loc.column {
                    write!(f, ":{col}")?;
                }
            }
            if let (Some(line), Some(snippet)) = (loc.line, &self.snippet) {
                write!(f, "\n   |\n{line:>3}| {snippet}")?;
            }
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  = help: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// The 1-based line of the first occurrence of `needle` in `source`.
pub fn line_of(source: &str, needle: &str) -> Option<usize> {
    source
        .find(needle)
        .map(|offset| source[..offset].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_code_location_snippet_and_hint() {
        let src = "select 1\nfrom {{ ref('nope') }}\n";
        let err = Error::new("LF203", "model 'nope' not found")
            .at("models/x.sql", 2, Some(6))
            .with_snippet_from(src)
            .hint("did you mean 'nape'?");
        let text = err.to_string();
        assert!(text.starts_with("error[LF203]: model 'nope' not found"));
        assert!(text.contains("--> models/x.sql:2:6"));
        assert!(text.contains("2| from {{ ref('nope') }}"));
        assert!(text.ends_with("= help: did you mean 'nape'?"));
    }

    #[test]
    fn line_of_counts_from_one() {
        assert_eq!(line_of("a\nb\nc", "c"), Some(3));
        assert_eq!(line_of("a", "z"), None);
    }
}
