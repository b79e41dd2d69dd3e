//! Phase 3, graph: the DAG of models from their refs, with a cycle check that prints the cycle.
//! Tests hang below the models they read, and (as in dbt's `build`) the models downstream of
//! those wait for them, so a failing test stops what would be built on bad data.

use crate::error::{Error, Result};
use crate::render::Node;
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{BTreeSet, HashMap, VecDeque};

/// Edges point from a model to the models that ref it. Node weights index `nodes`.
pub struct Dag {
    pub graph: DiGraph<usize, ()>,
    by_name: HashMap<String, NodeIndex>,
    /// A topological order of all nodes (indexes into `nodes`).
    pub order: Vec<usize>,
}

pub fn build(nodes: &[Node]) -> Result<Dag> {
    let mut graph = DiGraph::with_capacity(nodes.len(), nodes.len() * 2);
    let indexes: Vec<NodeIndex> = (0..nodes.len()).map(|i| graph.add_node(i)).collect();
    // Tests are not ref-able: only models and seeds are looked up by name.
    let by_name: HashMap<String, NodeIndex> = nodes
        .iter()
        .zip(&indexes)
        .filter(|(n, _)| !n.is_test())
        .map(|(n, ix)| (n.name.clone(), *ix))
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        for r in &node.refs {
            if let Some(&from) = by_name.get(r) {
                graph.add_edge(from, NodeIndex::new(i), ());
            }
        }
    }
    add_test_edges(&mut graph, nodes);
    // A unit test runs before its model, which waits for it; a model's unit tests run one
    // after the other, and after one that does not pass the rest are skipped (as in dbt).
    let mut last_of: HashMap<&str, NodeIndex> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        if let crate::model::materialization::Materialization::UnitTest(u) = &node.materialization
            && let Some(&model) = by_name.get(&u.model)
        {
            let ix = NodeIndex::new(i);
            graph.add_edge(ix, model, ());
            if let Some(previous) = last_of.insert(u.model.as_str(), ix) {
                graph.add_edge(previous, ix, ());
            }
        }
    }
    let order = match petgraph::algo::toposort(&graph, None) {
        Ok(order) => order.into_iter().map(|ix| graph[ix]).collect(),
        Err(_) => return Err(cycle_error(&graph, nodes)),
    };
    Ok(Dag {
        graph,
        by_name,
        order,
    })
}

/// For each test, the nearest nodes downstream of all of the test's parents wait for it
/// (dbt's rule: a test gates a node when everything it reads, models and sources, is upstream
/// of that node). Nodes further down wait through those, so a failed test skips exactly its
/// descendants.
fn add_test_edges(graph: &mut DiGraph<usize, ()>, nodes: &[Node]) {
    let mut ancestors: HashMap<NodeIndex, BTreeSet<NodeIndex>> = HashMap::new();
    // The models that read each source (a source is not a node of the graph).
    let mut readers: HashMap<&(String, String), Vec<NodeIndex>> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if !n.is_test() {
            for s in &n.sources {
                readers.entry(s).or_default().push(NodeIndex::new(i));
            }
        }
    }
    let mut edges = Vec::new();
    for (t, node) in nodes.iter().enumerate() {
        // A unit test gates its own model only (an edge of its own).
        let unit = matches!(
            node.materialization,
            crate::model::materialization::Materialization::UnitTest(_)
        );
        if !node.is_test() || unit {
            continue;
        }
        let tix = NodeIndex::new(t);
        let parents: Vec<NodeIndex> = graph.neighbors_directed(tix, Direction::Incoming).collect();
        let g: &DiGraph<usize, ()> = graph;
        // Where to look: below the first model it reads, else the readers of its first source.
        let candidates: BTreeSet<NodeIndex> = match (parents.first(), node.sources.first()) {
            (Some(&first), _) => walk(g, first, Direction::Outgoing),
            (None, Some(src)) => readers
                .get(src)
                .into_iter()
                .flatten()
                .flat_map(|&r| std::iter::once(r).chain(walk(g, r, Direction::Outgoing)))
                .collect(),
            (None, None) => continue,
        };
        let mut gated = |n: NodeIndex| {
            let anc = ancestors
                .entry(n)
                .or_insert_with(|| walk(g, n, Direction::Incoming));
            parents.iter().all(|p| anc.contains(p))
                && node.sources.iter().all(|s| {
                    nodes[g[n]].sources.contains(s)
                        || anc.iter().any(|a| nodes[g[*a]].sources.contains(s))
                })
        };
        for n in candidates {
            if nodes[g[n]].is_test() || !gated(n) {
                continue;
            }
            // Only the nearest: n is reached through a gated parent otherwise.
            let nearer = g
                .neighbors_directed(n, Direction::Incoming)
                .filter(|p| !nodes[g[*p]].is_test())
                .any(&mut gated);
            if !nearer {
                edges.push((tix, n));
            }
        }
    }
    for (from, to) in edges {
        graph.add_edge(from, to, ());
    }
}

