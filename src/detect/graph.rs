//! The wait-for graph: tasks and resources, with an edge for every wait,
//! every lock hold and every task known to be able to wake a waiter.
//!
//! Built from a [`Snapshot`] into a petgraph `DiGraph`; exported as JSON (serde)
//! and Graphviz DOT. Cycles (strongly connected components) are marked, so
//! a viewer can highlight them.

use std::collections::HashMap;

use petgraph::algo::kosaraju_scc;
use petgraph::dot::{Config, Dot};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use serde::{Deserialize, Serialize};

use crate::snapshot::{Location, ResourceId, ResourceInfo, ResourceKind, Snapshot, TaskId, TaskInfo, TaskState};

/// A node: a task or a resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WaitForNode {
    /// A task.
    Task {
        /// Its id.
        id: TaskId,
        /// `task 7 "name"`.
        label: String,
        /// Its state.
        state: TaskState,
        /// Go's wait reason, if parked.
        wait_reason: Option<String>,
        /// Where it is parked.
        at: Option<Location>,
    },
    /// A channel, lock, wait group or condition.
    Resource {
        /// Its id.
        id: ResourceId,
        /// `chan#3`, `sync.Mutex#5`, ...
        label: String,
        /// Kind and state.
        kind: ResourceKind,
    },
}

/// What an edge means.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// task → resource: the task is parked waiting on it.
    WaitsOn,
    /// resource → task: the task holds the lock.
    HeldBy,
    /// resource → task: the task has used the resource's waking side (sent,
    /// closed, unlocked, signalled, `add`ed) and is alive: it could wake a waiter.
    CouldWake,
}

/// An edge, with the evidence for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WaitForEdge {
    /// What it means.
    pub kind: EdgeKind,
    /// Why it is there, in words.
    pub evidence: String,
    /// Part of a cycle.
    pub in_cycle: bool,
}

/// The wait-for graph of a snapshot.
#[derive(Clone, Debug)]
pub struct WaitForGraph {
    graph: DiGraph<WaitForNode, WaitForEdge>,
}

#[derive(Serialize)]
struct JsonEdge<'a> {
    from: usize,
    to: usize,
    #[serde(flatten)]
    edge: &'a WaitForEdge,
}

#[derive(Serialize)]
struct JsonGraph<'a> {
    nodes: Vec<&'a WaitForNode>,
    edges: Vec<JsonEdge<'a>>,
}

impl Serialize for WaitForGraph {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let g = &self.graph;
        JsonGraph {
            nodes: g.node_weights().collect(),
            edges: g
                .edge_references()
                .map(|e| JsonEdge { from: e.source().index(), to: e.target().index(), edge: e.weight() })
                .collect(),
        }
        .serialize(s)
    }
}

/// `task 7 "name"`.
pub(crate) fn task_label(t: &TaskInfo) -> String {
    TaskLabel(t).to_string()
}

/// Displays as [`task_label`], for writing it without an allocation of its own.
pub(crate) struct TaskLabel<'a>(pub(crate) &'a TaskInfo);

impl std::fmt::Display for TaskLabel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0.name {
            Some(n) => write!(f, "task {} \"{n}\"", self.0.id),
            None => write!(f, "task {}", self.0.id),
        }
    }
}

impl WaitForGraph {
    /// Builds the graph of `s`: every parked task and every resource one waits on.
    pub fn build(s: &Snapshot) -> WaitForGraph {
        let mut g = DiGraph::new();
        let mut tasks: HashMap<TaskId, NodeIndex> = HashMap::new();
        let mut resources: HashMap<ResourceId, NodeIndex> = HashMap::new();
        let mut task_node = |g: &mut DiGraph<_, _>, t: &TaskInfo| {
            *tasks.entry(t.id).or_insert_with(|| {
                g.add_node(WaitForNode::Task {
                    id: t.id,
                    label: task_label(t),
                    state: t.state,
                    wait_reason: t.wait_reason.map(|r| r.to_string()),
                    at: t.parked_at.clone(),
                })
            })
        };
        for r in s.resources() {
            let n = g.add_node(WaitForNode::Resource { id: r.id, label: r.label(), kind: r.kind.clone() });
            resources.insert(r.id, n);
        }
        for t in s.tasks().iter().filter(|t| !t.waits_on.is_empty()) {
            let from = task_node(&mut g, t);
            for w in &t.waits_on {
                if let Some(&to) = resources.get(&w.resource) {
                    let at = t.parked_at.as_ref().map(|l| format!(" at {l}")).unwrap_or_default();
                    let evidence = format!("{} waits for {}{at}", task_label(t), w.op);
                    g.add_edge(from, to, WaitForEdge { kind: EdgeKind::WaitsOn, evidence, in_cycle: false });
                }
            }
        }
        for r in s.resources() {
            let from = resources[&r.id];
            for h in &r.holders {
                if let Some(t) = s.task(h.task) {
                    let to = task_node(&mut g, t);
                    let mode = if h.write { "" } else { " for reading" };
                    let evidence = format!("{} is held{mode} by {} (locked at {})", r.label(), task_label(t), h.at);
                    g.add_edge(from, to, WaitForEdge { kind: EdgeKind::HeldBy, evidence, in_cycle: false });
                }
            }
            if !matches!(r.kind, ResourceKind::Mutex | ResourceKind::RwMutex) {
                // A task waiting on `r` cannot wake its own wait: no edge back to it.
                let waiting = |u: TaskId| s.task(u).is_some_and(|t| t.waits_on.iter().any(|w| w.resource == r.id));
                for u in potential_wakers(r).filter(|&u| !waiting(u)) {
                    if let Some(t) = s.task(u) {
                        let to = task_node(&mut g, t);
                        let evidence = format!("{} has used {} before and is alive", task_label(t), r.label());
                        g.add_edge(from, to, WaitForEdge { kind: EdgeKind::CouldWake, evidence, in_cycle: false });
                    }
                }
            }
        }
        mark_cycles(&mut g);
        WaitForGraph { graph: g }
    }

