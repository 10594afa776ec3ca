//! The inspectable graph: every node a loss depends on, with its op, shape and the bytes its
//! backward keeps alive, exported to Graphviz DOT or JSON, plus a memory ledger that says what
//! a training step holds (parameters, inputs, activations) without double-counting views.

use crate::var::Var;
use deltaw_tensor::{Shape, Tensor};
use serde::Serialize;
use std::collections::HashSet;
use std::fmt::Write;

/// One node of the graph, as exported.
#[derive(Clone, Debug, Serialize)]
pub struct GraphNode {
    pub id: u64,
    /// The op with its parameters (`"sum(dim=1)"`), or `"leaf"`.
    pub op: String,
    pub name: Option<String>,
    pub shape: Vec<usize>,
    pub dtype: String,
    pub requires_grad: bool,
    /// Ids of the inputs, in argument order.
    pub inputs: Vec<u64>,
    /// Bytes of this node's value.
    pub value_bytes: usize,
    /// Bytes of the tensors its backward reads (inputs, its own output, or extras such as
    /// layer norm's `mean` and `rstd`); shared tensors count for every node that reads them.
    pub saved_bytes: usize,
}

/// What the graph keeps alive, each tensor buffer counted once however many views share it.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct MemorySummary {
    /// Values of leaves that require grad (parameters).
    pub parameter_bytes: usize,
    /// Values of constant leaves (inputs, targets, masks, frozen weights).
    pub input_bytes: usize,
    /// Op outputs and extra saved tensors: everything the graph holds beyond its leaves.
    pub activation_bytes: usize,
    /// The part of `activation_bytes` that some backward rule reads.
    pub saved_activation_bytes: usize,
}

/// A snapshot of the graph behind a var, inputs before the ops that read them.
#[derive(Clone, Debug, Serialize)]
pub struct Graph {
    pub nodes: Vec<GraphNode>,
    pub memory: MemorySummary,
}

impl Var {
    /// The graph this var was computed by (every node reachable through recorded ops).
    pub fn graph(&self) -> Graph {
        let vars = all_nodes(self);
        let nodes = vars.iter().map(describe).collect();
        Graph { nodes, memory: ledger(&vars) }
    }
}

impl Graph {
    /// Graphviz DOT: one box per node (op, shape, bytes saved), edges from inputs to ops;
    /// parameters blue, constants grey. Render with `dot -Tsvg`.
    pub fn to_dot(&self) -> String {
        let mut s = String::from("digraph autograd {\n  node [shape=box, style=filled, fontname=\"monospace\"];\n");
        for n in &self.nodes {
            let title = match (&n.name, n.op.as_str()) {
                (Some(name), "leaf") => name.clone(),
                (Some(name), op) => format!("{op} ({name})"),
                (None, "leaf") if n.requires_grad => "parameter".into(),
                (None, "leaf") => "constant".into(),
                (None, op) => op.to_string(),
            };
            let shape = format!("{:?}", Shape::from(n.shape.clone()));
            let colour = match (n.op.as_str(), n.requires_grad) {
                ("leaf", true) => "lightblue",
                ("leaf", false) => "lightgrey",
                _ => "lightyellow",
            };
            let saved =
                if n.saved_bytes > 0 { format!("\\nsaved {}", human_bytes(n.saved_bytes)) } else { String::new() };
            let label = format!("{} #{}\\n{shape} {}{saved}", title.replace('"', "'"), n.id, n.dtype);
            let _ = writeln!(s, "  n{} [label=\"{label}\", fillcolor={colour}];", n.id);
            for input in &n.inputs {
                let _ = writeln!(s, "  n{input} -> n{};", n.id);
            }
        }
        let m = &self.memory;
        let _ = writeln!(
            s,
            "  label=\"parameters {}, inputs {}, activations {} (read by backward {})\";",
            human_bytes(m.parameter_bytes),
            human_bytes(m.input_bytes),
            human_bytes(m.activation_bytes),
            human_bytes(m.saved_activation_bytes)
        );
        s.push_str("}\n");
        s
    }

