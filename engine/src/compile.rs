//! Compilation: a parsed pipeline becomes a [`Plan`] — operators built from
//! typed params, a petgraph DAG, and the Arrow type of every edge — or a list
//! of every error found, each with its span.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use miette::SourceSpan;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::Value;

use crate::diag::{CompileError, Diagnostics, did_you_mean};
use crate::error::Error;
use crate::operator::{InputKind, InputPorts, Operator, Partitioning, PlanContext, PortType};
use crate::ports::OUT;
use crate::registry::{BuildError, KeySelection, Registry};
use crate::spec::{NodeSpec, PipelineSpec, Resources};

/// An edge: input `port` of this node reads `from_port` of node `from`.
#[derive(Clone, Debug)]
pub struct Edge {
    /// The input port of this node.
    pub port: String,
    /// The node read from, as an index into `Plan::nodes`.
    pub from: usize,
    /// The output port of `from` that is read.
    pub from_port: String,
}

/// A node of a compiled pipeline: what a run needs to plan and run it.
pub struct PlanNode {
    /// The node id.
    pub id: String,
    /// The operator name given in `op:`.
    pub op_name: String,
    /// The operator, built from the params.
    pub op: Arc<dyn Operator>,
    /// Canonical params: typed, defaults filled (what the lock file keeps).
    pub params: Value,
    /// The params cache keys use: `params` less the operator's
    /// [`KeySelection`].
    pub key_params: Value,
    /// Which params stay out of keys (and of `status`'s comparison).
    pub selection: KeySelection,
    /// Sorted by port name.
    pub inputs: Vec<Edge>,
    /// The type of each output port, by port name.
    pub outputs: BTreeMap<String, PortType>,
    /// How the operator's output partitions depend on its inputs.
    pub partitioning: Partitioning,
    /// The node's execution settings (not part of any key).
    pub resources: Resources,
    /// The context the operator was built with.
    pub ctx: PlanContext,
}

/// A compiled pipeline.
pub struct Plan {
    /// The parsed pipeline file.
    pub spec: PipelineSpec,
    /// In file order; `graph` node weights index into this.
    pub nodes: Vec<PlanNode>,
    /// The DAG: one graph node per plan node, an edge per input, weighted by input port.
    pub graph: DiGraph<usize, String>,
    /// Topological order (indices into `nodes`).
    pub order: Vec<usize>,
}

impl Plan {
    /// The index in `nodes` of the node with id `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// Indices of the nodes `idx` reads from.
    pub fn upstream(&self, idx: usize) -> Vec<usize> {
        let mut v: Vec<usize> = self.nodes[idx].inputs.iter().map(|e| e.from).collect();
        v.sort();
        v.dedup();
        v
    }

    /// `idx` and every node it depends on, transitively.
    pub fn ancestors(&self, idx: usize) -> Vec<usize> {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack = vec![idx];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            stack.extend(self.upstream(i));
        }
        (0..self.nodes.len()).filter(|i| seen[*i]).collect()
    }

    /// Indices of nodes that read from `idx`.
    pub fn downstream(&self, idx: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.nodes.len())
            .filter(|&j| self.nodes[j].inputs.iter().any(|e| e.from == idx))
            .collect();
        v.dedup();
        v
    }
}

/// A node's operator as the registry built it (`None`: the op is unknown or
/// its params are wrong, already reported).
type Resolved = Option<crate::registry::Built>;

/// A node's input edges, each with the span of its `inputs:` value.
type BoundInputs = Vec<(Edge, SourceSpan)>;

/// Compiles a pipeline, collecting every error. The phases run in order,
/// each adding what it finds to one list of diagnostics, so that a file
/// with several mistakes reports them all:
///
/// 1. [`resolve_ops`]: each node's operator, built from its typed params;
/// 2. [`bind_inputs`]: `inputs:` become edges, checked against the ports;
/// 3. [`order_nodes`]: the DAG, its cycles and a topological order;
/// 4. [`check_types`]: each output port's type, checked along every edge;
/// 5. [`plan_nodes`]: what the runs need of each node, its key params
///    among them.
pub fn compile(
    mut spec: PipelineSpec,
    registry: &Registry,
    runtime: tokio::runtime::Handle,
) -> Result<Plan, Diagnostics> {
    let mut diags = std::mem::take(&mut spec.errors);
    let contexts = Contexts {
        base_dir: spec.base_dir.clone(),
        source_root: spec.source_root.clone(),
        runtime,
        udfs: Arc::new(registry.udfs().to_vec()),
    };
    let resolved = resolve_ops(&spec, registry, &contexts, &mut diags);
    let edges = bind_inputs(&spec, &resolved, &mut diags);
    let (graph, order) = order_nodes(&spec, &edges, &mut diags);
    let outputs = check_types(&spec, &resolved, &edges, &order, &contexts, &mut diags);
    diags.into_result()?;
    let nodes = plan_nodes(&spec, resolved, edges, outputs, &contexts);
    Ok(Plan {
        spec,
        nodes,
        graph,
        order,
    })
}

