//! Layer pruning: whole layers leave the graph. A residual block `y = Add(s, f(s))` is
//! replaced by its shortcut `s`, and a shape-keeping convolution unit (Conv2d, optionally
//! followed by BatchNorm and an activation, with the same output shape as its input) is
//! replaced by its input.
//!
//! Importance is a weight-magnitude proxy: the mean `|w|` (L1) or `w^2` (L2) over the
//! block's convolution and linear weights, or seeded random scores. Output-based importance
//! (how much the network's outputs move when the block goes) needs calibration data and
//! comes with it.

use std::collections::{BTreeSet, HashMap, HashSet};

use lopper_runtime::graph::{Activation, BinaryKind, Op as Rt};

use super::criteria::{uniform, weight_scores, Criterion};
use super::{check_sparsity, PruneError, Result};
use crate::ir::{Graph, Op, ValueId};

/// What kind of layer a candidate is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// `y = Add(s, f)` where `f` is computed from `s` alone: removal makes `y` read `s`.
    Residual,
    /// Conv2d (groups 1, stride 1, output shape = input shape) with its BatchNorm and
    /// activation: removal makes its output read its input.
    Unit,
}

/// A layer that can be removed without changing any shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Residual block or shape-keeping unit.
    pub kind: LayerKind,
    /// Name of the defining node: the Add of a residual block, the Conv2d of a unit.
    pub name: String,
    /// Indices of every node the candidate covers, ascending (a residual block's Add
    /// included).
    pub nodes: Vec<usize>,
    /// The value that replaces `output`: the shortcut `s`, or the unit's input.
    pub input: ValueId,
    /// The value the candidate computes.
    pub output: ValueId,
    /// Activation fused on the residual Add, kept on the shortcut after removal
    /// (`Activation::None` for units).
    pub activation: Activation,
}

/// Producers and readers of every value.
struct Links {
    producer: Vec<Option<usize>>,
    readers: Vec<Vec<usize>>,
}

impl Links {
    fn new(graph: &Graph) -> Links {
        let mut producer = vec![None; graph.values.len()];
        for (n, node) in graph.nodes.iter().enumerate() {
            for &o in &node.outputs {
                if let Some(slot) = producer.get_mut(o) {
                    *slot = Some(n);
                }
            }
        }
        Links {
            producer,
            readers: graph.consumers(),
        }
    }

    /// The one node reading `v` when exactly one does and `v` is not a graph output.
    fn only_reader(&self, graph: &Graph, v: ValueId) -> Option<usize> {
        let readers = self.readers.get(v)?;
        let &first = readers.first()?;
        (readers.iter().all(|&r| r == first) && !graph.outputs.contains(&v)).then_some(first)
    }
}

/// A convolution or linear layer with constant weights: what importance is measured on.
fn has_weights(graph: &Graph, n: usize) -> bool {
    let node = &graph.nodes[n];
    matches!(node.op, Op::Runtime(Rt::Conv2d(_) | Rt::Linear))
        && node
            .inputs
            .get(1)
            .is_some_and(|&w| graph.constant_of(w).is_some())
}

/// Whether `v` is computed at run time from the graph's inputs (neither a graph input
/// nor a constant).
fn inner_activation(graph: &Graph, v: ValueId) -> bool {
    !graph.inputs.contains(&v) && graph.constant_of(v).is_none()
}

/// The residual block ending at Add node `add`, trying each operand as the shortcut.
fn residual(graph: &Graph, links: &Links, add: usize) -> Option<Candidate> {
    let node = &graph.nodes[add];
    if node.op != Op::Runtime(Rt::Binary(BinaryKind::Add)) {
        return None;
    }
    let (&[a, b], &[y]) = (node.inputs.as_slice(), node.outputs.as_slice()) else {
        return None;
    };
    if graph.outputs.contains(&y) {
        return None;
    }
    [(a, b), (b, a)]
        .into_iter()
        .find_map(|(s, f)| residual_with(graph, links, add, s, f))
}

