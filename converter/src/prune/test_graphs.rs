//! Small IR graphs for the pruning tests: a builder that names node `i` `n{i}` and fills
//! constants with deterministic values.

use candle_core::{Device, Tensor};
use lopper_runtime::graph::{Activation, BinaryKind, Conv2d, Op as Rt};

use crate::ir::{Graph, Op, ValueId};

/// Deterministic values in [-1, 1).
pub fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104729) % 2000) as f32 / 1000.0) - 1.0)
        .collect()
}

/// A tensor of `shape` filled by [`values`].
pub fn tensor(shape: &[usize], seed: usize) -> Tensor {
    Tensor::from_vec(values(shape.iter().product(), seed), shape, &Device::Cpu).unwrap()
}

/// The builder.
pub struct B {
    pub g: Graph,
    seed: usize,
}

impl B {
    /// A graph with one input of `input` shape.
    pub fn new(input: &[usize]) -> (B, ValueId) {
        let mut g = Graph::default();
        let x = g.activation("x", input.to_vec());
        g.inputs.push(x);
        (B { g, seed: 1 }, x)
    }

    /// A node writing a new value of `shape`.
    pub fn node(
        &mut self,
        op: Op,
        inputs: Vec<ValueId>,
        shape: Vec<usize>,
        act: Activation,
    ) -> ValueId {
        let name = format!("n{}", self.g.nodes.len());
        let y = self.g.activation(&name, shape);
        self.g.push(&name, op, inputs, vec![y]);
        self.g.nodes.last_mut().unwrap().activation = act;
        y
    }

    /// A node whose output has its first input's shape.
    pub fn node_like(&mut self, op: Op, inputs: Vec<ValueId>, act: Activation) -> ValueId {
        let shape = self.g.shape(inputs[0]).to_vec();
        self.node(op, inputs, shape, act)
    }

    /// A constant of `shape`.
    pub fn constant(&mut self, shape: &[usize]) -> ValueId {
        self.seed += 1;
        let name = format!("c{}", self.seed);
        self.g.constant(&name, tensor(shape, self.seed))
    }

    /// Conv with bias and "same" padding for odd kernels.
    pub fn conv(
        &mut self,
        x: ValueId,
        out: usize,
        k: usize,
        groups: usize,
        act: Activation,
    ) -> ValueId {
        let s = self.g.shape(x).to_vec();
        let w = self.constant(&[out, s[1] / groups, k, k]);
        let b = self.constant(&[out]);
        let attrs = Conv2d {
            pads: [k / 2; 4],
            groups,
            ..Conv2d::default()
        };
        self.node(
            Op::Runtime(Rt::Conv2d(attrs)),
            vec![x, w, b],
            vec![s[0], out, s[2], s[3]],
            act,
        )
    }

    /// Conv then BatchNorm (with the activation).
    pub fn conv_bn(
        &mut self,
        x: ValueId,
        out: usize,
        k: usize,
        groups: usize,
        act: Activation,
    ) -> ValueId {
        let c = self.conv(x, out, k, groups, Activation::None);
        let params: Vec<ValueId> = (0..4).map(|_| self.constant(&[out])).collect();
        // Variances must be positive.
        let var = params[3];
        let v = self.g.constant_of(var).unwrap().abs().unwrap();
        self.g.values[var].constant = Some(v.affine(1.0, 0.5).unwrap());
        let mut inputs = vec![c];
        inputs.extend(params);
        self.node_like(Op::BatchNorm { epsilon: 1e-5 }, inputs, act)
    }

    /// Element-wise sum.
    pub fn add(&mut self, a: ValueId, b: ValueId, act: Activation) -> ValueId {
        self.node_like(Op::Runtime(Rt::Binary(BinaryKind::Add)), vec![a, b], act)
    }

    /// A ReLU on its own.
    pub fn relu(&mut self, x: ValueId) -> ValueId {
        self.node_like(Op::Runtime(Rt::Unary), vec![x], Activation::Relu)
    }

    /// A linear layer with bias.
    pub fn linear(&mut self, x: ValueId, out: usize, act: Activation) -> ValueId {
        let s = self.g.shape(x).to_vec();
        let w = self.constant(&[out, s[1]]);
        let b = self.constant(&[out]);
        self.node(Op::Runtime(Rt::Linear), vec![x, w, b], vec![s[0], out], act)
    }

    /// Global average pooling, flatten and a linear classifier.
    pub fn head(&mut self, x: ValueId, classes: usize) -> ValueId {
        let s = self.g.shape(x).to_vec();
        let gap = self.node(
            Op::Runtime(Rt::GlobalAveragePool),
            vec![x],
            vec![s[0], s[1], 1, 1],
            Activation::None,
        );
        let flat = self.node(
            Op::Runtime(Rt::Reshape),
            vec![gap],
            vec![s[0], s[1]],
            Activation::None,
        );
        self.linear(flat, classes, Activation::None)
    }

    /// The graph, with `y` as its output.
    pub fn finish(mut self, y: ValueId) -> Graph {
        self.g.outputs.push(y);
        self.g
    }
}