/// What every node's [`PlanContext`] shares.
struct Contexts {
    base_dir: std::path::PathBuf,
    source_root: Option<crate::storage::ObjectUrl>,
    runtime: tokio::runtime::Handle,
    udfs: Arc<Vec<datafusion::logical_expr::ScalarUDF>>,
}

impl Contexts {
    fn for_node(&self, node: &str) -> PlanContext {
        PlanContext {
            base_dir: self.base_dir.clone(),
            source_root: self.source_root.clone(),
            node: node.to_string(),
            runtime: self.runtime.clone(),
            udfs: self.udfs.clone(),
        }
    }
}

/// Phase 1: each node's operator, built from its params by the registry.
/// Unknown ops and bad params become diagnostics.
fn resolve_ops(
    spec: &PipelineSpec,
    registry: &Registry,
    contexts: &Contexts,
    diags: &mut Diagnostics,
) -> Vec<Resolved> {
    let src = &spec.source;
    spec.nodes
        .iter()
        .map(|node| match registry.op(&node.op.value) {
            None => {
                let names: Vec<&str> = registry.op_names().collect();
                let mut help = format!("the operators are: {}", names.join(", "));
                if let Some(s) = did_you_mean(&node.op.value, names.iter().copied()) {
                    help = format!("did you mean `{s}`? {help}");
                }
                diags.push(
                    CompileError::new("DF1002", format!("unknown op `{}`", node.op.value))
                        .at(src, node.op.span, "no operator of this name")
                        .with_help(help),
                );
                None
            }
            Some(info) => match info.build(node.params.clone(), &contexts.for_node(&node.id.value))
            {
                Ok(b) => Some(b),
                Err(e) => {
                    diags.push(param_error(spec, node, e));
                    None
                }
            },
        })
        .collect()
}

/// Phase 2: each node's `inputs:` as edges. Unknown nodes and ports,
/// missing required inputs and a partitioned op without an input to
/// partition by become diagnostics.
fn bind_inputs(
    spec: &PipelineSpec,
    resolved: &[Resolved],
    diags: &mut Diagnostics,
) -> Vec<BoundInputs> {
    let src = &spec.source;
    let ids: HashMap<&str, usize> = spec
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.value.as_str(), i))
        .collect();
    let mut edges: Vec<BoundInputs> = vec![Vec::new(); spec.nodes.len()];
    for (i, node) in spec.nodes.iter().enumerate() {
        let ports = resolved[i].as_ref().map(|b| b.op.input_ports());
        for (port, target) in &node.inputs {
            let (target_node, target_port) = match target.value.split_once('.') {
                Some((n, p)) => (n, p),
                None => (target.value.as_str(), OUT),
            };
            match ids.get(target_node) {
                None => {
                    let mut help =
                        "inputs name another node of this pipeline, as `node` or `node.port`"
                            .to_string();
                    if let Some(s) = did_you_mean(target_node, ids.keys().copied()) {
                        help = format!("did you mean `{s}`? {help}");
                    }
                    diags.push(
                        CompileError::new("DF2001", format!("unknown node `{target_node}`"))
                            .at(src, target.span, "no node of this id")
                            .with_help(help),
                    );
                }
                Some(&from) => edges[i].push((
                    Edge {
                        port: port.value.clone(),
                        from,
                        from_port: target_port.to_string(),
                    },
                    target.span,
                )),
            }
            if let Some(InputPorts::Fixed(ports)) = &ports
                && !ports.iter().any(|p| p.name == port.value)
            {
                let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
                let mut help = format!(
                    "`{}` takes the input ports: {}",
                    node.op.value,
                    if names.is_empty() {
                        "(none)".to_string()
                    } else {
                        names.join(", ")
                    }
                );
                if let Some(s) = did_you_mean(&port.value, names.iter().copied()) {
                    help = format!("did you mean `{s}`? {help}");
                }
                diags.push(
                    CompileError::new(
                        "DF2002",
                        format!("unknown port `{}` for op `{}`", port.value, node.op.value),
                    )
                    .at(src, port.span, "no input port of this name")
                    .with_help(help),
                );
            }
        }
        if let Some(InputPorts::Fixed(ports)) = &ports {
            for p in ports.iter().filter(|p| p.required) {
                if !node.inputs.iter().any(|(port, _)| port.value == p.name) {
                    diags.push(
                        CompileError::new(
                            "DF2005",
                            format!("node `{}` is missing its input `{}`", node.id.value, p.name),
                        )
                        .at(src, node.id.span, "this node")
                        .with_help(format!("add `inputs: {{ {}: <node> }}`", p.name)),
                    );
                }
            }
        }
        if let Some(b) = &resolved[i]
            && let Some(port) = b.op.partitioning().port()
            && !node.inputs.iter().any(|(p, _)| p.value == port)
            && !matches!(b.op.input_ports(), InputPorts::Fixed(_))
        {
            diags.push(
                CompileError::new(
                    "DF2005",
                    format!("node `{}` has no input to partition by", node.id.value),
                )
                .at(src, node.id.span, "this node")
                .with_help("give it an input port"),
            );
        }
    }
    edges
}

