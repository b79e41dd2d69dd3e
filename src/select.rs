//! Phase 4, select: dbt's selector syntax over the DAG.
//!
//! `a b` is a union, `a,b` an intersection. An atom is `[@][N]+?METHOD:VALUE+?[N]` where the
//! method is a name/fqn (default), `tag:`, `path:`, `fqn:`, `config.KEY:`, `resource_type:`,
//! `test_type:`, `test_name:`, `state:modified|new|...` and `result:error|fail|...` (against
//! the manifest and run results of `--state DIR`), `source:`, `+exposure:`.
//! Tests follow the models they read (dbt's eager indirect selection).

use crate::error::{Error, Result};
use crate::graph::Dag;
use crate::render::Node;
use globset::{Glob, GlobMatcher};
use petgraph::Direction;
use std::collections::BTreeSet;

pub use crate::state::State;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Atom {
    at: bool,
    parents: Option<Option<usize>>,
    children: Option<Option<usize>>,
    method: String,
    value: String,
}

pub struct Selection {
    /// Selected nodes in topological order.
    pub nodes: Vec<usize>,
    /// Atoms that matched nothing, to warn about.
    pub unmatched: Vec<String>,
}

pub fn select(
    nodes: &[Node],
    dag: &Dag,
    include: &[String],
    exclude: &[String],
    state: Option<&State>,
) -> Result<Selection> {
    select_with(
        nodes,
        dag,
        include,
        exclude,
        &Cx {
            state,
            exposures: &[],
        },
    )
}

/// What selectors read besides the nodes: the `--state` manifest and run results, and the
/// project's exposures (`+exposure:name` selects what one reads).
pub struct Cx<'a> {
    pub state: Option<&'a State>,
    pub exposures: &'a [crate::project::Exposure],
}

pub fn select_with(
    nodes: &[Node],
    dag: &Dag,
    include: &[String],
    exclude: &[String],
    cx: &Cx,
) -> Result<Selection> {
    let mut unmatched = Vec::new();
    let chosen = if include.iter().all(|s| s.trim().is_empty()) {
        (0..nodes.len()).collect()
    } else {
        evaluate(nodes, dag, include, cx, &mut unmatched)?
    };
    let excluded = evaluate(nodes, dag, exclude, cx, &mut unmatched)?;
    let tests = indirect_tests(nodes, dag, &chosen, &excluded);
    let nodes = dag
        .order
        .iter()
        .copied()
        .filter(|i| {
            if nodes[*i].is_test() {
                tests.contains(i)
            } else {
                chosen.contains(i) && !excluded.contains(i)
            }
        })
        .collect();
    Ok(Selection { nodes, unmatched })
}

/// dbt's eager indirect selection: a test runs when it was selected itself or when any model
/// it reads was, unless it, or a model it reads, was excluded.
fn indirect_tests(
    nodes: &[Node],
    dag: &Dag,
    chosen: &BTreeSet<usize>,
    excluded: &BTreeSet<usize>,
) -> BTreeSet<usize> {
    (0..nodes.len())
        .filter(|&t| nodes[t].is_test() && !excluded.contains(&t))
        .filter(|&t| {
            // A unit test follows the model it tests, not the models its fixtures stand for.
            let tested = match &nodes[t].materialization {
                crate::model::materialization::Materialization::UnitTest(u) => Some(&u.model),
                _ => None,
            };
            let parents: Vec<usize> = dag
                .parents(t)
                .into_iter()
                .filter(|p| !nodes[*p].is_test())
                .filter(|p| tested.is_none_or(|m| nodes[*p].name == *m))
                .collect();
            (chosen.contains(&t) || parents.iter().any(|p| chosen.contains(p)))
                && !parents.iter().any(|p| excluded.contains(p))
        })
        .collect()
}

fn evaluate(
    nodes: &[Node],
    dag: &Dag,
    exprs: &[String],
    cx: &Cx,
    unmatched: &mut Vec<String>,
) -> Result<BTreeSet<usize>> {
    let mut union = BTreeSet::new();
    for term in exprs.iter().flat_map(|e| e.split_whitespace()) {
        let mut inter: Option<BTreeSet<usize>> = None;
        for raw in term.split(',').filter(|s| !s.is_empty()) {
            let atom = parse_atom(raw)?;
            let set = apply(&atom, nodes, dag, cx)?;
            if set.is_empty() {
                unmatched.push(raw.to_string());
            }
            inter = Some(match inter {
                None => set,
                Some(prev) => prev.intersection(&set).copied().collect(),
            });
        }
        union.extend(inter.unwrap_or_default());
    }
    Ok(union)
}

