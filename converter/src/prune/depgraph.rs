//! The dependency graph of structural pruning: which channels of which tensors must go
//! together.
//!
//! Every convolution or linear layer creates one *atom* per output channel. Atoms flow
//! along the channel axis (axis 1: NCHW, or `[N, features]`) of the values they reach:
//! element-wise ops and pooling pass them through, Concat joins the lists, a depthwise
//! convolution keeps its input's atoms, Flatten repeats each atom over its spatial block.
//! Where two values meet element-wise (a residual Add, an SE gate's Mul), their atoms are
//! unified position by position: they are one channel and can only be removed together.
//! A *class* is a set of unified atoms; removing a class removes the matching slices of
//! every weight, bias, BatchNorm parameter and per-channel constant it touches.
//!
//! Where the mapping of channels is unknown or removal would change the result (graph
//! inputs and outputs, Softmax or reductions over channels, Transpose, general Reshape,
//! grouped convolution, ...), the atoms are *blocked* with the reason.

use lopper_runtime::graph::Op as Rt;

use crate::ir::{Graph, Op, ValueId};

/// Index of a class in [`DepGraph::classes`].
pub type ClassId = usize;

/// One removable channel: a set of unified atoms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Class {
    /// (node, output channel) of every layer whose output channel belongs here.
    pub members: Vec<(usize, usize)>,
    /// Why this channel cannot be removed, if it cannot.
    pub blocked: Option<String>,
}

/// Layers whose output channels are tied together (e.g. every convolution feeding one
/// chain of residual additions), with their channels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Producing layers (node indices), in graph order.
    pub layers: Vec<usize>,
    /// The group's channels.
    pub classes: Vec<ClassId>,
}

/// Channel dependencies of a graph.
#[derive(Clone, Debug)]
pub struct DepGraph {
    /// For each value, the class of every position on its channel axis (axis 1), or `None`
    /// for values without a channel axis that pruning touches (constants, scalars).
    pub channels: Vec<Option<Vec<ClassId>>>,
    /// Every class.
    pub classes: Vec<Class>,
    /// Every group, in the order of its first layer.
    pub groups: Vec<Group>,
}

impl DepGraph {
    /// The group whose layers include `node`.
    pub fn group_of(&self, node: usize) -> Option<usize> {
        self.groups.iter().position(|g| g.layers.contains(&node))
    }
}

/// Union-find over atoms, with the first blocking reason seen per atom.
struct Atoms {
    parent: Vec<usize>,
    producer: Vec<Option<(usize, usize)>>,
    blocked: Vec<Option<String>>,
}

impl Atoms {
    fn new_atoms(
        &mut self,
        count: usize,
        producer: Option<usize>,
        blocked: Option<&str>,
    ) -> Vec<usize> {
        (0..count)
            .map(|c| {
                self.parent.push(self.parent.len());
                self.producer.push(producer.map(|p| (p, c)));
                self.blocked.push(blocked.map(str::to_string));
                self.parent.len() - 1
            })
            .collect()
    }

    fn find(&mut self, a: usize) -> usize {
        let mut r = a;
        while self.parent[r] != r {
            r = self.parent[r];
        }
        let mut a = a;
        while self.parent[a] != r {
            let next = self.parent[a];
            self.parent[a] = r;
            a = next;
        }
        r
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[rb] = ra;
            if self.blocked[ra].is_none() {
                self.blocked[ra] = self.blocked[rb].take();
            }
        }
    }

    fn block(&mut self, list: &[usize], reason: &str) {
        for &a in list {
            let r = self.find(a);
            if self.blocked[r].is_none() {
                self.blocked[r] = Some(reason.to_string());
            }
        }
    }
}

/// Channel count of a value with a channel axis.
fn channels(graph: &Graph, v: ValueId) -> Option<usize> {
    let s = graph.shape(v);
    (s.len() >= 2 && graph.constant_of(v).is_none()).then(|| s[1])
}