/// Phase 3: the graph of the edges and a topological order of its nodes;
/// each cycle is one diagnostic with its whole path (and the order is
/// empty).
fn order_nodes(
    spec: &PipelineSpec,
    edges: &[BoundInputs],
    diags: &mut Diagnostics,
) -> (DiGraph<usize, String>, Vec<usize>) {
    let src = &spec.source;
    let mut graph = DiGraph::<usize, String>::new();
    let gidx: Vec<NodeIndex> = (0..spec.nodes.len()).map(|i| graph.add_node(i)).collect();
    for (to, es) in edges.iter().enumerate() {
        for (e, _) in es {
            graph.add_edge(gidx[e.from], gidx[to], e.port.clone());
        }
    }
    let mut cyclic = false;
    for scc in tarjan_scc(&graph) {
        let self_loop = scc.len() == 1 && graph.contains_edge(scc[0], scc[0]);
        if scc.len() < 2 && !self_loop {
            continue;
        }
        cyclic = true;
        let members: Vec<usize> = scc.iter().map(|n| graph[*n]).collect();
        let path = cycle_path(edges, &members);
        let names: Vec<&str> = path
            .iter()
            .map(|&i| spec.nodes[i].id.value.as_str())
            .collect();
        let mut err = CompileError::new(
            "DF2003",
            format!("cycle in the pipeline: {}", names.join(" -> ")),
        )
        .with_help("a pipeline is a DAG: remove one of these inputs to break the cycle");
        for w in path.windows(2) {
            let (from, to) = (w[0], w[1]);
            if let Some((_, span)) = edges[to].iter().find(|(e, _)| e.from == from) {
                err = err.at(
                    src,
                    *span,
                    format!(
                        "`{}` reads `{}`",
                        spec.nodes[to].id.value, spec.nodes[from].id.value
                    ),
                );
            }
        }
        diags.push(err);
    }
    let order: Vec<usize> = if cyclic {
        Vec::new()
    } else {
        petgraph::algo::toposort(&graph, None)
            .map(|v| v.into_iter().map(|n| graph[n]).collect())
            .unwrap_or_default()
    };
    (graph, order)
}

