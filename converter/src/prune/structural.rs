//! Structural pruning: removes whole channels through the dependency graph, so every
//! tensor really becomes smaller (or, in `Mode::Zero`, zeroes the same slices and keeps
//! the shapes: the reference that removal must match exactly).

use candle_core::{DType, Device, Tensor};
use lopper_runtime::graph::{BinaryKind, Op as Rt};

use super::depgraph::{ClassId, DepGraph};
use super::{PruneError, Result};
use crate::ir::{Graph, Op, ValueId};

/// What happens to a removed channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Cut it out of every tensor.
    Remove,
    /// Zero its producing weights, biases, BatchNorm scale and shift and added constants;
    /// shapes stay.
    Zero,
}

/// Which channels to remove, and how to choose them.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelRequest {
    /// Fraction of each group's channels removed (per-layer scope) or of all prunable
    /// channels (global scope), in `[0, 1)`.
    pub ratio: f32,
    /// One threshold for all groups instead of the same ratio in each.
    pub global: bool,
    /// Keep channel counts a multiple of this (SIMD widths: 4, 8, 16); 1 for none.
    pub round_to: usize,
    /// Groups left alone, by index into `DepGraph::groups`.
    pub protect: Vec<usize>,
}

/// Channels before and after, per group.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GroupChange {
    /// Name of the group's first layer.
    pub layer: String,
    /// Channels before.
    pub before: usize,
    /// Channels after.
    pub after: usize,
    /// Why the group was left alone, if it was.
    pub skipped: Option<String>,
}

/// Decides which classes to remove from per-class importance `scores` (higher matters more).
pub fn select(
    graph: &Graph,
    dep: &DepGraph,
    scores: &[f32],
    request: &ChannelRequest,
) -> Result<(Vec<bool>, Vec<GroupChange>)> {
    if !(0.0..1.0).contains(&request.ratio) {
        return Err(PruneError::Sparsity(request.ratio));
    }
    let round_to = request.round_to.max(1);
    let mut remove = vec![false; dep.classes.len()];
    let mut changes = Vec::new();
    // Candidates per group: (group, prunable classes sorted by score).
    let mut candidates: Vec<(usize, Vec<ClassId>)> = Vec::new();
    for (g, group) in dep.groups.iter().enumerate() {
        let layer = graph.nodes[group.layers[0]].name.clone();
        let total = group.classes.len();
        let mut prunable: Vec<ClassId> = group
            .classes
            .iter()
            .copied()
            .filter(|&c| dep.classes[c].blocked.is_none())
            .collect();
        let skipped = if request.protect.contains(&g) {
            Some("protected".to_string())
        } else if prunable.is_empty() {
            Some(
                dep.classes[group.classes[0]]
                    .blocked
                    .clone()
                    .unwrap_or_default(),
            )
        } else {
            None
        };
        if skipped.is_some() {
            changes.push(GroupChange {
                layer,
                before: total,
                after: total,
                skipped,
            });
            continue;
        }
        prunable.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
        candidates.push((g, prunable));
        changes.push(GroupChange {
            layer,
            before: total,
            after: total,
            skipped: None,
        });
    }
    // How many to remove in each group.
    let mut counts: Vec<usize> = if request.global {
        // Scores are compared across groups after dividing by each group's mean, so that
        // layers with larger weights do not keep all their channels.
        let mut pool: Vec<(f32, usize, ClassId)> = Vec::new();
        for (k, (_, list)) in candidates.iter().enumerate() {
            let mean = list.iter().map(|&c| scores[c]).sum::<f32>() / list.len() as f32;
            let norm = if mean > 0.0 { mean } else { 1.0 };
            pool.extend(list.iter().map(|&c| (scores[c] / norm, k, c)));
        }
        pool.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
        let total: usize = candidates
            .iter()
            .map(|(g, _)| dep.groups[*g].classes.len())
            .sum();
        let mut counts = vec![0; candidates.len()];
        for &(_, k, _) in pool
            .iter()
            .take((request.ratio * total as f32).floor() as usize)
        {
            counts[k] += 1;
        }
        counts
    } else {
        candidates
            .iter()
            .map(|(g, _)| (request.ratio * dep.groups[*g].classes.len() as f32).floor() as usize)
            .collect()
    };
    for (k, (g, list)) in candidates.iter().enumerate() {
        let total = dep.groups[*g].classes.len();
        // Keep at least one channel, and a multiple of `round_to` where the group allows.
        let mut keep = (total - counts[k].min(list.len())).max(1);
        keep = keep.div_ceil(round_to) * round_to;
        keep = keep.min(total);
        counts[k] = (total - keep).min(list.len());
        for &c in &list[..counts[k]] {
            remove[c] = true;
        }
        let change = changes
            .iter_mut()
            .find(|c| c.layer == graph.nodes[dep.groups[*g].layers[0]].name)
            .expect("pushed above");
        change.after = total - counts[k];
    }
    Ok((remove, changes))
}