fn parse_atom(raw: &str) -> Result<Atom> {
    let bad = |why: &str| {
        Error::new("LF302", format!("invalid selector '{raw}': {why}"))
            .hint("examples: orders, silver+, +gold_daily, 2+orders, @orders, tag:nightly, path:models/gold, config.materialized:external")
    };
    let mut s = raw;
    let at = s.starts_with('@');
    if at {
        s = &s[1..];
    }
    let mut parents = None;
    let digits = s.chars().take_while(char::is_ascii_digit).count();
    if s[digits..].starts_with('+') {
        parents = Some(if digits > 0 {
            Some(s[..digits].parse().map_err(|_| bad("bad depth"))?)
        } else {
            None
        });
        s = &s[digits + 1..];
    }
    let mut children = None;
    let trail = s.chars().rev().take_while(char::is_ascii_digit).count();
    let body_end = s.len() - trail;
    if s[..body_end].ends_with('+') {
        children = Some(if trail > 0 {
            Some(s[body_end..].parse().map_err(|_| bad("bad depth"))?)
        } else {
            None
        });
        s = &s[..body_end - 1];
    }
    if s.is_empty() {
        return Err(bad("nothing to select"));
    }
    if at && (parents.is_some() || children.is_some()) {
        return Err(bad("@ cannot be combined with +"));
    }
    let (method, value) = match s.split_once(':') {
        Some((m, v)) => (m.to_string(), v.to_string()),
        None => (String::new(), s.to_string()),
    };
    Ok(Atom {
        at,
        parents,
        children,
        method,
        value,
    })
}

fn apply(atom: &Atom, nodes: &[Node], dag: &Dag, cx: &Cx) -> Result<BTreeSet<usize>> {
    let glob = matcher(&atom.value)?;
    let parts: Vec<GlobMatcher> = atom.value.split('.').map(matcher).collect::<Result<_>>()?;
    // Sources and exposures are not nodes here. `source:raw+` starts from the nodes that read
    // the source (its children), `+exposure:x` from the nodes it reads (its parents); alone,
    // either selects nothing to build, as in dbt.
    let outside: Option<(Vec<usize>, _, _)> = match atom.method.as_str() {
        "source" => {
            let reads = |(s, t): &(String, String)| {
                parts[0].is_match(s) && parts.get(1).is_none_or(|p| p.is_match(t))
            };
            let readers = nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.sources.iter().any(reads))
                .map(|(i, _)| i)
                .collect();
            Some((readers, atom.children, Direction::Outgoing))
        }
        "exposure" => {
            let read = nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| {
                    !n.is_test()
                        && cx
                            .exposures
                            .iter()
                            .any(|e| glob.is_match(&e.name) && e.refs.contains(&n.name))
                })
                .map(|(i, _)| i)
                .collect();
            Some((read, atom.parents, Direction::Incoming))
        }
        _ => None,
    };
    if let Some((first, depth, dir)) = outside {
        let Some(depth) = depth else {
            return Ok(BTreeSet::new());
        };
        let mut out = BTreeSet::new();
        for i in first {
            out.insert(i);
            // They are the first generation; the rest of the depth goes on from them.
            let further = match depth {
                None => Some(None),
                Some(d) if d > 1 => Some(Some(d - 1)),
                Some(_) => None,
            };
            if let Some(further) = further {
                out.extend(dag.reach(i, dir, further));
            }
        }
        return Ok(out);
    }
    let mut base = BTreeSet::new();
    for (i, node) in nodes.iter().enumerate() {
        if matches(atom, &glob, &parts, node, cx.state)? {
            base.insert(i);
        }
    }
    let mut out = base.clone();
    for &i in &base {
        if let Some(depth) = atom.parents {
            out.extend(dag.reach(i, Direction::Incoming, depth));
        }
        if let Some(depth) = atom.children {
            out.extend(dag.reach(i, Direction::Outgoing, depth));
        }
        if atom.at {
            let down = dag.reach(i, Direction::Outgoing, None);
            for &d in &down {
                out.extend(dag.reach(d, Direction::Incoming, None));
            }
            out.extend(down);
        }
    }
    Ok(out)
}

fn matcher(value: &str) -> Result<GlobMatcher> {
    Glob::new(value).map(|g| g.compile_matcher()).map_err(|e| {
        Error::new(
            "LF302",
            format!("invalid pattern '{value}' in selector: {e}"),
        )
        .hint("globs use *, ? and [..]")
    })
}

