//! The wait-for graph endpoint: the whole graph when it is small, else the
//! part that matters most (cycles, then tasks of findings, then the rest),
//! cut at `max_nodes` so the answer stays bounded.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{EdgeIndex, NodeIndex};
use petgraph::visit::{EdgeFiltered, EdgeRef};
use petgraph::Direction;
use serde::Serialize;

use crate::detect::graph::{dot_edge_attrs, dot_node_attrs};
use crate::detect::{EdgeKind, WaitForEdge, WaitForGraph, WaitForNode};
use crate::snapshot::TaskId;

use super::view::Taken;

/// The chosen nodes of the graph, in the order chosen.
pub(crate) struct Selection {
    nodes: Vec<NodeIndex>,
    pub(crate) truncated: bool,
}

/// Nodes in cycles first, then tasks of deadlock findings, then of leak
/// findings, then everything else (unless `findings_only`), each seed with
/// its connected component, breadth first, until `max` nodes.
pub(crate) fn select(g: &WaitForGraph, taken: &Taken, max: usize, findings_only: bool) -> Selection {
    let graph = g.graph();
    let task_nodes: HashMap<TaskId, NodeIndex> = graph
        .node_indices()
        .filter_map(|n| match &graph[n] {
            WaitForNode::Task { id, .. } => Some((*id, n)),
            _ => None,
        })
        .collect();
    let mut seeds: Vec<NodeIndex> = Vec::new();
    let (marks, _) = real_cycles(g);
    for e in graph.edge_references().filter(|e| marks.get(&e.id()).is_some_and(|m| m.1)) {
        seeds.push(e.source());
    }
    for f in taken.analysis().findings() {
        seeds.extend(f.tasks.iter().filter_map(|t| task_nodes.get(t).copied()));
    }
    let everything = !findings_only;
    let mut chosen: Vec<NodeIndex> = Vec::new();
    let mut seen: HashSet<NodeIndex> = HashSet::new();
    let mut truncated = false;
    let rest = graph.node_indices();
    'seeds: for seed in seeds.into_iter().chain(rest.filter(|_| everything)) {
        if seen.contains(&seed) {
            continue;
        }
        let mut queue = VecDeque::from([seed]);
        seen.insert(seed);
        while let Some(n) = queue.pop_front() {
            if chosen.len() >= max {
                truncated = true;
                break 'seeds;
            }
            chosen.push(n);
            for m in
                graph.neighbors_directed(n, Direction::Outgoing).chain(graph.neighbors_directed(n, Direction::Incoming))
            {
                if seen.insert(m) {
                    queue.push_back(m);
                }
            }
        }
    }
    if findings_only {
        truncated |= chosen.len() < graph.node_count();
    }
    Selection { nodes: chosen, truncated }
}

#[derive(Serialize)]
struct JsonNode<'a> {
    #[serde(flatten)]
    node: &'a WaitForNode,
    /// `deadlock` or `leak` when the task is in such a finding.
    flag: Option<&'static str>,
}

#[derive(Serialize)]
struct JsonEdge<'a> {
    from: usize,
    to: usize,
    #[serde(flatten)]
    edge: &'a WaitForEdge,
    /// A `could_wake` edge back to a task parked on this very resource: it
    /// cannot wake itself, so the page does not draw it.
    self_wake: bool,
    /// On a cycle of the graph without the `self_wake` edges (what the page
    /// draws in red); `in_cycle` is the library's mark over every edge.
    cycle: bool,
}

#[derive(Serialize)]
struct JsonGraph<'a> {
    nodes: Vec<JsonNode<'a>>,
    edges: Vec<JsonEdge<'a>>,
    truncated: bool,
    total_nodes: usize,
    total_edges: usize,
    cycles: usize,
}