/// Positions of `v`'s channel axis that stay.
fn kept(dep: &DepGraph, remove: &[bool], v: ValueId) -> Option<Vec<usize>> {
    let classes = dep.channels.get(v)?.as_ref()?;
    Some(
        (0..classes.len())
            .filter(|&i| !remove[classes[i]])
            .collect(),
    )
}

/// `t` with only positions `keep` on `axis` (Remove), or the others zeroed (Zero);
/// `None` when everything is kept.
fn cut(t: &Tensor, axis: usize, keep: &[usize], mode: Mode) -> Result<Option<Tensor>> {
    let len = t.dims()[axis];
    if keep.len() == len {
        return Ok(None);
    }
    let t = t.to_dtype(DType::F32)?;
    Ok(Some(match mode {
        Mode::Remove => {
            let idx: Vec<u32> = keep.iter().map(|&i| i as u32).collect();
            t.index_select(&Tensor::from_vec(idx, keep.len(), &Device::Cpu)?, axis)?
        }
        Mode::Zero => {
            let mut mask = vec![0f32; len];
            for &i in keep {
                mask[i] = 1.0;
            }
            let mut shape = vec![1; t.rank()];
            shape[axis] = len;
            t.broadcast_mul(&Tensor::from_vec(mask, shape, &Device::Cpu)?)?
        }
    }))
}

/// Replaces constant input `slot` of node `n` by `f(old)` when that changes it.
fn rewrite(
    graph: &mut Graph,
    n: usize,
    slot: usize,
    f: impl FnOnce(&Tensor) -> Result<Option<Tensor>>,
) -> Result<()> {
    let Some(&v) = graph.nodes[n].inputs.get(slot) else {
        return Ok(());
    };
    let Some(old) = graph.constant_of(v) else {
        return Ok(());
    };
    let Some(new) = f(old)? else {
        return Ok(());
    };
    let name = graph.values[v].name.clone();
    let id = graph.constant(&name, new);
    graph.nodes[n].inputs[slot] = id;
    Ok(())
}