/// The block when `s` is the shortcut and `f` the branch of Add node `add`: every node
/// between `s` and `f`, provided they read nothing from outside but `s` and constants and
/// nothing outside reads them.
fn residual_with(
    graph: &Graph,
    links: &Links,
    add: usize,
    s: ValueId,
    f: ValueId,
) -> Option<Candidate> {
    let y = graph.nodes[add].outputs[0];
    if s == f
        || !inner_activation(graph, s)
        || !inner_activation(graph, f)
        || graph.shape(s) != graph.shape(f)
        || graph.shape(y) != graph.shape(s)
    {
        return None;
    }
    let mut block = BTreeSet::new();
    let mut pending = vec![f];
    while let Some(v) = pending.pop() {
        if v == s || graph.constant_of(v).is_some() {
            continue;
        }
        // A graph input (no producer) is an external input: not a block.
        let p = links.producer.get(v).copied().flatten()?;
        if block.insert(p) {
            pending.extend(&graph.nodes[p].inputs);
        }
    }
    for &n in &block {
        for &o in &graph.nodes[n].outputs {
            let private = links.readers[o]
                .iter()
                .all(|&r| block.contains(&r) || (r == add && o == f));
            if !private || graph.outputs.contains(&o) {
                return None;
            }
        }
    }
    if !block.iter().any(|&n| has_weights(graph, n)) {
        return None;
    }
    block.insert(add);
    Some(Candidate {
        kind: LayerKind::Residual,
        name: graph.nodes[add].name.clone(),
        nodes: block.into_iter().collect(),
        input: s,
        output: y,
        activation: graph.nodes[add].activation,
    })
}

/// The shape-keeping unit starting at Conv2d node `conv`: the convolution, then the
/// BatchNorm and the activation that alone read its result.
fn unit(graph: &Graph, links: &Links, conv: usize) -> Option<Candidate> {
    let node = &graph.nodes[conv];
    let Op::Runtime(Rt::Conv2d(attrs)) = &node.op else {
        return None;
    };
    let x = *node.inputs.first()?;
    let constant_bias = node
        .inputs
        .get(2)
        .is_none_or(|&b| graph.constant_of(b).is_some());
    if attrs.groups != 1
        || attrs.stride != [1, 1]
        || !has_weights(graph, conv)
        || !constant_bias
        || !inner_activation(graph, x)
    {
        return None;
    }
    let mut nodes = vec![conv];
    let mut out = *node.outputs.first()?;
    let bn = links.only_reader(graph, out).filter(|&n| {
        let bn = &graph.nodes[n];
        matches!(bn.op, Op::BatchNorm { .. })
            && bn.inputs.first() == Some(&out)
            && bn.inputs[1..]
                .iter()
                .all(|&p| graph.constant_of(p).is_some())
    });
    if let Some(n) = bn {
        nodes.push(n);
        out = *graph.nodes[n].outputs.first()?;
    }
    let act = links
        .only_reader(graph, out)
        .filter(|&n| graph.nodes[n].op == Op::Runtime(Rt::Unary));
    if let Some(n) = act {
        nodes.push(n);
        out = *graph.nodes[n].outputs.first()?;
    }
    if graph.outputs.contains(&out) || graph.shape(out) != graph.shape(x) {
        return None;
    }
    Some(Candidate {
        kind: LayerKind::Unit,
        name: node.name.clone(),
        nodes,
        input: x,
        output: out,
        activation: Activation::None,
    })
}

/// Every removable layer of `graph`, in node order: residual blocks whose branch reads
/// only the shortcut (projection shortcuts are not candidates) and shape-keeping
/// convolution units. Nothing that reads a graph input or writes a graph output is a
/// candidate, and a residual branch must hold at least one weight layer. Candidates may
/// overlap (a unit inside a residual block).
pub fn layer_candidates(graph: &Graph) -> Vec<Candidate> {
    let links = Links::new(graph);
    (0..graph.nodes.len())
        .filter_map(|n| residual(graph, &links, n).or_else(|| unit(graph, &links, n)))
        .collect()
}

