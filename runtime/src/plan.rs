//! The memory plan, computed once per session: every activation tensor and every node's
//! scratch space gets a range of one f32 arena. Buffers whose lifetimes overlap never
//! share memory; the others do, placed greedily largest first (as TFLite Micro does). A
//! Reshape whose input nobody else reads writes nothing: its output is the same memory.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use crate::error::RunError;
use crate::graph::{element_count, Op};
use crate::model::Graph;
use crate::ops::conv::conv2d_scratch_len;

/// Arena offsets are multiples of this many f32s (64 bytes), so every buffer starts on a
/// cache line and SIMD kernels can load it aligned.
pub const ARENA_ALIGN: usize = 16;

/// Where every buffer lives in the arena.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Arena range of each tensor; `None` for constants and tensors nothing uses.
    pub tensors: Vec<Option<Range<usize>>>,
    /// Arena range of each node's scratch space (empty when it needs none).
    pub scratch: Vec<Range<usize>>,
    /// Nodes with nothing to do: Reshapes whose output shares their input's memory.
    pub skip: Vec<bool>,
    /// Arena length in f32s.
    pub arena_len: usize,
}

/// A buffer to place: `len` f32s alive from node `first` to node `last`, inclusive.
struct Buffer {
    len: usize,
    first: usize,
    last: usize,
}

/// Plans the arena of a verified graph.
pub fn plan(graph: &Graph) -> Result<Plan, RunError> {
    let steps = graph.nodes.len();
    let mut live: Vec<Option<(usize, usize)>> = vec![None; graph.tensors.len()];
    // Graph inputs and outputs stay alive for the whole run, so a session can run again
    // on the same inputs and outputs stay readable afterwards.
    for &t in graph.inputs.iter().chain(&graph.outputs) {
        live[t] = Some((0, steps));
    }
    for (step, node) in graph.nodes.iter().enumerate() {
        for &t in &node.outputs {
            let end = live[t].map_or(step, |(_, last)| last);
            live[t] = Some((step, end));
        }
        for &t in &node.inputs {
            if graph.tensors[t].constant.is_none() {
                if let Some((_, last)) = &mut live[t] {
                    *last = (*last).max(step);
                }
            }
        }
    }

    // A Reshape of a tensor only it reads (and that the caller neither fills nor reads)
    // can hand its output the input's memory: the bytes are already in place.
    let mut alias: Vec<Option<usize>> = vec![None; graph.tensors.len()];
    let mut readers = vec![0usize; graph.tensors.len()];
    for node in &graph.nodes {
        for &t in &node.inputs {
            readers[t] += 1;
        }
    }
    let mut skip = vec![false; steps];
    for (step, node) in graph.nodes.iter().enumerate() {
        let (Op::Reshape, [input], [output]) = (&node.op, &node.inputs[..], &node.outputs[..])
        else {
            continue;
        };
        let root = alias[*input].unwrap_or(*input);
        let private = readers[*input] == 1
            && graph.tensors[*input].constant.is_none()
            && !graph.inputs.contains(input)
            && !graph.outputs.contains(input);
        if let (true, Some((first, _)), Some((_, last))) = (private, live[root], live[*output]) {
            alias[*output] = Some(root);
            live[root] = Some((first, last));
            live[*output] = None;
            skip[step] = true;
        }
    }

    let mut buffers = Vec::new();
    let mut owners = Vec::new();
    for (t, span) in live.iter().enumerate() {
        if let Some((first, last)) = *span {
            let len = element_count(&graph.tensors[t].shape).ok_or(RunError::ArenaTooLarge)?;
            buffers.push(Buffer { len, first, last });
            owners.push(Owner::Tensor(t));
        }
    }
    for step in 0..steps {
        let len = scratch_len(graph, step).ok_or(RunError::ArenaTooLarge)?;
        if len > 0 {
            buffers.push(Buffer {
                len,
                first: step,
                last: step,
            });
            owners.push(Owner::Scratch(step));
        }
    }

    let offsets = place(&buffers)?;
    let mut plan = Plan {
        tensors: vec![None; graph.tensors.len()],
        scratch: vec![0..0; steps],
        skip,
        arena_len: 0,
    };
    for ((buffer, owner), offset) in buffers.iter().zip(&owners).zip(offsets) {
        let range = offset..offset + buffer.len;
        plan.arena_len = plan.arena_len.max(range.end.next_multiple_of(ARENA_ALIGN));
        match *owner {
            Owner::Tensor(t) => plan.tensors[t] = Some(range),
            Owner::Scratch(step) => plan.scratch[step] = range,
        }
    }
    for (t, root) in alias.iter().enumerate() {
        if let Some(root) = *root {
            plan.tensors[t] = plan.tensors[root].clone();
        }
    }
    Ok(plan)
}