/// For every edge: whether it is a self-wake edge, and whether it lies on a
/// cycle of the graph without those edges; and the number of such cycles.
fn real_cycles(g: &WaitForGraph) -> (HashMap<EdgeIndex, (bool, bool)>, usize) {
    let graph = g.graph();
    let self_wake = |e: petgraph::graph::EdgeReference<'_, WaitForEdge>| {
        e.weight().kind == EdgeKind::CouldWake
            && graph.edges_connecting(e.target(), e.source()).any(|b| b.weight().kind == EdgeKind::WaitsOn)
    };
    let trivial: HashSet<EdgeIndex> = graph.edge_references().filter(|e| self_wake(*e)).map(|e| e.id()).collect();
    let filtered = EdgeFiltered::from_fn(graph, |e| !trivial.contains(&e.id()));
    let mut comp = vec![usize::MAX; graph.node_count()];
    let mut cycles = 0;
    for (i, scc) in kosaraju_scc(&filtered).into_iter().enumerate() {
        let cyclic = scc.len() > 1 || graph.edges_connecting(scc[0], scc[0]).any(|e| !trivial.contains(&e.id()));
        if cyclic {
            cycles += 1;
            for n in scc {
                comp[n.index()] = i;
            }
        }
    }
    let marks = graph
        .edge_references()
        .map(|e| {
            let t = trivial.contains(&e.id());
            let c =
                !t && comp[e.source().index()] != usize::MAX && comp[e.source().index()] == comp[e.target().index()];
            (e.id(), (t, c))
        })
        .collect();
    (marks, cycles)
}

fn flags(taken: &Taken) -> HashMap<TaskId, &'static str> {
    let mut m = HashMap::new();
    for f in &taken.analysis().leaks {
        for t in &f.tasks {
            m.insert(*t, "leak");
        }
    }
    for f in &taken.analysis().deadlocks {
        for t in &f.tasks {
            m.insert(*t, "deadlock");
        }
    }
    m
}

/// The selection as JSON: `{"nodes", "edges", "truncated", "total_nodes", "total_edges", "cycles"}`,
/// nodes and edges shaped as [`WaitForGraph::to_json`] writes them, plus a `flag` per node.
pub(crate) fn to_json(g: &WaitForGraph, sel: &Selection, taken: &Taken) -> String {
    let graph = g.graph();
    let flags = flags(taken);
    let pos: HashMap<NodeIndex, usize> = sel.nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let nodes = sel
        .nodes
        .iter()
        .map(|n| {
            let node = &graph[*n];
            let flag = match node {
                WaitForNode::Task { id, .. } => flags.get(id).copied(),
                _ => None,
            };
            JsonNode { node, flag }
        })
        .collect();
    let (marks, cycles) = real_cycles(g);
    let edges = graph
        .edge_references()
        .filter_map(|e| {
            let (self_wake, cycle) = marks.get(&e.id()).copied().unwrap_or_default();
            Some(JsonEdge {
                from: *pos.get(&e.source())?,
                to: *pos.get(&e.target())?,
                edge: e.weight(),
                self_wake,
                cycle,
            })
        })
        .collect();
    let out = JsonGraph {
        nodes,
        edges,
        truncated: sel.truncated,
        total_nodes: graph.node_count(),
        total_edges: graph.edge_count(),
        cycles,
    };
    serde_json::to_string(&out).unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
}

/// The selection as Graphviz DOT, in [`WaitForGraph::to_dot`]'s style: tasks
/// as boxes, resources as ellipses, cycle edges red. The whole graph, when
/// selected whole, is exactly `to_dot()`.
pub(crate) fn to_dot(g: &WaitForGraph, sel: &Selection) -> String {
    if !sel.truncated {
        return g.to_dot();
    }
    let graph = g.graph();
    let pos: HashMap<NodeIndex, usize> = sel.nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut out = String::from("digraph {\n");
    let _ = writeln!(
        out,
        "    // truncated: {} of {} nodes (the cycles and the tasks of findings first)",
        sel.nodes.len(),
        graph.node_count()
    );
    for (i, n) in sel.nodes.iter().enumerate() {
        let _ = writeln!(out, "    {i} [ {} ]", dot_node_attrs(&graph[*n]));
    }
    for e in graph.edge_references() {
        let (Some(a), Some(b)) = (pos.get(&e.source()), pos.get(&e.target())) else { continue };
        let _ = writeln!(out, "    {a} -> {b} [ {} ]", dot_edge_attrs(e.weight()));
    }
    out.push_str("}\n");
    out
}