/// Removes (or zeroes) the classes marked in `remove` everywhere they appear.
pub fn apply(graph: &mut Graph, dep: &DepGraph, remove: &[bool], mode: Mode) -> Result<()> {
    for n in 0..graph.nodes.len() {
        let node = graph.nodes[n].clone();
        let out = node.outputs[0];
        let (keep_out, keep_in) = (kept(dep, remove, out), kept(dep, remove, node.inputs[0]));
        match &node.op {
            Op::Runtime(Rt::Conv2d(c)) => {
                let in_channels = graph.shape(node.inputs[0])[1];
                let out_channels = graph.shape(out)[1];
                let depthwise =
                    c.groups > 1 && c.groups == in_channels && out_channels == in_channels;
                if let Some(k) = &keep_out {
                    rewrite(graph, n, 1, |w| cut(w, 0, k, mode))?;
                    rewrite(graph, n, 2, |b| cut(b, 0, k, mode))?;
                    if depthwise && mode == Mode::Remove {
                        if let Op::Runtime(Rt::Conv2d(c)) = &mut graph.nodes[n].op {
                            c.groups = k.len();
                        }
                    }
                }
                if let (Some(k), 1, Mode::Remove) = (&keep_in, c.groups, mode) {
                    rewrite(graph, n, 1, |w| cut(w, 1, k, mode))?;
                }
            }
            Op::Runtime(Rt::Linear) => {
                if let Some(k) = &keep_out {
                    rewrite(graph, n, 1, |w| cut(w, 0, k, mode))?;
                    rewrite(graph, n, 2, |b| cut(b, 0, k, mode))?;
                }
                if let (Some(k), Mode::Remove) = (&keep_in, mode) {
                    rewrite(graph, n, 1, |w| cut(w, 1, k, mode))?;
                }
            }
            Op::BatchNorm { .. } => {
                if let Some(k) = &keep_out {
                    // Zeroing scale and shift makes the channel's output exactly zero.
                    let slots: &[usize] = if mode == Mode::Zero {
                        &[1, 2]
                    } else {
                        &[1, 2, 3, 4]
                    };
                    for &slot in slots {
                        rewrite(graph, n, slot, |p| cut(p, 0, k, mode))?;
                    }
                }
            }
            Op::Runtime(Rt::Binary(kind)) => {
                let Some(k) = &keep_out else { continue };
                let rank = graph.shape(out).len();
                // In Zero mode only added constants would make a zeroed channel nonzero.
                let touch =
                    mode == Mode::Remove || matches!(kind, BinaryKind::Add | BinaryKind::Sub);
                for slot in 0..2 {
                    let v = node.inputs[slot];
                    let s = graph.shape(v).to_vec();
                    let axis = (s.len() + 1).checked_sub(rank);
                    let per_channel =
                        graph.constant_of(v).is_some() && axis.is_some_and(|a| s[a] > 1);
                    if touch && per_channel {
                        let a = axis.expect("checked");
                        rewrite(graph, n, slot, |t| cut(t, a, k, mode))?;
                    }
                }
            }
            _ => {}
        }
    }
    if mode == Mode::Remove {
        for v in 0..graph.values.len() {
            if let Some(k) = kept(dep, remove, v) {
                graph.values[v].shape[1] = k.len();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use lopper_runtime::graph::{Activation, Conv2d, Pool2d, PoolKind};

    use super::*;
    use crate::ir::eval;
    use crate::prune::depgraph::build;

    use crate::prune::test_graphs::{tensor, B};

    /// Zeroing the chosen channels and removing them must compute the same outputs, the
    /// removed graph must be smaller, and it must export and run in the runtime.
    fn check_exact(graph: Graph, ratio: f32) -> Vec<GroupChange> {
        let dep = build(&graph);
        let scores: Vec<f32> = (0..dep.classes.len())
            .map(|c| ((c * 7919) % 101) as f32)
            .collect();
        let request = ChannelRequest {
            ratio,
            global: false,
            round_to: 1,
            protect: vec![],
        };
        let (remove, changes) = select(&graph, &dep, &scores, &request).unwrap();
        assert!(remove.iter().any(|&r| r), "nothing was pruned: {changes:?}");
        let mut zeroed = graph.clone();
        apply(&mut zeroed, &dep, &remove, Mode::Zero).unwrap();
        let mut removed = graph.clone();
        apply(&mut removed, &dep, &remove, Mode::Remove).unwrap();
        let x = tensor(graph.shape(graph.inputs[0]), 99);
        let a = eval(&zeroed, std::slice::from_ref(&x)).unwrap();
        let b = eval(&removed, std::slice::from_ref(&x)).unwrap();
        let diff = a[0]
            .sub(&b[0])
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "zeroed and removed differ by {diff}");
        let params = |g: &Graph| -> usize {
            let used: std::collections::HashSet<ValueId> =
                g.nodes.iter().flat_map(|n| n.inputs.clone()).collect();
            used.iter()
                .filter_map(|&v| g.constant_of(v))
                .map(|t| t.elem_count())
                .sum()
        };
        assert!(params(&removed) < params(&graph));
        // The runtime agrees with the pruned IR.
        let mut compacted = removed.clone();
        crate::compact::compact(&mut compacted).unwrap();
        let bytes =
            crate::export::export(&compacted, &crate::export::ExportOptions::default()).unwrap();
        let model = lopper_runtime::Model::from_vec(bytes).unwrap();
        let mut session = lopper_runtime::Session::new(&model).unwrap();
        session
            .set_input(0, &x.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .unwrap();
        session.run();
        let want = b[0].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (g, w) in session.output(0).unwrap().iter().zip(&want) {
            assert!((g - w).abs() < 1e-4, "runtime {g} vs IR {w}");
        }
        changes
    }

    #[test]
    fn residual_add_prunes_both_branches_together() {
        let (mut b, x) = B::new(&[1, 3, 6, 6]);
        let a = b.conv_bn(x, 8, 3, 1, Activation::Relu);
        let c = b.conv_bn(a, 8, 3, 1, Activation::None);
        let sum = b.node(
            Op::Runtime(Rt::Binary(BinaryKind::Add)),
            vec![a, c],
            vec![1, 8, 6, 6],
            Activation::Relu,
        );
        let d = b.conv_bn(sum, 6, 1, 1, Activation::Relu);
        let y = b.head(d, 3);
        let graph = b.finish(y);
        let dep = build(&graph);
        // Both convolutions feeding the Add form one group.
        let g = dep.group_of(0).unwrap();
        assert_eq!(dep.groups[g].layers, vec![0, 2]);
        let changes = check_exact(graph, 0.5);
        assert!(
            changes.iter().any(|c| c.before == 8 && c.after == 4),
            "{changes:?}"
        );
    }

    #[test]
    fn concat_maps_channel_offsets() {
        let (mut b, x) = B::new(&[1, 3, 5, 5]);
        let p = b.conv_bn(x, 4, 3, 1, Activation::Relu);
        let q = b.conv_bn(x, 6, 1, 1, Activation::Relu);
        let cat = b.node(
            Op::Runtime(Rt::Concat { axis: 1 }),
            vec![p, q],
            vec![1, 10, 5, 5],
            Activation::None,
        );
        let r = b.conv_bn(cat, 5, 1, 1, Activation::Relu);
        let y = b.head(r, 2);
        check_exact(b.finish(y), 0.5);
    }

    #[test]
    fn depthwise_and_squeeze_excitation_follow_their_input() {
        let (mut b, x) = B::new(&[1, 3, 6, 6]);
        let e = b.conv_bn(x, 8, 1, 1, Activation::HardSwish);
        let dw = b.conv_bn(e, 8, 3, 8, Activation::Relu);
        let gap = b.node(
            Op::Runtime(Rt::GlobalAveragePool),
            vec![dw],
            vec![1, 8, 1, 1],
            Activation::None,
        );
        let w1 = b.constant(&[4, 8, 1, 1]);
        let s1 = b.node(
            Op::Runtime(Rt::Conv2d(Conv2d::default())),
            vec![gap, w1],
            vec![1, 4, 1, 1],
            Activation::Relu,
        );
        let w2 = b.constant(&[8, 4, 1, 1]);
        let hs = Activation::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        };
        let gate = b.node(
            Op::Runtime(Rt::Conv2d(Conv2d::default())),
            vec![s1, w2],
            vec![1, 8, 1, 1],
            hs,
        );
        let scaled = b.node(
            Op::Runtime(Rt::Binary(BinaryKind::Mul)),
            vec![dw, gate],
            vec![1, 8, 6, 6],
            Activation::None,
        );
        let out = b.conv_bn(scaled, 6, 1, 1, Activation::Relu);
        let y = b.head(out, 2);
        let graph = b.finish(y);
        let dep = build(&graph);
        // The expansion conv, the SE's second conv (gate) share channels with the depthwise.
        let g = dep.group_of(0).unwrap();
        assert!(dep.groups[g].layers.len() >= 2, "{:?}", dep.groups);
        check_exact(graph, 0.5);
    }

    #[test]
    fn flatten_into_linear_removes_spatial_blocks() {
        let (mut b, x) = B::new(&[1, 2, 6, 6]);
        let c = b.conv_bn(x, 6, 3, 1, Activation::Relu);
        let pool = Pool2d {
            kind: PoolKind::Max,
            kernel: [2, 2],
            stride: [2, 2],
            dilation: [1, 1],
            pads: [0; 4],
            ceil_mode: false,
            count_include_pad: false,
        };
        let p = b.node(
            Op::Runtime(Rt::Pool2d(pool)),
            vec![c],
            vec![1, 6, 3, 3],
            Activation::None,
        );
        let flat = b.node(
            Op::Runtime(Rt::Reshape),
            vec![p],
            vec![1, 54],
            Activation::None,
        );
        let h = b.linear(flat, 10, Activation::Relu);
        let y = b.linear(h, 3, Activation::None);
        let graph = b.finish(y);
        let changes = check_exact(graph, 0.5);
        assert!(
            changes.iter().any(|c| c.before == 6 && c.after == 3),
            "{changes:?}"
        );
        assert!(
            changes.iter().any(|c| c.before == 10 && c.after == 5),
            "{changes:?}"
        );
    }

    #[test]
    fn outputs_and_inputs_are_blocked_and_bad_ratios_refused() {
        let (mut b, x) = B::new(&[1, 3, 4, 4]);
        let c = b.conv_bn(x, 4, 3, 1, Activation::Relu);
        let graph = b.finish(c);
        let dep = build(&graph);
        assert!(dep.classes.iter().all(|c| c.blocked.is_some()));
        let request = ChannelRequest {
            ratio: 1.0,
            global: false,
            round_to: 1,
            protect: vec![],
        };
        assert!(matches!(
            select(&graph, &dep, &[], &request),
            Err(PruneError::Sparsity(_))
        ));
    }
}