    /// The nodes and the memory summary as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the graph holds only plain data")
    }

    /// A one-line-per-category report of what the graph holds.
    pub fn memory_report(&self) -> String {
        let m = &self.memory;
        format!(
            "nodes {}\nparameters {}\ninputs {}\nactivations {} (read by backward {})\n",
            self.nodes.len(),
            human_bytes(m.parameter_bytes),
            human_bytes(m.input_bytes),
            human_bytes(m.activation_bytes),
            human_bytes(m.saved_activation_bytes)
        )
    }
}

/// Every node reachable from `root`, constants included, inputs first (iterative DFS).
fn all_nodes(root: &Var) -> Vec<Var> {
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![(root.clone(), false)];
    while let Some((var, expanded)) = stack.pop() {
        if expanded {
            order.push(var);
            continue;
        }
        if !seen.insert(var.id()) {
            continue;
        }
        stack.push((var.clone(), true));
        if let Some(op) = var.op() {
            // Reversed so inputs come out in argument order.
            for input in op.inputs().into_iter().rev() {
                if !seen.contains(&input.id()) {
                    stack.push((input.clone(), false));
                }
            }
        }
    }
    order
}

fn describe(var: &Var) -> GraphNode {
    let value = var.value();
    let saved = var.op().map(|op| op.saved(&value)).unwrap_or_default();
    GraphNode {
        id: var.id().0,
        op: var.op_name(),
        name: var.name().map(str::to_string),
        shape: value.dims().to_vec(),
        dtype: value.dtype().to_string(),
        requires_grad: var.requires_grad(),
        inputs: var.op().map(|op| op.inputs().iter().map(|v| v.id().0).collect()).unwrap_or_default(),
        value_bytes: tensor_bytes(&value),
        saved_bytes: saved.iter().map(tensor_bytes).sum(),
    }
}

/// Bytes a tensor's elements occupy in its buffer: a broadcast (stride-0) view counts only
/// what it reads, not its logical size.
fn tensor_bytes(t: &Tensor) -> usize {
    let reach = t.layout().storage_extent().saturating_sub(t.layout().offset());
    t.dtype().bytes_for(t.numel().min(reach))
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Activation,
    SavedActivation,
    Input,
    Parameter,
}

/// Sums bytes per kind over distinct buffers: tensors sharing storage form one group, sized by
/// its largest member and classed by its strongest kind (a view of a parameter is the parameter).
fn ledger(vars: &[Var]) -> MemorySummary {
    let mut entries: Vec<(Tensor, Kind)> = Vec::new();
    for var in vars {
        let value = var.value();
        match var.op() {
            None if var.requires_grad() => entries.push((value, Kind::Parameter)),
            None => entries.push((value, Kind::Input)),
            Some(op) => {
                entries.extend(op.saved(&value).into_iter().map(|t| (t, Kind::SavedActivation)));
                entries.push((value, Kind::Activation));
            }
        }
    }
    let mut groups: Vec<(Tensor, usize, Kind)> = Vec::new();
    for (t, kind) in entries {
        let bytes = tensor_bytes(&t);
        match groups.iter_mut().find(|(g, _, _)| g.shares_storage_with(&t)) {
            Some(group) => {
                group.1 = group.1.max(bytes);
                group.2 = group.2.max(kind);
            }
            None => groups.push((t, bytes, kind)),
        }
    }
    let mut m = MemorySummary::default();
    for (_, bytes, kind) in groups {
        match kind {
            Kind::Parameter => m.parameter_bytes += bytes,
            Kind::Input => m.input_bytes += bytes,
            Kind::SavedActivation => {
                (m.activation_bytes, m.saved_activation_bytes) =
                    (m.activation_bytes + bytes, m.saved_activation_bytes + bytes)
            }
            Kind::Activation => m.activation_bytes += bytes,
        }
    }
    m
}

/// `1536` -> `"1.5 KiB"`.
pub fn human_bytes(bytes: usize) -> String {
    let units = ["B", "KiB", "MiB", "GiB"];
    let (mut value, mut unit) = (bytes as f64, 0);
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}