/// Phase 4: in topological order, each node's output ports given the
/// types on its inputs, checked against what its input ports accept.
fn check_types(
    spec: &PipelineSpec,
    resolved: &[Resolved],
    edges: &[BoundInputs],
    order: &[usize],
    contexts: &Contexts,
    diags: &mut Diagnostics,
) -> Vec<Option<BTreeMap<String, PortType>>> {
    let src = &spec.source;
    let mut outputs: Vec<Option<BTreeMap<String, PortType>>> = vec![None; spec.nodes.len()];
    for &i in order {
        let node = &spec.nodes[i];
        let Some(built) = &resolved[i] else {
            continue;
        };
        let mut input_types = BTreeMap::new();
        let mut ok = true;
        for (edge, span) in &edges[i] {
            let Some(up) = &outputs[edge.from] else {
                ok = false;
                continue;
            };
            let up_id = &spec.nodes[edge.from].id.value;
            let Some(ty) = up.get(&edge.from_port) else {
                let names: Vec<&str> = up.keys().map(String::as_str).collect();
                let mut help = format!("`{up_id}` has the output ports: {}", names.join(", "));
                if let Some(s) = did_you_mean(&edge.from_port, names.iter().copied()) {
                    help = format!("did you mean `{up_id}.{s}`? {help}");
                }
                diags.push(
                    CompileError::new(
                        "DF2002",
                        format!("unknown port `{}` on node `{up_id}`", edge.from_port),
                    )
                    .at(src, *span, "no output port of this name")
                    .with_help(help),
                );
                ok = false;
                continue;
            };
            if let InputPorts::Fixed(ports) = built.op.input_ports()
                && let Some(want) = ports.iter().find(|p| p.name == edge.port)
                && let Some(problem) = type_problem(&want.kind, ty)
            {
                diags.push(
                    CompileError::new(
                        "DF2004",
                        format!(
                            "schema mismatch on input `{}` of `{}`: {problem}",
                            edge.port, node.id.value
                        ),
                    )
                    .at(src, *span, format!("`{up_id}.{}` is {}", edge.from_port, short(ty)))
                    .with_help(format!(
                        "`{}` needs {} on `{}`; select or cast the columns with an `op: sql` node in between",
                        node.op.value,
                        kind_text(&want.kind),
                        edge.port
                    )),
                );
                ok = false;
                continue;
            }
            if matches!(built.op.input_ports(), InputPorts::AnyTables)
                && matches!(ty, PortType::Artifact)
            {
                diags.push(
                    CompileError::new(
                        "DF2004",
                        format!(
                            "input `{}` of `{}` must be a table",
                            edge.port, node.id.value
                        ),
                    )
                    .at(
                        src,
                        *span,
                        format!("`{up_id}.{}` is an artifact", edge.from_port),
                    )
                    .with_help("SQL reads tables only"),
                );
                ok = false;
                continue;
            }
            input_types.insert(edge.port.clone(), ty.clone());
        }
        if !ok {
            continue;
        }
        match built
            .op
            .output_ports(&contexts.for_node(&node.id.value), &input_types)
        {
            Ok(o) => outputs[i] = Some(o),
            Err(e) => {
                let (code, label, help) = match &e {
                    Error::Data(_) | Error::Io(_) | Error::Context { .. } => (
                        "DF2006",
                        "while reading the input named here",
                        "check that the files exist and are readable; paths are relative to the pipeline file",
                    ),
                    _ => ("DF2007", "in these params", e.help()),
                };
                diags.push(
                    CompileError::new(code, format!("node `{}`: {e}", node.id.value))
                        .at(src, node.params_span, label)
                        .with_help(help),
                );
            }
        }
    }
    outputs
}

/// Phase 5: the plan's nodes, once every earlier phase succeeded: each
/// with its operator, canonical params and the params its cache keys use
/// ([`crate::registry::KeySelection`]), its sorted input edges and its
/// output types.
fn plan_nodes(
    spec: &PipelineSpec,
    resolved: Vec<Resolved>,
    edges: Vec<BoundInputs>,
    outputs: Vec<Option<BTreeMap<String, PortType>>>,
    contexts: &Contexts,
) -> Vec<PlanNode> {
    resolved
        .into_iter()
        .zip(edges)
        .zip(outputs)
        .zip(&spec.nodes)
        .filter_map(|(((built, es), out), node)| {
            let built = built?;
            let mut inputs: Vec<Edge> = es.into_iter().map(|(e, _)| e).collect();
            inputs.sort_by(|a, b| a.port.cmp(&b.port));
            Some(PlanNode {
                id: node.id.value.clone(),
                op_name: node.op.value.clone(),
                partitioning: built.op.partitioning(),
                key_params: built.selection.key_params(&built.params),
                selection: built.selection,
                op: built.op,
                params: built.params,
                inputs,
                outputs: out?,
                resources: node.resources.clone(),
                ctx: contexts.for_node(&node.id.value),
            })
        })
        .collect()
}

/// A cycle through `members` (one strongly connected component), as node
/// indices in data-flow order, first node repeated at the end.
fn cycle_path(edges: &[BoundInputs], members: &[usize]) -> Vec<usize> {
    let start = members.iter().copied().min().unwrap_or(0);
    // successors within the component: node -> nodes that read it
    let succ = |n: usize| -> Vec<usize> {
        let mut v: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&m| edges[m].iter().any(|(e, _)| e.from == n))
            .collect();
        v.sort();
        v
    };
    // breadth-first from start back to start
    let mut prev: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for s in succ(n) {
            if s == start {
                let mut path = vec![n];
                let mut cur = n;
                while cur != start {
                    cur = prev[&cur];
                    path.push(cur);
                }
                path.reverse();
                path.push(start);
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = prev.entry(s) {
                e.insert(n);
                queue.push_back(s);
            }
        }
    }
    vec![start, start]
}

