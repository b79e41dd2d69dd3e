//! Checks across all rendered nodes, before anything runs: no two nodes write one relation or
//! one place in the lake, and no node writes into lakeflow's own state.

use super::Node;
use crate::error::{Error, Result};
use std::collections::HashMap;

use crate::model::STATE_SCHEMA;

pub fn check_outputs(nodes: &[Node]) -> Result<()> {
    let writers: Vec<&Node> = nodes.iter().filter(|n| !n.is_ephemeral()).collect();
    reserved_schema(&writers)?;
    same_relation(&writers)?;
    overlapping_locations(&writers)
}

fn reserved_schema(nodes: &[&Node]) -> Result<()> {
    match nodes
        .iter()
        .find(|n| n.relation.schema.eq_ignore_ascii_case(STATE_SCHEMA))
    {
        Some(n) => Err(Error::new(
            "LF214",
            format!(
                "'{}' would be built in the schema {STATE_SCHEMA}, which holds lakeflow's own state",
                n.name
            ),
        )
        .in_file(&n.path)
        .hint("choose another `schema` for it")),
        None => Ok(()),
    }
}

/// DuckDB matches identifiers without regard to case, so `Orders` and `orders` are one table.
fn same_relation(nodes: &[&Node]) -> Result<()> {
    let mut seen: HashMap<(String, String), &Node> = HashMap::new();
    for n in nodes.iter().filter(|n| !n.is_test()) {
        let key = (
            n.relation.schema.to_lowercase(),
            n.relation.identifier.to_lowercase(),
        );
        if let Some(first) = seen.insert(key, n) {
            return Err(Error::new(
                "LF215",
                format!(
                    "'{}' ({}) and '{}' ({}) are both built as {}",
                    first.name,
                    first.path.display(),
                    n.name,
                    n.path.display(),
                    n.relation
                ),
            )
            .in_file(&n.path)
            .hint(
                "give one of them another `alias` or `schema`, or disable one (`enabled: false`)",
            ));
        }
    }
    Ok(())
}

/// One location may not equal another or lie inside it: both would write (and clean up) the
/// same files.
fn overlapping_locations(nodes: &[&Node]) -> Result<()> {
    let mut located: Vec<(&str, &Node)> = nodes
        .iter()
        .filter_map(|n| Some((n.location.as_deref()?, *n)))
        .collect();
    // Sorted with `/` before every other byte, the locations below one come right after it
    // (`a`, `a/b`, `a.parquet`), so each only needs checking against the enclosing ones on
    // the stack `outer`.
    located.sort_by_cached_key(|(loc, _)| {
        loc.trim_end_matches('/')
            .bytes()
            .map(|b| if b == b'/' { 0 } else { b })
            .collect::<Vec<u8>>()
    });
    let mut outer: Vec<(&str, &Node)> = Vec::new();
    for (loc, n) in located {
        while let Some((o, _)) = outer.last() {
            if contains(o, loc) {
                break;
            }
            outer.pop();
        }
        if let Some((o, first)) = outer.last() {
            let how = if *o == loc {
                format!("both write to {loc}")
            } else {
                format!("{loc} is inside {o}")
            };
            return Err(Error::new(
                "LF216",
                format!(
                    "'{}' ({}) and '{}' ({}) overlap in the lake: {how}",
                    first.name,
                    first.path.display(),
                    n.name,
                    n.path.display()
                ),
            )
            .in_file(&n.path)
            .hint("give each model its own location (`location`, `alias`, or the external_location macro)"));
        }
        outer.push((loc, n));
    }
    Ok(())
}

fn contains(outer: &str, inner: &str) -> bool {
    let outer = outer.trim_end_matches('/');
    inner == outer || inner.starts_with(&format!("{outer}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment_is_by_whole_segments() {
        assert!(contains("/lake/a", "/lake/a"));
        assert!(contains("/lake/a", "/lake/a/b.parquet"));
        assert!(!contains("/lake/a", "/lake/ab.parquet"));
        assert!(contains("s3://b/x", "s3://b/x/y"));
    }

    fn node(name: &str, schema: &str, location: Option<&str>) -> Node {
        Node {
            unique_id: format!("model.p.{name}"),
            kind: crate::project::FileKind::Model,
            name: name.into(),
            fqn: vec![],
            path: format!("models/{name}.sql").into(),
            layer: None,
            tags: vec![],
            config: Default::default(),
            materialization: crate::model::materialization::Materialization::Table,
            relation: crate::model::relation::Relation::new(schema, name),
            location: location.map(str::to_string),
            refs: vec![],
            sources: vec![],
            raw_sql: String::new(),
            compiled_sql: String::new(),
            checksum: String::new(),
            unrendered_config: Default::default(),
            test: None,
            hooks: Default::default(),
            incremental_sql: None,
            deferred: false,
            python: None,
            version: None,
            contract: None,
            constraints: None,
            error: None,
        }
    }

    #[test]
    fn nested_locations_are_found_whatever_sorts_between_them() {
        let nodes = vec![
            node("a", "s", Some("/lake/a")),
            node("b", "s", Some("/lake/a.parquet")),
            node("c", "s", Some("/lake/a/c.parquet")),
        ];
        let err = check_outputs(&nodes).unwrap_err();
        assert_eq!(err.code, "LF216");
        assert!(
            err.message.contains("'a'") && err.message.contains("'c'"),
            "{}",
            err.message
        );
        let ok = vec![
            node("a", "s", Some("/lake/a")),
            node("b", "s", Some("/lake/a.parquet")),
            node("c", "s", Some("/lake/ab/c.parquet")),
        ];
        assert!(check_outputs(&ok).is_ok());
    }

    #[test]
    fn same_relation_ignores_case_and_state_schema_is_reserved() {
        let err = check_outputs(&[node("A", "s", None), node("a", "S", None)]).unwrap_err();
        assert_eq!(err.code, "LF215");
        let err = check_outputs(&[node("a", "_LakeFlow", None)]).unwrap_err();
        assert_eq!(err.code, "LF214");
    }
}
