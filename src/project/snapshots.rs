//! Snapshots: the `{% snapshot name %}` blocks of the `.sql` files under `snapshot-paths`, and
//! the YAML snapshots of schema files (dbt 1.9: `snapshots:` entries with a `relation`). Each
//! becomes a node of kind [`FileKind::Snapshot`] whose SQL is the block's body.

use super::files::{self, FileKind, SchemaFiles, SqlFile};
use crate::error::{Error, Result};
use std::path::Path;

/// The snapshot blocks of the `.sql` files under `dirs` (relative to `root`). A block's body
/// keeps its line numbers: it is preceded by as many newlines as the file has before it.
pub fn read_blocks(root: &Path, dirs: &[String]) -> Result<Vec<SqlFile>> {
    let mut out = Vec::new();
    for file in files::read_sql_files(root, dirs)? {
        let text = &file.source;
        let mut rest = 0;
        while let Some((name, body_start)) = next_block(text, rest) {
            let Some(end) = find_end(text, body_start) else {
                let line = text[..body_start].lines().count().max(1);
                return Err(Error::new(
                    "LF133",
                    format!("the snapshot '{name}' has no {{% endsnapshot %}}"),
                )
                .at(&file.path, line, None)
                .with_snippet_from(text)
                .hint("close the block with {% endsnapshot %}"));
            };
            let lines_before = text[..body_start].matches('\n').count();
            out.push(SqlFile {
                name,
                source: format!("{}{}", "\n".repeat(lines_before), &text[body_start..end.0]),
                kind: FileKind::Snapshot,
                ..file.clone()
            });
            rest = end.1;
        }
    }
    Ok(out)
}

/// The next `{% ... %}` tag at or after `from`: where it starts, where it ends, and its
/// contents without whitespace control and spaces.
fn next_tag(text: &str, from: usize) -> Option<(usize, usize, &str)> {
    let start = from + text.get(from..)?.find("{%")?;
    let close = start + text[start..].find("%}")?;
    let tag =
        text[start + 2..close].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
    Some((start, close + 2, tag))
}

/// The next `{% snapshot name %}` tag at or after `from`: its name and where its body starts.
fn next_block(text: &str, from: usize) -> Option<(String, usize)> {
    let mut at = from;
    while let Some((_, end, tag)) = next_tag(text, at) {
        if let Some(rest) = tag.strip_prefix("snapshot")
            && rest.starts_with(char::is_whitespace)
        {
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                return Some((name, end));
            }
        }
        at = end;
    }
    None
}

/// Where the block's body ends (the `{% endsnapshot %}` tag's start) and where the tag ends.
fn find_end(text: &str, from: usize) -> Option<(usize, usize)> {
    let mut at = from;
    while let Some((start, end, tag)) = next_tag(text, at) {
        if tag == "endsnapshot" {
            return Some((start, end));
        }
        at = end;
    }
    None
}

/// The YAML snapshots of the schema files: each `snapshots:` entry with a `relation`
/// (`ref('orders')`, `source('shop', 'orders')`) selects everything from it.
pub fn from_yaml(schema: &SchemaFiles) -> Vec<SqlFile> {
    schema
        .snapshots
        .iter()
        .filter_map(|(name, yml)| {
            let relation = yml.entry.get("relation")?.as_str()?.trim();
            let relation = relation
                .strip_prefix("{{")
                .and_then(|r| r.strip_suffix("}}"))
                .unwrap_or(relation)
                .trim();
            Some(SqlFile {
                name: name.clone(),
                path: yml.file.clone(),
                source: format!("select * from {{{{ {relation} }}}}"),
                kind: FileKind::Snapshot,
                ..SqlFile::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_found_with_their_line_numbers() {
        let text = "-- head\n{% snapshot orders_snap %}\n{{ config(strategy='check') }}\nselect 1\n{%- endsnapshot %}\n{%snapshot b%}select 2{% endsnapshot %}";
        let (name, start) = next_block(text, 0).expect("block");
        assert_eq!(name, "orders_snap");
        let (end, after) = find_end(text, start).expect("end");
        assert_eq!(
            &text[start..end],
            "\n{{ config(strategy='check') }}\nselect 1\n"
        );
        let (name, start) = next_block(text, after).expect("second");
        assert_eq!(name, "b");
        assert_eq!(
            &text[start..find_end(text, start).expect("end").0],
            "select 2"
        );
    }
}