/// Removes the candidates (found by [`layer_candidates`] on this very graph): readers of
/// each candidate's output read its input instead, a residual Add with a fused activation
/// becomes a `Unary` node with that activation on the shortcut, and the covered nodes
/// are deleted. Overlapping candidates may be removed together.
pub fn remove_layers(graph: &mut Graph, remove: &[Candidate]) -> Result<()> {
    let current = layer_candidates(graph);
    if let Some(stale) = remove.iter().find(|c| !current.contains(c)) {
        return Err(PruneError::NotPrunable {
            layer: stale.name.clone(),
            reason: "it is not a removable layer of this graph (find candidates again after \
                     the graph changes)"
                .into(),
        });
    }
    let covered: HashSet<usize> = remove.iter().flat_map(|c| c.nodes.clone()).collect();
    // Residual Adds that stay as an activation of the shortcut: not inside another block.
    let mut unary: HashMap<usize, ValueId> = HashMap::new();
    let mut alias: HashMap<ValueId, ValueId> = HashMap::new();
    for c in remove {
        let head = graph
            .nodes
            .iter()
            .position(|n| n.outputs.contains(&c.output));
        let nested = |h: usize| {
            remove
                .iter()
                .any(|o| o.output != c.output && o.nodes.contains(&h))
        };
        match head {
            Some(h) if c.activation != Activation::None && !nested(h) => {
                unary.insert(h, c.input);
            }
            _ => {
                alias.insert(c.output, c.input);
            }
        }
    }
    let resolve = |mut v: ValueId| {
        while let Some(&to) = alias.get(&v) {
            v = to;
        }
        v
    };
    let nodes = std::mem::take(&mut graph.nodes);
    for (n, mut node) in nodes.into_iter().enumerate() {
        if let Some(&s) = unary.get(&n) {
            node.op = Op::Runtime(Rt::Unary);
            node.inputs = vec![s];
        } else if covered.contains(&n) {
            continue;
        }
        for v in &mut node.inputs {
            *v = resolve(*v);
        }
        graph.nodes.push(node);
    }
    for v in &mut graph.outputs {
        *v = resolve(*v);
    }
    Ok(())
}

/// Importance of each candidate, higher matters more: the mean `|w|` (L1) or `w^2` (L2)
/// over its convolution and linear weights, or a uniform draw from the seed (Random). A
/// weight-magnitude proxy; BN-scale and Taylor scores are refused.
pub fn layer_importance(
    graph: &Graph,
    candidates: &[Candidate],
    criterion: Criterion,
) -> Result<Vec<f32>> {
    match criterion {
        Criterion::Random { seed } => Ok(uniform(seed, candidates.len())),
        Criterion::L1 | Criterion::L2 => candidates
            .iter()
            .map(|c| {
                let (mut sum, mut count) = (0f64, 0usize);
                for &n in c.nodes.iter().filter(|&&n| has_weights(graph, n)) {
                    let Some(w) = graph.constant_of(graph.nodes[n].inputs[1]) else {
                        continue;
                    };
                    let scores = weight_scores(w, criterion, None)?;
                    sum += f64::from(scores.sum_all()?.to_scalar::<f32>()?);
                    count += w.elem_count();
                }
                Ok((sum / count.max(1) as f64) as f32)
            })
            .collect(),
        Criterion::BnScale | Criterion::Taylor => Err(PruneError::Criterion {
            criterion: criterion.name(),
            reason: "layer pruning ranks blocks by weight magnitude (l1, l2) or at random; \
                     output-based importance needs calibration data"
                .into(),
        }),
    }
}