/// `parts` are the atom's value split at dots, for the fqn method.
fn matches(
    atom: &Atom,
    glob: &GlobMatcher,
    parts: &[GlobMatcher],
    node: &Node,
    state: Option<&State>,
) -> Result<bool> {
    Ok(match atom.method.as_str() {
        "" if atom.value.contains('/') || atom.value.ends_with(".sql") => {
            path_matches(&atom.value, glob, node)
        }
        "" | "fqn" => fqn_matches(parts, node),
        "tag" => node.tags.iter().any(|t| glob.is_match(t)),
        // The project's own nodes, or an installed package's (the fqn starts with its name).
        "package" => node.fqn.first().is_some_and(|p| glob.is_match(p)),
        "path" | "file" => path_matches(&atom.value, glob, node),
        "resource_type" => {
            serde_json::to_value(node.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                == Some(atom.value.clone())
        }
        "test_type" if atom.value == "unit" => matches!(
            node.materialization,
            crate::model::materialization::Materialization::UnitTest(_)
        ),
        "test_type" => match (&node.test, atom.value.as_str()) {
            (Some(t), "generic") => t.test_name.is_some(),
            (Some(t), "singular") => t.test_name.is_none(),
            (Some(_), "data") => true,
            _ => false,
        },
        "test_name" => node
            .test
            .as_ref()
            .and_then(|t| t.test_name.as_deref())
            .is_some_and(|n| glob.is_match(n)),
        "result" => {
            let state = state.ok_or_else(|| {
                Error::new(
                    "LF304",
                    format!("the selector 'result:{}' needs --state", atom.value),
                )
                .hint("pass --state DIR, the target/ folder of the run whose results to use")
            })?;
            state
                .result_of(&node.unique_id)
                .is_some_and(|r| glob.is_match(r))
        }
        "state" => {
            let state = state.ok_or_else(|| {
                Error::new(
                    "LF304",
                    format!("the selector 'state:{}' needs --state", atom.value),
                )
                .hint("pass --state DIR, the target/ folder of the run to compare with")
            })?;
            state.matches(&node.unique_id, &atom.value).ok_or_else(|| {
                Error::new("LF303", format!("unknown state 'state:{}'", atom.value)).hint(
                    "use state:new, state:old, state:modified, state:unmodified, or state:modified.body|configs|relation|persisted_descriptions|contract|macros",
                )
            })?
        }
        m if m.starts_with("config.") => {
            let key = &m["config.".len()..];
            match node.config.get(key) {
                Some(serde_json::Value::String(s)) => glob.is_match(s),
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .any(|v| v.as_str().is_some_and(|s| glob.is_match(s))),
                Some(other) => atom.value.parse::<serde_json::Value>().ok().as_ref() == Some(other),
                None => key == "materialized" && atom.value == "view",
            }
        }
        other => {
            return Err(
                Error::new("LF303", format!("unknown selector method '{other}:'"))
                    .hint("methods: tag:, package:, source:, exposure:, path:, fqn:, config.KEY:, resource_type:, test_type:, test_name:, state:, result:"),
            );
        }
    })
}

/// A path selector matches the file or any folder above it, relative to the project root
/// (`models/silver`) or to the model path (`silver`).
fn path_matches(value: &str, glob: &GlobMatcher, node: &Node) -> bool {
    let value = value.trim_end_matches('/');
    let full = node.path.to_string_lossy();
    let under_models: String = node
        .path
        .components()
        .skip(1)
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    [full.as_ref(), under_models.as_str()]
        .iter()
        .any(|p| *p == value || p.starts_with(&format!("{value}/")) || glob.is_match(p))
}

/// dbt's fqn method: the model name, or dotted parts matching the start of the fqn with or
/// without the project name (`silver` selects every model under `models/silver/`).
fn fqn_matches(parts: &[GlobMatcher], node: &Node) -> bool {
    // A versioned model's name selects all its versions, as in dbt.
    if parts.len() == 1
        && (parts[0].is_match(&node.name)
            || node
                .version
                .as_ref()
                .is_some_and(|v| parts[0].is_match(&v.model)))
    {
        return true;
    }
    let prefix_of = |fqn: &[String]| {
        parts.len() <= fqn.len() && parts.iter().zip(fqn).all(|(g, f)| g.is_match(f))
    };
    prefix_of(&node.fqn) || prefix_of(&node.fqn[1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_graph_operators() {
        let a = parse_atom("2+orders+1").unwrap();
        assert_eq!(a.parents, Some(Some(2)));
        assert_eq!(a.children, Some(Some(1)));
        assert_eq!(a.value, "orders");
        let b = parse_atom("+tag:nightly+").unwrap();
        assert_eq!((b.parents, b.children), (Some(None), Some(None)));
        assert_eq!((b.method.as_str(), b.value.as_str()), ("tag", "nightly"));
        assert!(parse_atom("@x").unwrap().at);
        assert!(parse_atom("@x+").is_err());
        assert!(parse_atom("+").is_err());
    }
}