/// Builds the dependency graph of `graph`.
pub fn build(graph: &Graph) -> DepGraph {
    let mut atoms = Atoms {
        parent: Vec::new(),
        producer: Vec::new(),
        blocked: Vec::new(),
    };
    let mut of: Vec<Option<Vec<usize>>> = vec![None; graph.values.len()];
    for &v in &graph.inputs {
        if let Some(c) = channels(graph, v) {
            of[v] = Some(atoms.new_atoms(c, None, Some("a graph input's channels are fixed")));
        }
    }
    for (n, node) in graph.nodes.iter().enumerate() {
        let out = node.outputs[0];
        let input = |i: usize| node.inputs.get(i).and_then(|&v| of[v].clone());
        let constant = |i: usize| {
            node.inputs
                .get(i)
                .is_none_or(|&v| graph.constant_of(v).is_some())
        };
        let out_channels = channels(graph, out);
        // Blocks the channels of every activation input and gives the output new, blocked
        // atoms: the default for anything whose channel mapping is not known.
        let opaque = |atoms: &mut Atoms, reason: &str| {
            for &v in &node.inputs {
                if let Some(list) = &of[v] {
                    atoms.block(list, reason);
                }
            }
            out_channels.map(|c| atoms.new_atoms(c, None, Some(reason)))
        };
        let result = match &node.op {
            Op::Runtime(Rt::Conv2d(c)) => {
                let in_channels = graph.shape(node.inputs[0])[1];
                let out_c = out_channels.unwrap_or(0);
                if !constant(1) || !constant(2) {
                    opaque(&mut atoms, "weights computed at run time")
                } else if c.groups == 1 {
                    Some(atoms.new_atoms(out_c, Some(n), None))
                } else if c.groups == in_channels && out_c == in_channels {
                    // Depthwise: output channel i is input channel i filtered.
                    input(0)
                        .or_else(|| opaque(&mut atoms, "depthwise convolution of an unknown input"))
                } else {
                    opaque(&mut atoms, "grouped convolution")
                }
            }
            Op::Runtime(Rt::Linear) => {
                let rank2 = graph.shape(node.inputs[0]).len() == 2;
                if !constant(1) || !constant(2) {
                    opaque(&mut atoms, "weights computed at run time")
                } else if rank2 {
                    out_channels.map(|c| atoms.new_atoms(c, Some(n), None))
                } else {
                    opaque(&mut atoms, "linear layer on a tensor of rank above 2")
                }
            }
            Op::BatchNorm { .. }
            | Op::Runtime(Rt::Unary | Rt::Pool2d(_) | Rt::GlobalAveragePool | Rt::Resize(_)) => {
                input(0)
            }
            Op::Runtime(Rt::Binary(_)) => binary(graph, node, &mut of, &mut atoms, out_channels),
            Op::Runtime(Rt::Concat { axis: 1 }) => {
                let lists: Option<Vec<Vec<usize>>> =
                    node.inputs.iter().map(|&v| of[v].clone()).collect();
                match lists {
                    Some(lists) => Some(lists.concat()),
                    None => opaque(&mut atoms, "concatenation with a constant"),
                }
            }
            Op::Runtime(Rt::Reshape) => reshape(graph, node.inputs[0], out, input(0))
                .or_else(|| opaque(&mut atoms, "reshape that moves channels")),
            Op::Runtime(op) => {
                let reason = format!("{} does not keep channels apart", op.name());
                opaque(&mut atoms, &reason)
            }
        };
        of[out] = result.filter(|l| Some(l.len()) == out_channels);
        if of[out].is_none() {
            if let Some(c) = out_channels {
                of[out] = Some(atoms.new_atoms(c, None, Some("unknown channel mapping")));
            }
        }
    }
    for &v in &graph.outputs {
        if let Some(list) = of[v].clone() {
            atoms.block(&list, "a graph output's channels are fixed");
        }
    }
    resolve(graph, atoms, of)
}

/// Element-wise binary: activations of equal channel count are unified; a constant or a
/// single broadcast channel leaves the other side's channels as they are.
fn binary(
    graph: &Graph,
    node: &crate::ir::Node,
    of: &mut [Option<Vec<usize>>],
    atoms: &mut Atoms,
    out_channels: Option<usize>,
) -> Option<Vec<usize>> {
    let (a, b) = (node.inputs[0], node.inputs[1]);
    match (of[a].clone(), of[b].clone()) {
        (Some(la), Some(lb)) if la.len() == lb.len() => {
            for (&x, &y) in la.iter().zip(&lb) {
                atoms.union(x, y);
            }
            Some(la)
        }
        (Some(la), Some(lb)) => {
            // One side broadcasts a single channel over the other.
            let (wide, narrow) = if la.len() > lb.len() {
                (la, lb)
            } else {
                (lb, la)
            };
            atoms.block(&narrow, "a broadcast single channel");
            Some(wide)
        }
        (Some(list), None) | (None, Some(list)) => {
            // A constant per-channel operand is sliced with the channels; a run-time value
            // without known channels that spans the channel axis pins them.
            let other = if of[a].is_some() { b } else { a };
            let rank = out_channels.map_or(0, |_| graph.shape(node.outputs[0]).len());
            let s = graph.shape(other);
            let spans = (s.len() + 1)
                .checked_sub(rank)
                .is_some_and(|axis| s[axis] != 1);
            if spans && graph.constant_of(other).is_none() {
                atoms.block(&list, "element-wise with a value of unknown channels");
            }
            Some(list)
        }
        (None, None) => None,
    }
}