    /// The petgraph graph.
    pub fn graph(&self) -> &DiGraph<WaitForNode, WaitForEdge> {
        &self.graph
    }

    /// The cycles: node sets of the strongly connected components with more
    /// than one node, or with a self-loop.
    pub fn cycles(&self) -> Vec<Vec<&WaitForNode>> {
        kosaraju_scc(&self.graph)
            .into_iter()
            .filter(|c| c.len() > 1 || self.graph.contains_edge(c[0], c[0]))
            .map(|c| c.into_iter().map(|n| &self.graph[n]).collect())
            .collect()
    }

    /// Graphviz DOT: tasks as boxes, resources as ellipses, cycles in red.
    pub fn to_dot(&self) -> String {
        let edge_attr = |_, e: petgraph::graph::EdgeReference<'_, WaitForEdge>| dot_edge_attrs(e.weight());
        let node_attr = |_, (_, n): (NodeIndex, &WaitForNode)| dot_node_attrs(n);
        let dot =
            Dot::with_attr_getters(&self.graph, &[Config::EdgeNoLabel, Config::NodeNoLabel], &edge_attr, &node_attr);
        format!("{dot:?}")
    }

    /// JSON: `{"nodes": [...], "edges": [{"from", "to", "kind", "evidence", "in_cycle"}]}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("the graph serialises")
    }
}

/// A node's DOT attributes: a task as a box labelled with its wait reason, a
/// resource as an ellipse (shared by [`WaitForGraph::to_dot`] and the
/// server's truncated graphs).
pub(crate) fn dot_node_attrs(n: &WaitForNode) -> String {
    match n {
        WaitForNode::Task { label, wait_reason, .. } => {
            let text = match wait_reason {
                Some(r) => format!("{label}\n[{r}]"),
                None => label.clone(),
            };
            format!("shape=box, label={}", dot_quote(&text))
        }
        WaitForNode::Resource { label, .. } => format!("shape=ellipse, label={}", dot_quote(label)),
    }
}

/// An edge's DOT attributes: its kind as label and style, red on a cycle.
pub(crate) fn dot_edge_attrs(w: &WaitForEdge) -> String {
    let style = match w.kind {
        EdgeKind::WaitsOn => "solid",
        EdgeKind::HeldBy => "bold",
        EdgeKind::CouldWake => "dashed",
    };
    let color = if w.in_cycle { ", color=red" } else { "" };
    format!("label={}, style={style}{color}", dot_quote(&format!("{:?}", w.kind)))
}

/// Quotes `s` for DOT: backslashes and quotes escaped, line breaks as `\n`.
fn dot_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
}

/// The tasks that could wake a waiter of `r`: those that used its waking side
/// (for a channel, both sides: a sender can also close; a receiver unblocks a sender).
pub(crate) fn potential_wakers(r: &ResourceInfo) -> impl Iterator<Item = TaskId> + '_ {
    let chan = matches!(r.kind, ResourceKind::Chan { .. });
    r.wakers.iter().chain(r.waiters.iter().filter(move |_| chan)).copied()
}

fn mark_cycles(g: &mut DiGraph<WaitForNode, WaitForEdge>) {
    // Each node's cyclic component (if any), then one pass over the edges:
    // an edge is on a cycle when both ends are in the same cyclic component.
    let mut component: HashMap<NodeIndex, usize> = HashMap::new();
    for (i, scc) in kosaraju_scc(&*g).into_iter().enumerate() {
        if scc.len() > 1 || g.contains_edge(scc[0], scc[0]) {
            component.extend(scc.into_iter().map(|n| (n, i)));
        }
    }
    let inner: Vec<_> = g
        .edge_references()
        .filter(|e| component.get(&e.source()).is_some_and(|c| component.get(&e.target()) == Some(c)))
        .map(|e| e.id())
        .collect();
    for e in inner {
        g[e].in_cycle = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_labels_escape_quotes_backslashes_and_line_breaks() {
        let task = WaitForNode::Task {
            id: TaskId(7),
            label: r#"task 7 "a\b""#.to_string(),
            state: TaskState::Parked,
            wait_reason: Some("chan receive".to_string()),
            at: None,
        };
        assert_eq!(dot_node_attrs(&task), r#"shape=box, label="task 7 \"a\\b\"\n[chan receive]""#);
        let edge = WaitForEdge { kind: EdgeKind::HeldBy, evidence: String::new(), in_cycle: true };
        assert_eq!(dot_edge_attrs(&edge), r#"label="HeldBy", style=bold, color=red"#);
    }
}