/// Every node reachable from `start` along `dir`, not including it.
fn walk(graph: &DiGraph<usize, ()>, start: NodeIndex, dir: Direction) -> BTreeSet<NodeIndex> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(ix) = stack.pop() {
        for next in graph.neighbors_directed(ix, dir) {
            if seen.insert(next) {
                stack.push(next);
            }
        }
    }
    seen
}

fn cycle_error(graph: &DiGraph<usize, ()>, nodes: &[Node]) -> Error {
    let scc = petgraph::algo::tarjan_scc(graph)
        .into_iter()
        .find(|c| c.len() > 1 || graph.contains_edge(c[0], c[0]))
        .unwrap_or_default();
    let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
    let Some(&start) = members.iter().min_by_key(|ix| &nodes[graph[**ix]].name) else {
        return Error::new("LF301", "the models form a cycle");
    };
    // Shortest path inside the component from `start` back to itself.
    let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    let mut closing = None;
    while let Some(ix) = queue.pop_front() {
        for next in graph.neighbors_directed(ix, Direction::Outgoing) {
            if next == start {
                closing = Some(ix);
                break;
            }
            if members.contains(&next) && !prev.contains_key(&next) {
                prev.insert(next, ix);
                queue.push_back(next);
            }
        }
        if closing.is_some() {
            break;
        }
    }
    let mut path = vec![start];
    let mut cur = closing.unwrap_or(start);
    let mut back = Vec::new();
    while cur != start {
        back.push(cur);
        cur = prev[&cur];
    }
    path.extend(back.into_iter().rev());
    path.push(start);
    // Edges run along the data flow; print the cycle in ref order: each model refs the next.
    path.reverse();
    let names: Vec<&str> = path
        .iter()
        .map(|ix| nodes[graph[*ix]].name.as_str())
        .collect();
    let first = &nodes[graph[start]];
    let files: Vec<String> = path[..path.len() - 1]
        .iter()
        .map(|ix| nodes[graph[*ix]].path.display().to_string())
        .collect();
    Error::new(
        "LF301",
        format!(
            "the models form a cycle (each refs the next): {}",
            names.join(" -> ")
        ),
    )
    .in_file(&first.path)
    .hint(format!(
        "remove one of these refs to break it (files: {})",
        files.join(", ")
    ))
}

impl Dag {
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).map(|ix| self.graph[*ix])
    }

    /// Upstream (`Incoming`) or downstream (`Outgoing`) nodes within `depth` steps
    /// (`None`: all), not including the start.
    pub fn reach(&self, start: usize, dir: Direction, depth: Option<usize>) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([(NodeIndex::new(start), 0usize)]);
        while let Some((ix, d)) = queue.pop_front() {
            if depth.is_some_and(|max| d >= max) {
                continue;
            }
            for next in self.graph.neighbors_directed(ix, dir) {
                if seen.insert(self.graph[next]) {
                    queue.push_back((next, d + 1));
                }
            }
        }
        seen
    }

    /// Direct upstream nodes of `i`.
    pub fn parents(&self, i: usize) -> Vec<usize> {
        self.graph
            .neighbors_directed(NodeIndex::new(i), Direction::Incoming)
            .map(|ix| self.graph[ix])
            .collect()
    }

    pub fn children(&self, i: usize) -> Vec<usize> {
        self.graph
            .neighbors_directed(NodeIndex::new(i), Direction::Outgoing)
            .map(|ix| self.graph[ix])
            .collect()
    }
}
