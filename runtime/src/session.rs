//! A session runs a model: the plan and the arena are made once in `new`, then `run`
//! executes the nodes in order without allocating.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::Range;

use crate::error::RunError;
use crate::graph::{matrix_dims, Node, Op};
use crate::kernels::parallel::Parallel;
#[cfg(feature = "std")]
use crate::kernels::parallel::ThreadPool;
use crate::model::Model;
use crate::ops::{
    activation, binary, concat, conv, convtranspose, gather, layernorm, linear, lrn, matmul, pad,
    pool, reduce, resize, slice, softmax, transpose,
};
use crate::plan::{plan, Plan};
use crate::weights::{Sparsity, Values, WeightMatrix};

enum ModelRef<'m> {
    Borrowed(&'m Model<'m>),
    Shared(Arc<Model<'static>>),
}

/// An executable instance of a model with its own activation arena. Several sessions may
/// share one model (each on its own thread). Runs on the calling thread unless given more
/// with [`Session::set_threads`] (`std` only).
pub struct Session<'m> {
    model: ModelRef<'m>,
    plan: Plan,
    arena: Vec<f32>,
    #[cfg(feature = "std")]
    pool: Option<ThreadPool>,
}

/// Time one node took, reported by [`Session::run_profiled`].
#[cfg(feature = "std")]
#[derive(Clone, Copy, Debug)]
pub struct NodeTiming<'a> {
    /// Position in execution order.
    pub index: usize,
    /// Node name from the source model.
    pub name: &'a str,
    /// Op name, e.g. "Conv2d".
    pub op: &'static str,
    /// Wall time of the node.
    pub elapsed: std::time::Duration,
}

impl<'m> Session<'m> {
    /// Plans memory for `model` and allocates the arena.
    pub fn new(model: &'m Model<'m>) -> Result<Session<'m>, RunError> {
        Self::with(ModelRef::Borrowed(model))
    }

    /// A session that keeps a shared owned model alive (for bindings and threads).
    pub fn shared(model: Arc<Model<'static>>) -> Result<Session<'static>, RunError> {
        Session::with(ModelRef::Shared(model))
    }

    fn with(model: ModelRef<'m>) -> Result<Session<'m>, RunError> {
        let graph = match &model {
            ModelRef::Borrowed(m) => m.graph(),
            ModelRef::Shared(m) => m.graph(),
        };
        let plan = plan(graph)?;
        let mut arena = Vec::new();
        arena
            .try_reserve_exact(plan.arena_len)
            .map_err(|_| RunError::OutOfMemory {
                bytes: plan.arena_len.saturating_mul(4),
            })?;
        arena.resize(plan.arena_len, 0.0);
        Ok(Session {
            model,
            plan,
            arena,
            #[cfg(feature = "std")]
            pool: None,
        })
    }

    /// Runs the heavy kernels (convolutions, fully connected layers) on `threads` threads:
    /// the caller's plus `threads - 1` parked workers, started here. 1 (the default)
    /// stops the workers. Fails when the operating system refuses a thread.
    #[cfg(feature = "std")]
    pub fn set_threads(&mut self, threads: usize) -> std::io::Result<()> {
        self.pool = None;
        if threads > 1 {
            self.pool = Some(ThreadPool::new(threads)?);
        }
        Ok(())
    }

    /// Threads `run` uses.
    pub fn threads(&self) -> usize {
        #[cfg(feature = "std")]
        if let Some(pool) = &self.pool {
            return pool.threads();
        }
        1
    }

    /// The model this session runs.
    pub fn model(&self) -> &Model<'m> {
        match &self.model {
            ModelRef::Borrowed(m) => m,
            ModelRef::Shared(m) => m,
        }
    }

    /// Bytes of activation memory the session holds.
    pub fn arena_bytes(&self) -> usize {
        self.arena.len() * 4
    }

    /// Index of the graph input called `name`.
    pub fn input_index(&self, name: &str) -> Result<usize, RunError> {
        self.find(&self.model().graph().inputs, name, "input")
    }

    /// Index of the graph output called `name`.
    pub fn output_index(&self, name: &str) -> Result<usize, RunError> {
        self.find(&self.model().graph().outputs, name, "output")
    }

    fn find(&self, list: &[usize], name: &str, kind: &'static str) -> Result<usize, RunError> {
        let tensors = &self.model().graph().tensors;
        list.iter()
            .position(|&t| tensors[t].name == name)
            .ok_or_else(|| RunError::UnknownName {
                kind,
                name: name.into(),
            })
    }

    fn range(
        &self,
        list: &[usize],
        index: usize,
        kind: &'static str,
    ) -> Result<Range<usize>, RunError> {
        let tensor = *list.get(index).ok_or(RunError::IndexOutOfRange {
            kind,
            index,
            count: list.len(),
        })?;
        Ok(self.plan.tensors[tensor].clone().unwrap_or(0..0))
    }

    /// The arena slice of input `index`, to be filled before `run`.
    pub fn input_mut(&mut self, index: usize) -> Result<&mut [f32], RunError> {
        let range = self.range(&self.model().graph().inputs, index, "input")?;
        Ok(&mut self.arena[range])
    }

    /// Copies `data` into input `index`.
    pub fn set_input(&mut self, index: usize, data: &[f32]) -> Result<(), RunError> {
        let slot = self.input_mut(index)?;
        if slot.len() != data.len() {
            let expected = slot.len();
            let graph = self.model().graph();
            let name = graph.tensors[graph.inputs[index]].name.clone();
            return Err(RunError::InputLength {
                name,
                expected,
                got: data.len(),
            });
        }
        slot.copy_from_slice(data);
        Ok(())
    }

    /// The values of output `index` after `run`.
    pub fn output(&self, index: usize) -> Result<&[f32], RunError> {
        let range = self.range(&self.model().graph().outputs, index, "output")?;
        Ok(&self.arena[range])
    }

    /// Runs every node once. Allocates nothing.
    pub fn run(&mut self) {
        for step in 0..self.plan.scratch.len() {
            if !self.plan.skip[step] {
                self.run_node(step);
            }
        }
    }

    /// Runs every node once and reports each node's wall time to `on_node`.
    #[cfg(feature = "std")]
    pub fn run_profiled(&mut self, mut on_node: impl FnMut(NodeTiming<'_>)) {
        for step in 0..self.plan.scratch.len() {
            let start = std::time::Instant::now();
            if !self.plan.skip[step] {
                self.run_node(step);
            }
            let elapsed = start.elapsed();
            let node = &self.model().graph().nodes[step];
            on_node(NodeTiming {
                index: step,
                name: &node.name,
                op: node.op.name(),
                elapsed,
            });
        }
    }

    fn run_node(&mut self, step: usize) {
        let model: &Model<'_> = match &self.model {
            ModelRef::Borrowed(m) => m,
            ModelRef::Shared(m) => m,
        };
        let graph = model.graph();
        let node = &graph.nodes[step];
        let out = node.outputs[0];
        let out_range = self.plan.tensors[out].clone().unwrap_or(0..0);
        let scratch_range = match self.plan.scratch[step].clone() {
            r if r.is_empty() => out_range.end..out_range.end,
            r => r,
        };
        #[cfg(feature = "std")]
        let par = self.pool.as_ref().map_or(Parallel::SERIAL, Parallel::on);
        #[cfg(not(feature = "std"))]
        let par = Parallel::SERIAL;
        let (frozen, y, scratch) = carve(&mut self.arena, out_range, scratch_range);
        let operands = Operands {
            model,
            node,
            plan: &self.plan,
            frozen,
            par,
        };
        execute(&operands, y, scratch);
    }
}