/// Removes the fraction `ratio` (in `[0, 1)`) of the candidates not touching a
/// `protected` node, lowest importance first, skipping candidates that overlap one
/// already chosen; returns the names of the removed layers.
pub fn prune_layers(
    graph: &mut Graph,
    criterion: Criterion,
    ratio: f32,
    protected: &[usize],
) -> Result<Vec<String>> {
    check_sparsity(ratio)?;
    let candidates: Vec<Candidate> = layer_candidates(graph)
        .into_iter()
        .filter(|c| !c.nodes.iter().any(|n| protected.contains(n)))
        .collect();
    let scores = layer_importance(graph, &candidates, criterion)?;
    if let Some(c) = scores.iter().position(|s| s.is_nan()) {
        return Err(PruneError::Scores(format!(
            "layer '{}' has a NaN importance",
            candidates[c].name
        )));
    }
    let count = (ratio * candidates.len() as f32).floor() as usize;
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    let mut chosen: Vec<Candidate> = Vec::new();
    for c in order.into_iter().map(|i| &candidates[i]) {
        if chosen.len() == count {
            break;
        }
        if !chosen
            .iter()
            .any(|o| o.nodes.iter().any(|n| c.nodes.contains(n)))
        {
            chosen.push(c.clone());
        }
    }
    remove_layers(graph, &chosen)?;
    Ok(chosen.into_iter().map(|c| c.name).collect())
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;
    use crate::ir::eval;

    use crate::prune::test_graphs::{tensor, B};

    /// Stem (nodes 0-1); residual block 1 with a fused Relu on its Add (2-6; its two
    /// 8 -> 8 convolutions are units too); bottleneck block 2 with the shortcut as the
    /// Add's second operand and a separate Relu (7-12); a shape-keeping conv-bn-relu unit
    /// (13-15); a projection-shortcut block, not a candidate (16-19); head (20-22).
    fn network() -> Graph {
        let (mut b, x) = B::new(&[1, 3, 6, 6]);
        let stem = b.conv_bn(x, 8, 3, 1, Activation::Relu);
        let b1a = b.conv_bn(stem, 8, 3, 1, Activation::Relu);
        let b1b = b.conv_bn(b1a, 8, 3, 1, Activation::None);
        let y1 = b.add(stem, b1b, Activation::Relu);
        let b2a = b.conv_bn(y1, 4, 1, 1, Activation::Relu);
        let b2b = b.conv_bn(b2a, 8, 3, 1, Activation::None);
        let y2 = b.add(b2b, y1, Activation::None);
        let r2 = b.relu(y2);
        let u = b.conv_bn(r2, 8, 3, 1, Activation::None);
        let u = b.relu(u);
        let p = b.conv(u, 6, 1, 1, Activation::None);
        let q = b.conv_bn(u, 6, 3, 1, Activation::None);
        let y3 = b.add(p, q, Activation::Relu);
        let y = b.head(y3, 3);
        b.finish(y)
    }

    fn input(graph: &Graph) -> Tensor {
        tensor(graph.shape(graph.inputs[0]), 99)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        a.sub(b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Both graphs compute the same output on the same input, within 1e-5.
    fn assert_same(a: &Graph, b: &Graph) {
        let x = input(a);
        let ya = eval(a, std::slice::from_ref(&x)).unwrap();
        let yb = eval(b, &[x]).unwrap();
        let diff = max_diff(&ya[0], &yb[0]);
        assert!(diff < 1e-5, "outputs differ by {diff}");
    }

    /// Replaces constant input `slot` of node `n`.
    fn set_constant(graph: &mut Graph, n: usize, slot: usize, data: Tensor) {
        let id = graph.constant("replaced", data);
        graph.nodes[n].inputs[slot] = id;
    }

    fn zeros_like(graph: &Graph, v: ValueId) -> Tensor {
        Tensor::zeros(graph.shape(v), candle_core::DType::F32, &Device::Cpu).unwrap()
    }

    fn find<'a>(candidates: &'a [Candidate], name: &str) -> &'a Candidate {
        candidates.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn candidates_are_found_exactly() {
        let graph = network();
        let found = layer_candidates(&graph);
        let summary: Vec<(LayerKind, &str, Vec<usize>, Activation)> = found
            .iter()
            .map(|c| (c.kind, c.name.as_str(), c.nodes.clone(), c.activation))
            .collect();
        let (r, u, none, relu) = (
            LayerKind::Residual,
            LayerKind::Unit,
            Activation::None,
            Activation::Relu,
        );
        assert_eq!(
            summary,
            [
                (u, "n2", vec![2, 3], none),
                (u, "n4", vec![4, 5], none),
                (r, "n6", vec![2, 3, 4, 5, 6], relu),
                (r, "n11", vec![7, 8, 9, 10, 11], none),
                (u, "n13", vec![13, 14, 15], none),
            ]
        );
        // Inputs and outputs: block 1 reads the stem, block 2 the first block's sum.
        let out = |n: usize| graph.nodes[n].outputs[0];
        assert_eq!((found[2].input, found[2].output), (out(1), out(6)));
        assert_eq!((found[3].input, found[3].output), (out(6), out(11)));
        assert_eq!((found[4].input, found[4].output), (out(12), out(15)));
        assert_eq!((found[0].input, found[0].output), (out(1), out(3)));
    }

    #[test]
    fn nothing_touching_graph_inputs_or_outputs_is_a_candidate() {
        // x -> c1 (reads the input) -> c2 -> c3 -> Add(c1, c3) = graph output.
        let (mut b, x) = B::new(&[1, 4, 5, 5]);
        let c1 = b.conv(x, 4, 3, 1, Activation::Relu);
        let c2 = b.conv(c1, 4, 3, 1, Activation::Relu);
        let c3 = b.conv(c2, 4, 3, 1, Activation::None);
        let y = b.add(c1, c3, Activation::None);
        let mut graph = b.finish(y);
        let names: Vec<String> = layer_candidates(&graph)
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["n1", "n2"]);
        // With c3 also a graph output, its conv is no candidate.
        graph.outputs.push(c3);
        let names: Vec<String> = layer_candidates(&graph)
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["n1"]);
        // A branch without weights is no residual block.
        let (mut b, x) = B::new(&[1, 4, 5, 5]);
        let c = b.conv(x, 4, 3, 1, Activation::None);
        let r = b.relu(c);
        let s = b.add(c, r, Activation::None);
        let y = b.relu(s);
        assert!(layer_candidates(&b.finish(y)).is_empty());
    }

    #[test]
    fn removing_a_residual_block_equals_a_zero_branch() {
        let graph = network();
        let found = layer_candidates(&graph);
        for name in ["n6", "n11"] {
            let c = find(&found, name);
            let mut removed = graph.clone();
            remove_layers(&mut removed, std::slice::from_ref(c)).unwrap();
            let kept_add = usize::from(c.activation != Activation::None);
            assert_eq!(
                removed.nodes.len(),
                graph.nodes.len() - c.nodes.len() + kept_add
            );
            // Reference: the branch's last conv and its BatchNorm output exactly zero.
            let mut zeroed = graph.clone();
            let last = *c
                .nodes
                .iter()
                .filter(|&&n| has_weights(&graph, n))
                .max()
                .unwrap();
            for slot in [1, 2] {
                let v = graph.nodes[last].inputs[slot];
                set_constant(&mut zeroed, last, slot, zeros_like(&graph, v));
                let v = graph.nodes[last + 1].inputs[slot];
                set_constant(&mut zeroed, last + 1, slot, zeros_like(&graph, v));
            }
            assert!(matches!(graph.nodes[last + 1].op, Op::BatchNorm { .. }));
            assert_same(&removed, &zeroed);
            assert!(eval(&removed, &[input(&graph)]).is_ok());
        }
    }

    #[test]
    fn a_fused_activation_on_the_add_stays_on_the_shortcut() {
        let graph = network();
        let found = layer_candidates(&graph);
        let mut removed = graph.clone();
        remove_layers(&mut removed, &[find(&found, "n6").clone()]).unwrap();
        let add = removed.nodes.iter().find(|n| n.name == "n6").unwrap();
        assert_eq!(add.op, Op::Runtime(Rt::Unary));
        assert_eq!(add.activation, Activation::Relu);
        assert_eq!(add.inputs, [graph.nodes[1].outputs[0]]);
        // Block 2 has none: its sum is aliased to the shortcut and the Add is gone.
        let mut removed = graph.clone();
        remove_layers(&mut removed, &[find(&found, "n11").clone()]).unwrap();
        assert!(removed.nodes.iter().all(|n| n.name != "n11"));
        let relu = removed.nodes.iter().find(|n| n.name == "n12").unwrap();
        assert_eq!(relu.inputs, [graph.nodes[6].outputs[0]]);
    }

    #[test]
    fn removing_a_unit_equals_an_identity_conv() {
        let graph = network();
        let found = layer_candidates(&graph);
        for name in ["n2", "n4", "n13"] {
            let c = find(&found, name);
            let mut removed = graph.clone();
            remove_layers(&mut removed, std::slice::from_ref(c)).unwrap();
            assert_eq!(removed.nodes.len(), graph.nodes.len() - c.nodes.len());
            // Reference: identity kernel, bias 0, no BatchNorm, no activation.
            let mut identity = graph.clone();
            let conv = c.nodes[0];
            let w = graph.nodes[conv].inputs[1];
            let [o, i, kh, kw] = graph.shape(w).try_into().unwrap();
            let mut kernel = vec![0f32; o * i * kh * kw];
            for ch in 0..o {
                kernel[((ch * i + ch) * kh + kh / 2) * kw + kw / 2] = 1.0;
            }
            let kernel = Tensor::from_vec(kernel, &[o, i, kh, kw], &Device::Cpu).unwrap();
            set_constant(&mut identity, conv, 1, kernel);
            let bias = graph.nodes[conv].inputs[2];
            set_constant(&mut identity, conv, 2, zeros_like(&graph, bias));
            for &n in &c.nodes[1..] {
                let node = &mut identity.nodes[n];
                if matches!(node.op, Op::BatchNorm { .. }) {
                    node.op = Op::Runtime(Rt::Unary);
                    node.inputs.truncate(1);
                }
                node.activation = Activation::None;
            }
            assert_same(&removed, &identity);
        }
    }

    /// Runs `graph` compacted and exported in the runtime; it must match `eval`.
    fn runtime_matches_eval(graph: &Graph) {
        let x = input(graph);
        let want = eval(graph, std::slice::from_ref(&x)).unwrap();
        let mut compacted = graph.clone();
        crate::compact::compact(&mut compacted).unwrap();
        let bytes =
            crate::export::export(&compacted, &crate::export::ExportOptions::default()).unwrap();
        let model = lopper_runtime::Model::from_vec(bytes).unwrap();
        let mut session = lopper_runtime::Session::new(&model).unwrap();
        session
            .set_input(0, &x.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .unwrap();
        session.run();
        let want = want[0].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let got = session.output(0).unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-4, "runtime {g} vs IR {w}");
        }
    }

    #[test]
    fn overlapping_removal_exports_and_runs_in_the_runtime() {
        let graph = network();
        let found = layer_candidates(&graph);
        // All five: the units inside block 1 go with it.
        let mut all = graph.clone();
        remove_layers(&mut all, &found).unwrap();
        let outer: Vec<Candidate> = ["n6", "n11", "n13"]
            .iter()
            .map(|n| find(&found, n).clone())
            .collect();
        let mut blocks = graph.clone();
        remove_layers(&mut blocks, &outer).unwrap();
        assert_eq!(all.nodes.len(), blocks.nodes.len());
        assert_same(&all, &blocks);
        // Stem, the Relu kept from block 1's Add, block 2's Relu, projection block, head.
        assert_eq!(all.nodes.len(), 2 + 1 + 1 + 4 + 3);
        runtime_matches_eval(&all);
        // One residual block and one unit, separately.
        for name in ["n11", "n13"] {
            let mut one = graph.clone();
            remove_layers(&mut one, &[find(&found, name).clone()]).unwrap();
            runtime_matches_eval(&one);
        }
    }

    #[test]
    fn stale_candidates_are_refused() {
        let graph = network();
        let found = layer_candidates(&graph);
        let mut removed = graph.clone();
        remove_layers(&mut removed, &found[2..3]).unwrap();
        let e = remove_layers(&mut removed, &found[2..3]).unwrap_err();
        assert!(
            matches!(&e, PruneError::NotPrunable { layer, .. } if layer == "n6"),
            "{e}"
        );
        // Nothing to remove is fine.
        let mut same = graph.clone();
        remove_layers(&mut same, &[]).unwrap();
        assert_eq!(same.nodes.len(), graph.nodes.len());
    }

    #[test]
    fn importance_is_the_mean_weight_magnitude() {
        let graph = network();
        let found = layer_candidates(&graph);
        let weights = |n: usize| -> Vec<f32> {
            let w = graph.constant_of(graph.nodes[n].inputs[1]).unwrap();
            w.flatten_all().unwrap().to_vec1().unwrap()
        };
        let l1 = layer_importance(&graph, &found, Criterion::L1).unwrap();
        let unit = weights(13);
        let want = unit.iter().map(|w| w.abs()).sum::<f32>() / unit.len() as f32;
        assert!((l1[4] - want).abs() < 1e-6, "{} vs {want}", l1[4]);
        let l2 = layer_importance(&graph, &found, Criterion::L2).unwrap();
        let block: Vec<f32> = [weights(7), weights(9)].concat();
        let want = block.iter().map(|w| w * w).sum::<f32>() / block.len() as f32;
        assert!((l2[3] - want).abs() < 1e-6, "{} vs {want}", l2[3]);
        let random = layer_importance(&graph, &found, Criterion::Random { seed: 5 }).unwrap();
        assert_eq!(random, uniform(5, found.len()));
        for criterion in [Criterion::Taylor, Criterion::BnScale] {
            let e = layer_importance(&graph, &found, criterion).unwrap_err();
            assert!(e.to_string().contains("calibration data"), "{e}");
        }
    }

    #[test]
    fn prune_layers_removes_the_least_important_first() {
        let graph = network();
        let found = layer_candidates(&graph);
        let scores = layer_importance(&graph, &found, Criterion::L1).unwrap();
        // The expected choice: lowest first, skipping overlaps, floor(0.5 * 5) = 2.
        let mut order: Vec<usize> = (0..found.len()).collect();
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        let mut want: Vec<&Candidate> = Vec::new();
        for c in order.iter().map(|&i| &found[i]) {
            if want.len() < 2
                && !want
                    .iter()
                    .any(|o| o.nodes.iter().any(|n| c.nodes.contains(n)))
            {
                want.push(c);
            }
        }
        let mut pruned = graph.clone();
        let names = prune_layers(&mut pruned, Criterion::L1, 0.5, &[]).unwrap();
        let want_names: Vec<String> = want.iter().map(|c| c.name.clone()).collect();
        assert_eq!(names, want_names);
        let mut reference = graph.clone();
        let chosen: Vec<Candidate> = want.into_iter().cloned().collect();
        remove_layers(&mut reference, &chosen).unwrap();
        assert_eq!(pruned.nodes.len(), reference.nodes.len());
        assert_same(&pruned, &reference);

        // Ratio 0 removes nothing; protected nodes keep their blocks.
        let mut same = graph.clone();
        assert!(prune_layers(&mut same, Criterion::L1, 0.0, &[])
            .unwrap()
            .is_empty());
        assert_eq!(same.nodes.len(), graph.nodes.len());
        let mut protected = graph.clone();
        // Protecting nodes 13 and 4 leaves the first unit and block 2: half is one of them.
        let names = prune_layers(&mut protected, Criterion::L1, 0.5, &[13, 4]).unwrap();
        assert_eq!(names.len(), 1);
        assert!(["n2", "n11"].contains(&names[0].as_str()), "{names:?}");

        // Random is seeded.
        let mut a = graph.clone();
        let mut b = graph.clone();
        let random = Criterion::Random { seed: 3 };
        assert_eq!(
            prune_layers(&mut a, random, 0.5, &[]).unwrap(),
            prune_layers(&mut b, random, 0.5, &[]).unwrap()
        );

        // Bad requests.
        for ratio in [1.0, -0.1, f32::NAN] {
            let e = prune_layers(&mut graph.clone(), Criterion::L1, ratio, &[]).unwrap_err();
            assert!(matches!(e, PruneError::Sparsity(_)), "{e}");
        }
        let e = prune_layers(&mut graph.clone(), Criterion::Taylor, 0.5, &[]).unwrap_err();
        assert!(matches!(e, PruneError::Criterion { .. }), "{e}");
    }

    #[test]
    fn light_resnet50_loses_half_its_identity_blocks() {
        let Ok(dir) = std::env::var("LOPPER_ONNX_LIGHT") else {
            println!("skipped: set LOPPER_ONNX_LIGHT to the onnx wheel's backend/test/data/light");
            return;
        };
        let path = std::path::Path::new(&dir).join("light_resnet50.onnx");
        let model = crate::onnx::load(&path).unwrap();
        let mut graph =
            crate::import::import(&model, &crate::import::ImportOptions::default()).unwrap();
        let residual: Vec<Candidate> = layer_candidates(&graph)
            .into_iter()
            .filter(|c| c.kind == LayerKind::Residual)
            .collect();
        // 16 bottlenecks, 4 of them with a projection shortcut.
        assert_eq!(residual.len(), 12);
        let half: Vec<Candidate> = residual.iter().step_by(2).cloned().collect();
        let before = graph.nodes.len();
        remove_layers(&mut graph, &half).unwrap();
        let covered: usize = half.iter().map(|c| c.nodes.len()).sum();
        let kept_adds = half
            .iter()
            .filter(|c| c.activation != Activation::None)
            .count();
        assert_eq!(graph.nodes.len(), before - covered + kept_adds);
        crate::compact::compact(&mut graph).unwrap();
        let bytes =
            crate::export::export(&graph, &crate::export::ExportOptions::default()).unwrap();
        let model = lopper_runtime::Model::from_vec(bytes).unwrap();
        let mut session = lopper_runtime::Session::new(&model).unwrap();
        let shape = model.inputs()[0].shape.to_vec();
        let n: usize = shape.iter().product();
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect();
        session.set_input(0, &x).unwrap();
        session.run();
        assert_eq!(model.outputs()[0].shape.to_vec(), [1, 1000]);
        let got = session.output(0).unwrap();
        assert_eq!(got.len(), 1000);
        // The runtime agrees with the pruned IR.
        let x = Tensor::from_vec(x, shape, &Device::Cpu).unwrap();
        let want = eval(&graph, &[x]).unwrap()[0]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                "runtime {g} vs IR {w}"
            );
        }
    }
}