/// Channel lists through a Reshape: `[N, C, H, W] -> [N, C*H*W]` repeats every channel
/// over its `H*W` block; `[N, C] <-> [N, C, 1, 1]` keeps them.
fn reshape(
    graph: &Graph,
    x: ValueId,
    out: ValueId,
    list: Option<Vec<usize>>,
) -> Option<Vec<usize>> {
    let list = list?;
    let (si, so) = (graph.shape(x), graph.shape(out));
    if si.first() != so.first() || si.len() < 2 || so.len() < 2 {
        return None;
    }
    let rest = |s: &[usize]| s[2..].iter().product::<usize>();
    if so.len() == 2 && so[1] == si[1] * rest(si) {
        let block = rest(si);
        return Some(
            list.iter()
                .flat_map(|&a| std::iter::repeat_n(a, block))
                .collect(),
        );
    }
    (si[1] == so[1] && rest(si) == 1 && rest(so) == 1).then_some(list)
}

/// Class ids for atom roots, created on first sight.
struct Classes {
    of_root: Vec<Option<ClassId>>,
    list: Vec<Class>,
}

impl Classes {
    fn get(&mut self, atoms: &mut Atoms, a: usize) -> ClassId {
        let r = atoms.find(a);
        if let Some(c) = self.of_root[r] {
            return c;
        }
        self.list.push(Class {
            members: Vec::new(),
            blocked: atoms.blocked[r].clone(),
        });
        self.of_root[r] = Some(self.list.len() - 1);
        self.list.len() - 1
    }
}

/// Turns atoms into classes and groups.
fn resolve(graph: &Graph, mut atoms: Atoms, of: Vec<Option<Vec<usize>>>) -> DepGraph {
    let mut cl = Classes {
        of_root: vec![None; atoms.parent.len()],
        list: Vec::new(),
    };
    for a in 0..atoms.parent.len() {
        let c = cl.get(&mut atoms, a);
        if let Some(p) = atoms.producer[a] {
            cl.list[c].members.push(p);
        }
    }
    let channels: Vec<Option<Vec<ClassId>>> = of
        .iter()
        .map(|l| {
            l.as_ref()
                .map(|l| l.iter().map(|&a| cl.get(&mut atoms, a)).collect())
        })
        .collect();
    let classes = cl.list;

    // Groups: layers connected through shared classes.
    let layers: Vec<usize> = (0..graph.nodes.len())
        .filter(|&n| classes.iter().any(|c| c.members.iter().any(|m| m.0 == n)))
        .collect();
    let mut group_of: Vec<Option<usize>> = vec![None; graph.nodes.len()];
    let mut groups: Vec<Group> = Vec::new();
    for &layer in &layers {
        if group_of[layer].is_some() {
            continue;
        }
        let g = groups.len();
        groups.push(Group {
            layers: Vec::new(),
            classes: Vec::new(),
        });
        let mut stack = vec![layer];
        group_of[layer] = Some(g);
        while let Some(l) = stack.pop() {
            groups[g].layers.push(l);
            for (c, class) in classes.iter().enumerate() {
                if !class.members.iter().any(|m| m.0 == l) {
                    continue;
                }
                if !groups[g].classes.contains(&c) {
                    groups[g].classes.push(c);
                }
                for &(other, _) in &class.members {
                    if group_of[other].is_none() {
                        group_of[other] = Some(g);
                        stack.push(other);
                    }
                }
            }
        }
        groups[g].layers.sort_unstable();
        groups[g].classes.sort_unstable();
    }
    DepGraph {
        channels,
        classes,
        groups,
    }
}
