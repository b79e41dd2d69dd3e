//! What `source('s', 't')` puts after FROM.

use super::relation::{self, Relation};
use crate::location;
use crate::project::Project;
use std::collections::HashMap;
use std::path::Path;

/// What `source()` puts after FROM: the external location (a table function as given, a path
/// quoted so DuckDB scans it), or the source's relation in the catalog.
pub fn source_sql(project: &Project) -> HashMap<(String, String), String> {
    project
        .schema
        .sources
        .iter()
        .map(|s| {
            let sql = match &s.external_location {
                Some(loc) if loc.contains('(') => absolutize_first_argument(loc, &project.root),
                Some(loc) => {
                    let abs = if location::is_remote(loc) || Path::new(loc).is_absolute() {
                        loc.clone()
                    } else {
                        project.root.join(loc).to_string_lossy().into_owned()
                    };
                    relation::quote_literal(&abs)
                }
                None => Relation::new(s.schema.clone(), s.identifier.clone()).to_string(),
            };
            ((s.source_name.clone(), s.name.clone()), sql)
        })
        .collect()
}

/// Makes the relative paths in a table function's first argument (a string or a list of
/// strings) absolute against the project root, so catalog views work from any directory:
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
        let abs = if location::is_remote(&text) || Path::new(&text).is_absolute() {
            text
        } else {
            root.join(&text).to_string_lossy().into_owned()
        };
        out.push_str(&relation::quote_literal(&abs));
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
