//! `dflow dag` and the plan printed by `dflow check`.

use dflow_engine::ports::OUT;
use dflow_engine::{Partitioning, Plan};

fn partitioning(p: &Partitioning) -> String {
    match p {
        Partitioning::Source => "source".into(),
        Partitioning::PerPartition { port } => format!("per-partition of {port}"),
        Partitioning::Fold { port } => format!("incremental fold over {port}"),
        Partitioning::Global => "global".into(),
    }
}

/// Nodes in topological order with their inputs (and, with `types`, the
/// type of every output port).
pub fn plan_text(plan: &Plan, types: bool) -> String {
    let mut s = format!("pipeline {} ({} nodes)\n", plan.spec.name, plan.nodes.len());
    for &i in &plan.order {
        let n = &plan.nodes[i];
        s.push_str(&format!(
            "{} [{}, {}]\n",
            n.id,
            n.op_name,
            partitioning(&n.partitioning)
        ));
        for e in &n.inputs {
            s.push_str(&format!(
                "    <- {}: {}.{}\n",
                e.port, plan.nodes[e.from].id, e.from_port
            ));
        }
        if types {
            for (port, ty) in &n.outputs {
                s.push_str(&format!("    -> {port}: {}\n", ty.describe()));
            }
        }
    }
    s
}

fn edge_label(port: &str, from_port: &str) -> String {
    if from_port == OUT {
        port.to_string()
    } else {
        format!("{from_port} -> {port}")
    }
}

pub fn dot(plan: &Plan) -> String {
    let mut s = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box];\n",
        plan.spec.name
    );
    for &i in &plan.order {
        let n = &plan.nodes[i];
        s.push_str(&format!(
            "  \"{}\" [label=\"{}\\n({})\"];\n",
            n.id, n.id, n.op_name
        ));
    }
    for &i in &plan.order {
        let n = &plan.nodes[i];
        for e in &n.inputs {
            s.push_str(&format!(
                "  \"{}\" -> \"{}\" [label=\"{}\"];\n",
                plan.nodes[e.from].id,
                n.id,
                edge_label(&e.port, &e.from_port)
            ));
        }
    }
    s.push_str("}\n");
    s
}

pub fn mermaid(plan: &Plan) -> String {
    let mut s = String::from("flowchart LR\n");
    for &i in &plan.order {
        let n = &plan.nodes[i];
        s.push_str(&format!("  {}[\"{}<br/>({})\"]\n", n.id, n.id, n.op_name));
    }
    for &i in &plan.order {
        let n = &plan.nodes[i];
        for e in &n.inputs {
            s.push_str(&format!(
                "  {} -->|{}| {}\n",
                plan.nodes[e.from].id,
                edge_label(&e.port, &e.from_port),
                n.id
            ));
        }
    }
    s
}
