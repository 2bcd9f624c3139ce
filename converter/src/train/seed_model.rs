//! The built-in seed network: the CNN of TF-MOT's pruning examples, built directly as an
//! IR graph so that `lopper train` and `lopper demo` need no model file.
//!
//! Conv 32 3x3 ReLU, MaxPool 2x2, Conv 64 3x3 ReLU, MaxPool 2x2, Flatten, Dense. The
//! convolutions pad ("same") when the images are smaller than 16 pixels a side, so the 8x8
//! digits still reach the classifier with a 2x2 map; larger images use "valid"
//! convolutions as the Keras example does (28x28 ends at 64x5x5). Weights are He-uniform
//! from a seed, biases zero.

use candle_core::{Device, Tensor};
use lopper_runtime::graph::{Activation, Conv2d, Op as Rt, Pool2d, PoolKind};

use super::{Result, TrainError};
use crate::ir::{Graph, Op, ValueId};
use crate::prune::criteria::uniform;

/// Builds the seed network for images `[channels, height, width]` and `classes` classes,
/// with batch 1 (the trainer rebatches it).
pub fn seed_model(image: [usize; 3], classes: usize, seed: u64) -> Result<Graph> {
    let [c, h, w] = image;
    if classes < 2 || c == 0 || h.min(w) < 4 {
        return Err(TrainError::Model(format!(
            "the seed network needs images of at least 4x4 pixels and 2 classes, got {c}x{h}x{w} and {classes}"
        )));
    }
    let pad = usize::from(h.min(w) < 16);
    let mut b = Builder {
        g: Graph::default(),
        seed,
    };
    let x = b.g.activation("image", vec![1, c, h, w]);
    b.g.inputs.push(x);
    let x = b.conv("conv1", x, 32, pad)?;
    let x = b.max_pool("pool1", x)?;
    let x = b.conv("conv2", x, 64, pad)?;
    let x = b.max_pool("pool2", x)?;
    let features: usize = b.g.shape(x)[1..].iter().product();
    let flat = b.g.activation("flatten", vec![1, features]);
    b.g.push("flatten", Op::Runtime(Rt::Reshape), vec![x], vec![flat]);
    let y = b.dense("dense", flat, classes)?;
    b.g.outputs.push(y);
    Ok(b.g)
}

struct Builder {
    g: Graph,
    seed: u64,
}

impl Builder {
    /// He-uniform weights `U(-sqrt(6 / fan_in), sqrt(6 / fan_in))`, a fresh seed each.
    fn weight(&mut self, name: &str, shape: &[usize]) -> Result<ValueId> {
        self.seed = self.seed.wrapping_add(1);
        let fan_in: usize = shape[1..].iter().product();
        let limit = (6.0 / fan_in as f32).sqrt();
        let count = shape.iter().product();
        let values = uniform(self.seed, count)
            .into_iter()
            .map(|u| (2.0 * u - 1.0) * limit)
            .collect();
        let data = Tensor::from_vec(values, shape, &Device::Cpu)?;
        Ok(self.g.constant(&format!("{name}.weight"), data))
    }

    fn bias(&mut self, name: &str, len: usize) -> Result<ValueId> {
        let data = Tensor::zeros(len, candle_core::DType::F32, &Device::Cpu)?;
        Ok(self.g.constant(&format!("{name}.bias"), data))
    }

    /// 3x3 convolution, stride 1, padding `pad`, ReLU.
    fn conv(&mut self, name: &str, x: ValueId, out: usize, pad: usize) -> Result<ValueId> {
        let [n, c, h, w] = dims4(self.g.shape(x));
        let weight = self.weight(name, &[out, c, 3, 3])?;
        let bias = self.bias(name, out)?;
        let y = self
            .g
            .activation(name, vec![n, out, h + 2 * pad - 2, w + 2 * pad - 2]);
        let attrs = Conv2d {
            pads: [pad; 4],
            ..Conv2d::default()
        };
        self.g.push(
            name,
            Op::Runtime(Rt::Conv2d(attrs)),
            vec![x, weight, bias],
            vec![y],
        );
        self.g.nodes.last_mut().expect("just pushed").activation = Activation::Relu;
        Ok(y)
    }

    /// 2x2 max pooling, stride 2 (odd sizes round down, as Keras does).
    fn max_pool(&mut self, name: &str, x: ValueId) -> Result<ValueId> {
        let [n, c, h, w] = dims4(self.g.shape(x));
        let y = self.g.activation(name, vec![n, c, h / 2, w / 2]);
        let attrs = Pool2d {
            kind: PoolKind::Max,
            kernel: [2, 2],
            stride: [2, 2],
            dilation: [1, 1],
            pads: [0; 4],
            ceil_mode: false,
            count_include_pad: false,
        };
        self.g
            .push(name, Op::Runtime(Rt::Pool2d(attrs)), vec![x], vec![y]);
        Ok(y)
    }

    /// Linear layer producing class scores.
    fn dense(&mut self, name: &str, x: ValueId, out: usize) -> Result<ValueId> {
        let features = self.g.shape(x)[1];
        let weight = self.weight(name, &[out, features])?;
        let bias = self.bias(name, out)?;
        let y = self.g.activation("scores", vec![1, out]);
        self.g.push(
            name,
            Op::Runtime(Rt::Linear),
            vec![x, weight, bias],
            vec![y],
        );
        Ok(y)
    }
}

fn dims4(shape: &[usize]) -> [usize; 4] {
    [shape[0], shape[1], shape[2], shape[3]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::eval;

    #[test]
    fn shapes_follow_the_keras_example() {
        let digits = seed_model([1, 8, 8], 10, 0).unwrap();
        let flat = digits.nodes.iter().find(|n| n.name == "flatten").unwrap();
        assert_eq!(digits.shape(flat.outputs[0]), &[1, 64 * 2 * 2]);
        let fashion = seed_model([1, 28, 28], 10, 0).unwrap();
        let flat = fashion.nodes.iter().find(|n| n.name == "flatten").unwrap();
        assert_eq!(fashion.shape(flat.outputs[0]), &[1, 64 * 5 * 5]);
        let x = Tensor::ones((1, 1, 28, 28), candle_core::DType::F32, &Device::Cpu).unwrap();
        let y = eval(&fashion, &[x]).unwrap().remove(0);
        assert_eq!(y.dims(), &[1, 10]);
        assert!(seed_model([1, 2, 2], 10, 0).is_err());
    }

    #[test]
    fn same_seed_same_weights() {
        let a = seed_model([1, 8, 8], 10, 3).unwrap();
        let b = seed_model([1, 8, 8], 10, 3).unwrap();
        let c = seed_model([1, 8, 8], 10, 4).unwrap();
        let w = |g: &Graph| {
            g.values
                .iter()
                .find(|v| v.name == "conv2.weight")
                .unwrap()
                .constant
                .clone()
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(w(&a), w(&b));
        assert_ne!(w(&a), w(&c));
    }
}