enum Owner {
    Tensor(usize),
    Scratch(usize),
}

/// Scratch f32s node `step` needs while it runs; `None` on overflow.
fn scratch_len(graph: &Graph, step: usize) -> Option<usize> {
    let node = &graph.nodes[step];
    match &node.op {
        Op::Conv2d(attrs) => {
            let shape = |t: usize| graph.tensors[t].shape.as_slice();
            let as4 = |s: &[usize]| <[usize; 4]>::try_from(s).unwrap_or([0; 4]);
            let w = as4(shape(node.inputs[1]));
            conv2d_scratch_len(
                attrs,
                as4(shape(node.inputs[0])),
                [w[2], w[3]],
                as4(shape(node.outputs[0])),
            )
        }
        _ => Some(0),
    }
}

/// Offsets for `buffers`: largest first, each at the lowest aligned offset that does not
/// collide with an already placed buffer whose lifetime overlaps.
fn place(buffers: &[Buffer]) -> Result<Vec<usize>, RunError> {
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&i| (core::cmp::Reverse(buffers[i].len), buffers[i].first));
    let mut offsets: Vec<Option<usize>> = vec![None; buffers.len()];
    for &i in &order {
        let b = &buffers[i];
        let mut taken: Vec<Range<usize>> = order
            .iter()
            .filter_map(|&j| {
                let o = offsets[j]?;
                let other = &buffers[j];
                let overlaps = other.first <= b.last && b.first <= other.last;
                overlaps.then_some(o..o + other.len)
            })
            .collect();
        taken.sort_by_key(|r| r.start);
        let mut offset = 0usize;
        for r in taken {
            let end = offset.checked_add(b.len).ok_or(RunError::ArenaTooLarge)?;
            if end <= r.start {
                break;
            }
            offset = offset.max(r.end.next_multiple_of(ARENA_ALIGN));
        }
        offset
            .checked_add(b.len)
            .and_then(|end| end.checked_add(ARENA_ALIGN))
            .filter(|&end| end <= isize::MAX as usize / 4)
            .ok_or(RunError::ArenaTooLarge)?;
        offsets[i] = Some(offset);
    }
    Ok(offsets.into_iter().map(|o| o.unwrap_or(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges_overlap(a: &Range<usize>, b: &Range<usize>) -> bool {
        a.start < b.end && b.start < a.end
    }

    #[test]
    fn overlapping_lifetimes_get_disjoint_memory_and_others_share() {
        // a: 0..=1, b: 1..=2, c: 2..=3 -- a and c may share, b overlaps both.
        let buffers = [
            Buffer {
                len: 100,
                first: 0,
                last: 1,
            },
            Buffer {
                len: 50,
                first: 1,
                last: 2,
            },
            Buffer {
                len: 100,
                first: 2,
                last: 3,
            },
        ];
        let offsets = place(&buffers).unwrap();
        let range = |i: usize| offsets[i]..offsets[i] + buffers[i].len;
        assert!(!ranges_overlap(&range(0), &range(1)));
        assert!(!ranges_overlap(&range(1), &range(2)));
        assert_eq!(offsets[0], offsets[2], "a and c never live together");
        assert!(offsets.iter().all(|o| o % ARENA_ALIGN == 0));
    }
}