fn type_problem(want: &InputKind, got: &PortType) -> Option<String> {
    match (want, got) {
        (InputKind::Artifact, PortType::Artifact) => None,
        (InputKind::Artifact, PortType::Table(_)) => {
            Some("expected an artifact, got a table".into())
        }
        (InputKind::AnyTable | InputKind::Table(_), PortType::Artifact) => {
            Some("expected a table, got an artifact".into())
        }
        (InputKind::AnyTable, PortType::Table(_)) => None,
        (InputKind::Table(need), PortType::Table(have)) => {
            let mut problems = Vec::new();
            for f in need.fields() {
                match have.field_with_name(f.name()) {
                    Err(_) => problems.push(format!(
                        "column `{}` ({}) is missing",
                        f.name(),
                        f.data_type()
                    )),
                    Ok(h) if h.data_type() != f.data_type() => problems.push(format!(
                        "column `{}` is {}, expected {}",
                        f.name(),
                        h.data_type(),
                        f.data_type()
                    )),
                    Ok(_) => {}
                }
            }
            (!problems.is_empty()).then(|| problems.join("; "))
        }
    }
}

fn short(ty: &PortType) -> String {
    match ty {
        PortType::Artifact => "an artifact".into(),
        PortType::Table(s) => format!(
            "a table ({})",
            s.fields()
                .iter()
                .map(|f| format!("{}: {}", f.name(), f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn kind_text(kind: &InputKind) -> String {
    match kind {
        InputKind::Artifact => "an artifact".into(),
        InputKind::AnyTable => "a table".into(),
        InputKind::Table(s) => format!(
            "columns {}",
            s.fields()
                .iter()
                .map(|f| format!("`{}` ({})", f.name(), f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Turns a params error into a diagnostic pointing at the offending key or
/// value.
fn param_error(spec: &PipelineSpec, node: &NodeSpec, e: BuildError) -> CompileError {
    let src = &spec.source;
    let op = &node.op.value;
    match e {
        BuildError::Invalid {
            pointer,
            message,
            help,
        } => {
            let span = pointer
                .and_then(|p| node.param_spans.values.get(&p).copied())
                .unwrap_or(node.params_span);
            CompileError::new("DF1010", format!("invalid value for `{op}`: {message}"))
                .at(src, span, "this value")
                .with_help(help.unwrap_or_else(|| format!("see `dflow ops {op}` for its params")))
        }
        BuildError::Params(err) => {
            let pointer = pointer_of(err.path());
            let msg = err.inner().to_string();
            let msg = strip_position(&msg);
            if let Some(field) = between(&msg, "unknown field `", "`") {
                let key_ptr = if pointer.ends_with(&format!("/{field}")) {
                    pointer.clone()
                } else {
                    format!("{pointer}/{field}")
                };
                let span = node
                    .param_spans
                    .keys
                    .get(&key_ptr)
                    .copied()
                    .unwrap_or(node.params_span);
                let expected: Vec<&str> = msg
                    .split_once("expected ")
                    .map(|(_, rest)| {
                        rest.split('`')
                            .enumerate()
                            .filter(|(i, _)| i % 2 == 1)
                            .map(|(_, s)| s)
                            .collect()
                    })
                    .unwrap_or_default();
                let mut help = if expected.is_empty() {
                    format!("`{op}` takes no params here")
                } else {
                    format!("`{op}` takes: {}", expected.join(", "))
                };
                if let Some(s) = did_you_mean(field, expected.iter().copied()) {
                    help = format!("did you mean `{s}`? {help}");
                }
                CompileError::new("DF1003", format!("unknown param `{field}` for op `{op}`"))
                    .at(src, span, "not a param of this op")
                    .with_help(help)
            } else if let Some(field) = between(&msg, "missing field `", "`") {
                let span = if !node.params_span.is_empty() {
                    node.params_span
                } else {
                    node.op.span
                };
                CompileError::new(
                    "DF1005",
                    format!("missing required param `{field}` for op `{op}`"),
                )
                .at(src, span, format!("`{field}` is not set"))
                .with_help(format!("add `{field}: ...` to the node's params"))
            } else {
                let span = node
                    .param_spans
                    .values
                    .get(&pointer)
                    .copied()
                    .unwrap_or(node.params_span);
                let name = pointer.trim_start_matches('/').replace('/', ".");
                CompileError::new(
                    "DF1004",
                    format!("wrong type for param `{name}` of op `{op}`"),
                )
                .at(src, span, msg.clone())
                .with_help(format!("see `dflow ops {op}` for the type of each param"))
            }
        }
    }
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => out.push_str(&format!("/{key}")),
            Segment::Enum { variant } => out.push_str(&format!("/{variant}")),
            Segment::Unknown => {}
        }
    }
    out
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &s[s.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

/// serde_json appends " at line X column Y" for text input; ours is a value.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(" column ") => msg[..i].to_string(),
        _ => msg.to_string(),
    }
}