/// Reads a node's inputs: from the arena for activations, from the file for constants.
struct Operands<'a> {
    model: &'a Model<'a>,
    node: &'a Node,
    plan: &'a Plan,
    frozen: Frozen<'a>,
    par: Parallel<'a>,
}

impl<'a> Operands<'a> {
    fn shape(&self, slot: usize) -> &'a [usize] {
        &self.model.graph().tensors[self.node.inputs[slot]].shape
    }

    fn shape4(&self, slot: usize) -> [usize; 4] {
        <[usize; 4]>::try_from(self.shape(slot)).expect("verified: rank 4")
    }

    fn data(&self, slot: usize) -> &'a [f32] {
        let t = self.node.inputs[slot];
        match &self.plan.tensors[t] {
            Some(range) => self.frozen.get(range.clone()),
            None => self
                .model
                .constant_f32(t)
                .expect("verified: dense f32 constant"),
        }
    }

    /// The weight matrix in `slot`: a constant in any layout and storage, read in place,
    /// or an activation read as a dense f32 matrix with one row per `shape[0]`.
    fn weight(&self, slot: usize) -> WeightMatrix<'a> {
        let t = self.node.inputs[slot];
        match &self.plan.tensors[t] {
            Some(range) => {
                let (rows, cols) = matrix_dims(self.shape(slot)).expect("verified: shape fits");
                WeightMatrix {
                    rows,
                    cols,
                    values: Values::F32(self.frozen.get(range.clone())),
                    sparsity: Sparsity::Dense,
                }
            }
            None => self.model.weight(t).expect("verified: weight constant"),
        }
    }

    fn optional(&self, slot: usize) -> Option<&'a [f32]> {
        (slot < self.node.inputs.len()).then(|| self.data(slot))
    }

    fn out_shape(&self) -> &'a [usize] {
        &self.model.graph().tensors[self.node.outputs[0]].shape
    }

    fn shape4_out(&self) -> [usize; 4] {
        <[usize; 4]>::try_from(self.out_shape()).expect("verified: rank 4")
    }
}

