//! What `source('s', 't')` puts after FROM.

use crate::error::{Error, Result};
use crate::model::relation::{self, Relation};
use crate::project::Project;
use crate::project::files::SourceTable;
use crate::project::sources::SourceReader;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// What `source()` puts after FROM: the external location (a table function as given, a path
/// quoted so DuckDB scans it), or the source's relation in the catalog.
/// Delta sources get their location quoted here, a stand-in for the parse pass; see
/// `resolve_delta`.
pub fn source_sql(project: &Project) -> HashMap<(String, String), String> {
    project
        .schema
        .sources
        .iter()
        .map(|s| {
            let sql = match &s.external_location {
                Some(loc) if loc.contains('(') && !is_delta(s) => {
                    absolutize_first_argument(loc, &project.target.paths_base)
                }
                Some(loc) => relation::quote_literal(&absolute(loc, &project.target.paths_base)),
                None => Relation::new(s.schema.clone(), s.identifier.clone()).to_string(),
            };
            ((s.source_name.clone(), s.name.clone()), sql)
        })
        .collect()
}

/// The source tables with an `event_time` config (what microbatch models filter them on).
pub fn event_times(project: &Project) -> HashMap<(String, String), String> {
    project
        .schema
        .sources
        .iter()
        .filter_map(|s| {
            let et = crate::project::config::get_str(&s.config, "event_time")?;
            Some(((s.source_name.clone(), s.name.clone()), et.to_string()))
        })
        .collect()
}

fn is_delta(s: &SourceTable) -> bool {
    crate::project::config::get_str(&s.config, "format")
        .is_some_and(|f| f.eq_ignore_ascii_case("delta"))
}

/// A location as given when remote or absolute, else joined to where the project's relative
/// paths resolve (the project folder; for a dbt project the working directory).
fn absolute(loc: &str, root: &Path) -> String {
    if crate::project::paths::is_remote(loc) || Path::new(loc).is_absolute() {
        loc.to_string()
    } else {
        root.join(loc).to_string_lossy().into_owned()
    }
}

/// Replaces the stand-ins of the Delta sources in `used` by a read of the version they ask
/// for, which `reader` makes (render itself reads no storage).
pub fn resolve_delta(
    project: &Project,
    reader: &dyn SourceReader,
    sql: &mut HashMap<(String, String), String>,
    used: &HashSet<&(String, String)>,
) -> Result<()> {
    for s in &project.schema.sources {
        let key = (s.source_name.clone(), s.name.clone());
        if !is_delta(s) || !used.contains(&key) {
            continue;
        }
        let Some(loc) = &s.external_location else {
            return Err(Error::new(
                "LF131",
                format!(
                    "source {}.{} has format delta but no external_location",
                    s.source_name, s.name
                ),
            )
            .in_file(&s.file)
            .hint("set `external_location:` to the table's folder or s3:// URL"));
        };
        let read = reader.read_delta(s, &absolute(loc, &project.target.paths_base))?;
        sql.insert(key, format!("({read})"));
    }
    Ok(())
}

/// Makes the relative paths in a table function's first argument (a string or a list of
/// strings) absolute against `root` (where relative paths resolve), so catalog views work from
/// any directory:
/// `read_csv('data/x.csv', header = true)` -> `read_csv('/proj/data/x.csv', header = true)`.
fn absolutize_first_argument(call: &str, root: &Path) -> String {
    let Some(open) = call.find('(') else {
        return call.to_string();
    };
    let mut out = call[..=open].to_string();
    let rest = &call[open + 1..];
    let trimmed = rest.trim_start();
    out.push_str(&rest[..rest.len() - trimmed.len()]);
    let (list, mut i) = if trimmed.starts_with('[') {
        (true, 1)
    } else {
        (false, 0)
    };
    if list {
        out.push('[');
    }
    let bytes = trimmed.as_bytes();
    loop {
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\n' || bytes[i] == b',') && list
        {
            out.push(bytes[i] as char);
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'\'' {
            break;
        }
        // A SQL string literal: '' is an escaped quote.
        let mut j = i + 1;
        let mut text = String::new();
        while j < bytes.len() {
            if bytes[j] == b'\'' {
                if bytes.get(j + 1) == Some(&b'\'') {
                    text.push('\'');
                    j += 2;
                    continue;
                }
                break;
            }
            let ch = trimmed[j..].chars().next().unwrap_or(' ');
            text.push(ch);
            j += ch.len_utf8();
        }
        out.push_str(&relation::quote_literal(&absolute(&text, root)));
        i = j + 1;
        if !list {
            break;
        }
    }
    out.push_str(trimmed.get(i..).unwrap_or(""));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_function_paths_become_absolute() {
        let root = Path::new("/proj");
        assert_eq!(
            absolutize_first_argument("read_csv('data/x.csv', header = true)", root),
            "read_csv('/proj/data/x.csv', header = true)"
        );
        assert_eq!(
            absolutize_first_argument(
                "read_parquet(['a.parquet', 's3://b/c.parquet', '/d.parquet'])",
                root
            ),
            "read_parquet(['/proj/a.parquet', 's3://b/c.parquet', '/d.parquet'])"
        );
        assert_eq!(
            absolutize_first_argument("delta_scan('s3://bucket/t')", root),
            "delta_scan('s3://bucket/t')"
        );
        assert_eq!(
            absolutize_first_argument("read_csv('it''s.csv')", root),
            "read_csv('/proj/it''s.csv')"
        );
    }
}
