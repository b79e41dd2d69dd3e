//! Phase 3, graph: the DAG of models from their refs, with a cycle check that prints the cycle.

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
    let by_name: HashMap<String, NodeIndex> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), graph.add_node(i)))
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        for r in &node.refs {
            if let Some(&from) = by_name.get(r) {
                graph.add_edge(from, NodeIndex::new(i), ());
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