/// Runs one node, writing its output into `y`.
fn execute(o: &Operands<'_>, y: &mut [f32], scratch: &mut [f32]) {
    let node = o.node;
    let act = node.activation;
    match &node.op {
        Op::Conv2d(attrs) => {
            let w_shape = o.shape4(1);
            conv::conv2d(
                o.par,
                attrs,
                o.data(0),
                o.shape4(0),
                &o.weight(1),
                [w_shape[2], w_shape[3]],
                o.optional(2),
                act,
                scratch,
                y,
                o.shape4_out(),
            );
            return;
        }
        Op::ConvTranspose2d(attrs) => {
            let w_shape = o.shape4(1);
            convtranspose::conv_transpose2d(
                attrs,
                o.data(0),
                o.shape4(0),
                &o.weight(1),
                [w_shape[2], w_shape[3]],
                o.optional(2),
                act,
                y,
                o.shape4_out(),
            );
            return;
        }
        Op::Linear => {
            let w = o.weight(1);
            let batch = y.len() / w.rows;
            linear::linear(o.par, o.data(0), batch, &w, o.optional(2), act, y);
            return;
        }
        Op::MatMul => matmul::matmul(
            o.data(0),
            o.shape(0),
            o.data(1),
            o.shape(1),
            y,
            o.out_shape(),
        ),
        Op::Pool2d(p) => pool::pool2d(p, o.data(0), o.shape4(0), y, o.shape4_out()),
        Op::GlobalAveragePool => pool::global_average_pool(o.data(0), o.shape4(0), y),
        Op::Binary(kind) => binary::binary(
            *kind,
            o.data(0),
            o.shape(0),
            o.data(1),
            o.shape(1),
            y,
            o.out_shape(),
        ),
        Op::Concat { axis } => {
            let mut offset = 0;
            for slot in 0..node.inputs.len() {
                let shape = o.shape(slot);
                concat::concat_part(o.data(slot), shape, *axis, offset, y, o.out_shape());
                offset += shape[*axis];
            }
        }
        Op::Reshape | Op::Unary => y.copy_from_slice(o.data(0)),
        Op::Transpose { perm } => transpose::transpose(o.data(0), o.shape(0), perm, y),
        Op::Pad(p) => pad::pad(p, o.data(0), o.shape(0), y, o.out_shape()),
        Op::Softmax { axis } => softmax::softmax(o.data(0), o.shape(0), *axis, y),
        Op::Resize(r) => resize::resize(r, o.data(0), o.shape4(0), y, o.shape4_out()),
        Op::Lrn(l) => lrn::lrn(l, o.data(0), o.shape(0), y),
        Op::Reduce(r) => reduce::reduce(r, o.data(0), o.shape(0), y),
        Op::LayerNorm(l) => {
            let inner = o.shape(0)[l.axis..].iter().product();
            layernorm::layer_norm(o.data(0), inner, l.epsilon, o.data(1), o.optional(2), y);
        }
        Op::Slice(s) => slice::slice(s, o.data(0), o.shape(0), y, o.out_shape()),
        Op::Gather(g) => gather::gather(g.axis, &g.indices, o.data(0), o.shape(0), y),
    }
    activation::apply(act, y);
}

/// The arena outside a node's output and scratch ranges, readable while those two are
/// written. Inputs never overlap the output or scratch (the plan keeps live buffers apart),
/// so every input lies inside one of the three pieces.
struct Frozen<'a> {
    pieces: [(usize, &'a [f32]); 3],
}

impl<'a> Frozen<'a> {
    fn get(&self, range: Range<usize>) -> &'a [f32] {
        self.pieces
            .iter()
            .find(|(start, piece)| *start <= range.start && range.end <= start + piece.len())
            .map(|(start, piece)| &piece[range.start - start..range.end - start])
            .expect("planned: inputs do not overlap the output or scratch")
    }
}

/// Splits the arena into two disjoint writable ranges and the readable rest.
fn carve(
    arena: &mut [f32],
    a: Range<usize>,
    b: Range<usize>,
) -> (Frozen<'_>, &mut [f32], &mut [f32]) {
    let swapped = b.start < a.start;
    let (first, second) = if swapped { (b, a) } else { (a, b) };
    let (head, rest) = arena.split_at_mut(first.start);
    let (one, rest) = rest.split_at_mut(first.len());
    let (middle, rest) = rest.split_at_mut(second.start - first.end);
    let (two, tail) = rest.split_at_mut(second.len());
    let frozen = Frozen {
        pieces: [(0, &*head), (first.end, &*middle), (second.end, &*tail)],
    };
    if swapped {
        (frozen, two, one)
    } else {
        (frozen, one, two)
    }
}
