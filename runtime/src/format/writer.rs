//! The one way to produce a `.lopper` file: describe tensors and nodes with the graph
//! types, hand weights over as dense f32 with the wanted layout and storage, and `finish`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use flatbuffers::{FlatBufferBuilder, UnionWIPOffset, WIPOffset};

use super::encode::{encode, EncodeError, EncodedWeights, OwnedSparsity, OwnedValues};
use super::fb;
use super::footer::{seal, BLOB_ALIGN};
use crate::graph::{
    matrix_dims, Activation, BinaryKind, CoordinateTransform, LayoutKind, NearestMode, Node, Op,
    PadMode, PoolKind, ReduceKind, ResizeMode, Storage,
};

/// Format version written by this crate and the only one the loader reads.
pub const FORMAT_VERSION: u32 = 1;

/// Layout and storage wanted for a weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoding {
    /// Which entries are stored.
    pub layout: LayoutKind,
    /// How values are stored.
    pub storage: Storage,
}

impl Encoding {
    /// Every value as f32: biases and constant operands.
    pub const DENSE_F32: Encoding = Encoding {
        layout: LayoutKind::Dense,
        storage: Storage::F32,
    };
}

/// Why a model could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A weight could not be encoded as asked.
    #[error("weight '{name}': {error}")]
    Encode {
        /// The weight's name.
        name: String,
        /// What went wrong.
        error: EncodeError,
    },
    /// A value does not fit the file's 32-bit fields.
    #[error("{what} is too large for the format ({value} > {max})", max = u32::MAX)]
    TooLarge {
        /// What is too large.
        what: String,
        /// Its value.
        value: usize,
    },
}

struct PendingTensor {
    name: String,
    shape: Vec<usize>,
    constant: Option<EncodedWeights>,
}

/// Builds a model in memory; `finish` returns the file's bytes.
pub struct ModelWriter {
    producer: String,
    metadata: Vec<(String, String)>,
    tensors: Vec<PendingTensor>,
    nodes: Vec<Node>,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
}

impl ModelWriter {
    /// An empty model; `producer` names the tool and version that wrote it.
    pub fn new(producer: &str) -> Self {
        ModelWriter {
            producer: producer.to_string(),
            metadata: Vec::new(),
            tensors: Vec::new(),
            nodes: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }

    /// Adds (or replaces) a metadata entry.
    pub fn metadata(&mut self, key: &str, value: &str) {
        self.metadata.retain(|(k, _)| k != key);
        self.metadata.push((key.to_string(), value.to_string()));
    }

    /// Adds an activation tensor and returns its index.
    pub fn tensor(&mut self, name: &str, shape: &[usize]) -> usize {
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            shape: shape.to_vec(),
            constant: None,
        });
        self.tensors.len() - 1
    }

    /// Adds an activation tensor that the caller feeds, and returns its index.
    pub fn input(&mut self, name: &str, shape: &[usize]) -> usize {
        let index = self.tensor(name, shape);
        self.inputs.push(index);
        index
    }

    /// Marks a tensor as a graph output.
    pub fn output(&mut self, tensor: usize) {
        self.outputs.push(tensor);
    }

    /// Adds a dense f32 constant (bias, constant operand) and returns its index.
    pub fn constant(
        &mut self,
        name: &str,
        shape: &[usize],
        values: &[f32],
    ) -> Result<usize, WriteError> {
        self.weight(name, shape, values, Encoding::DENSE_F32)
    }

    /// Adds a constant from dense row-major `values`, stored with `encoding`. The matrix
    /// view has `shape[0]` rows (one per output channel; per input channel for
    /// ConvTranspose2d) and the remaining axes as columns.
    pub fn weight(
        &mut self,
        name: &str,
        shape: &[usize],
        values: &[f32],
        encoding: Encoding,
    ) -> Result<usize, WriteError> {
        let encoded = matrix_dims(shape)
            .ok_or(EncodeError::Shape)
            .and_then(|(rows, cols)| encode(values, rows, cols, encoding.layout, encoding.storage))
            .map_err(|error| WriteError::Encode {
                name: name.to_string(),
                error,
            })?;
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            shape: shape.to_vec(),
            constant: Some(encoded),
        });
        Ok(self.tensors.len() - 1)
    }

    /// Appends a node; nodes run in the order they are added.
    pub fn node(
        &mut self,
        name: &str,
        op: Op,
        inputs: &[usize],
        outputs: &[usize],
        activation: Activation,
    ) {
        self.nodes.push(Node {
            name: name.to_string(),
            op,
            inputs: inputs.to_vec(),
            outputs: outputs.to_vec(),
            activation,
        });
    }

    /// Serialises the model: FlatBuffer, 64-byte aligned data section, footer.
    pub fn finish(&self) -> Result<Vec<u8>, WriteError> {
        let mut out = Output::default();
        let mut fbb = FlatBufferBuilder::with_capacity(4096);

        let mut tensors = Vec::with_capacity(self.tensors.len());
        for tensor in &self.tensors {
            let shape = to_u32s(&tensor.shape, || format_what("shape of", &tensor.name))?;
            let constant = tensor.constant.as_ref().map(|w| out.constant(&mut fbb, w));
            let args = fb::TensorArgs {
                name: Some(fbb.create_string(&tensor.name)),
                shape: Some(fbb.create_vector(&shape)),
                dtype: fb::DType::F32,
                constant,
            };
            tensors.push(fb::Tensor::create(&mut fbb, &args));
        }

        let mut nodes = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let what = || format_what("node", &node.name);
            let inputs = to_u32s(&node.inputs, what)?;
            let outputs = to_u32s(&node.outputs, what)?;
            let (op_type, op) = write_op(&mut fbb, &node.op, what)?;
            let args = fb::NodeArgs {
                name: Some(fbb.create_string(&node.name)),
                op_type,
                op: Some(op),
                inputs: Some(fbb.create_vector(&inputs)),
                outputs: Some(fbb.create_vector(&outputs)),
                activation: Some(&write_activation(node.activation)),
            };
            nodes.push(fb::Node::create(&mut fbb, &args));
        }

        let metadata: Vec<_> = self
            .metadata
            .iter()
            .map(|(k, v)| {
                let args = fb::KeyValueArgs {
                    key: Some(fbb.create_string(k)),
                    value: Some(fbb.create_string(v)),
                };
                fb::KeyValue::create(&mut fbb, &args)
            })
            .collect();
        let inputs = to_u32s(&self.inputs, || "graph inputs".to_string())?;
        let outputs = to_u32s(&self.outputs, || "graph outputs".to_string())?;
        let args = fb::ModelArgs {
            version: FORMAT_VERSION,
            producer: Some(fbb.create_string(&self.producer)),
            metadata: Some(fbb.create_vector(&metadata)),
            tensors: Some(fbb.create_vector(&tensors)),
            nodes: Some(fbb.create_vector(&nodes)),
            inputs: Some(fbb.create_vector(&inputs)),
            outputs: Some(fbb.create_vector(&outputs)),
            blobs: Some(fbb.create_vector(&out.blobs)),
        };
        let root = fb::Model::create(&mut fbb, &args);
        fb::finish_model_buffer(&mut fbb, root);

        let mut file = fbb.finished_data().to_vec();
        let data_offset = file.len().next_multiple_of(BLOB_ALIGN);
        file.resize(data_offset, 0);
        file.extend_from_slice(&out.data);
        seal(&mut file, data_offset);
        Ok(file)
    }
}

/// The data section being assembled, with its blob table.
#[derive(Default)]
struct Output {
    data: Vec<u8>,
    blobs: Vec<fb::Blob>,
}

impl Output {
    /// Appends `bytes` at the next aligned offset and returns the blob index.
    fn blob(&mut self, bytes: &[u8]) -> u32 {
        let offset = self.data.len().next_multiple_of(BLOB_ALIGN);
        self.data.resize(offset, 0);
        self.data.extend_from_slice(bytes);
        self.blobs
            .push(fb::Blob::new(offset as u64, bytes.len() as u64));
        (self.blobs.len() - 1) as u32
    }

    fn constant<'a>(
        &mut self,
        fbb: &mut FlatBufferBuilder<'a>,
        w: &EncodedWeights,
    ) -> WIPOffset<fb::Constant<'a>> {
        let (storage, values, scales) = match &w.values {
            OwnedValues::F32(v) => (fb::Storage::F32, self.blob(bytemuck::cast_slice(v)), 0),
            OwnedValues::F16(v) => (fb::Storage::F16, self.blob(bytemuck::cast_slice(v)), 0),
            OwnedValues::I8 { q, scales } => {
                let values = self.blob(bytemuck::cast_slice(q));
                (
                    fb::Storage::I8,
                    values,
                    self.blob(bytemuck::cast_slice(scales)),
                )
            }
        };
        let (layout_type, layout) = match &w.sparsity {
            OwnedSparsity::Dense => (
                fb::Layout::Dense,
                fb::Dense::create(fbb, &fb::DenseArgs {}).as_union_value(),
            ),
            OwnedSparsity::Csr { row_ptr, col_idx } => {
                let args = fb::CsrArgs {
                    row_ptr: self.blob(bytemuck::cast_slice(row_ptr)),
                    col_idx: self.blob(bytemuck::cast_slice(col_idx)),
                };
                (
                    fb::Layout::Csr,
                    fb::Csr::create(fbb, &args).as_union_value(),
                )
            }
            OwnedSparsity::Bsr {
                block,
                row_ptr,
                col_idx,
            } => {
                let args = fb::BsrArgs {
                    block_rows: block[0] as u32,
                    block_cols: block[1] as u32,
                    row_ptr: self.blob(bytemuck::cast_slice(row_ptr)),
                    col_idx: self.blob(bytemuck::cast_slice(col_idx)),
                };
                (
                    fb::Layout::Bsr,
                    fb::Bsr::create(fbb, &args).as_union_value(),
                )
            }
            OwnedSparsity::NM { n, m, indices } => {
                let args = fb::NMArgs {
                    n: *n as u32,
                    m: *m as u32,
                    indices: self.blob(indices),
                };
                (fb::Layout::NM, fb::NM::create(fbb, &args).as_union_value())
            }
        };
        let args = fb::ConstantArgs {
            layout_type,
            layout: Some(layout),
            storage,
            values,
            scales,
        };
        fb::Constant::create(fbb, &args)
    }
}

fn format_what(kind: &str, name: &str) -> String {
    alloc::format!("{kind} '{name}'")
}

fn to_u32(value: usize, what: impl Fn() -> String) -> Result<u32, WriteError> {
    u32::try_from(value).map_err(|_| WriteError::TooLarge {
        what: what(),
        value,
    })
}

fn to_u32s(values: &[usize], what: impl Fn() -> String) -> Result<Vec<u32>, WriteError> {
    values.iter().map(|&v| to_u32(v, &what)).collect()
}

fn write_activation(act: Activation) -> fb::Activation {
    let (kind, alpha, beta) = match act {
        Activation::None => (fb::ActivationKind::None, 0.0, 0.0),
        Activation::Relu => (fb::ActivationKind::Relu, 0.0, 0.0),
        Activation::Clip { min, max } => (fb::ActivationKind::Clip, min, max),
        Activation::Sigmoid => (fb::ActivationKind::Sigmoid, 0.0, 0.0),
        Activation::HardSigmoid { alpha, beta } => (fb::ActivationKind::HardSigmoid, alpha, beta),
        Activation::HardSwish => (fb::ActivationKind::HardSwish, 0.0, 0.0),
        Activation::LeakyRelu { alpha } => (fb::ActivationKind::LeakyRelu, alpha, 0.0),
        Activation::Tanh => (fb::ActivationKind::Tanh, 0.0, 0.0),
        Activation::Sqrt => (fb::ActivationKind::Sqrt, 0.0, 0.0),
        Activation::Exp => (fb::ActivationKind::Exp, 0.0, 0.0),
        Activation::Abs => (fb::ActivationKind::Abs, 0.0, 0.0),
        Activation::Neg => (fb::ActivationKind::Neg, 0.0, 0.0),
        Activation::Erf => (fb::ActivationKind::Erf, 0.0, 0.0),
        Activation::Gelu => (fb::ActivationKind::Gelu, 0.0, 0.0),
        Activation::Reciprocal => (fb::ActivationKind::Reciprocal, 0.0, 0.0),
        Activation::Softplus => (fb::ActivationKind::Softplus, 0.0, 0.0),
        Activation::Elu { alpha } => (fb::ActivationKind::Elu, alpha, 0.0),
    };
    fb::Activation::new(kind, alpha, beta)
}

fn write_op<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    op: &Op,
    what: impl Fn() -> String,
) -> Result<(fb::Op, WIPOffset<UnionWIPOffset>), WriteError> {
    let u = |v: usize| to_u32(v, &what);
    Ok(match op {
        Op::Conv2d(c) => {
            let args = fb::Conv2dArgs {
                stride_h: u(c.stride[0])?,
                stride_w: u(c.stride[1])?,
                dilation_h: u(c.dilation[0])?,
                dilation_w: u(c.dilation[1])?,
                pad_top: u(c.pads[0])?,
                pad_left: u(c.pads[1])?,
                pad_bottom: u(c.pads[2])?,
                pad_right: u(c.pads[3])?,
                groups: u(c.groups)?,
            };
            (
                fb::Op::Conv2d,
                fb::Conv2d::create(fbb, &args).as_union_value(),
            )
        }
        Op::Linear => (
            fb::Op::Linear,
            fb::Linear::create(fbb, &fb::LinearArgs {}).as_union_value(),
        ),
        Op::MatMul => (
            fb::Op::MatMul,
            fb::MatMul::create(fbb, &fb::MatMulArgs {}).as_union_value(),
        ),
        Op::Pool2d(p) => {
            let args = fb::Pool2dArgs {
                kind: match p.kind {
                    PoolKind::Max => fb::PoolKind::Max,
                    PoolKind::Average => fb::PoolKind::Average,
                },
                kernel_h: u(p.kernel[0])?,
                kernel_w: u(p.kernel[1])?,
                stride_h: u(p.stride[0])?,
                stride_w: u(p.stride[1])?,
                dilation_h: u(p.dilation[0])?,
                dilation_w: u(p.dilation[1])?,
                pad_top: u(p.pads[0])?,
                pad_left: u(p.pads[1])?,
                pad_bottom: u(p.pads[2])?,
                pad_right: u(p.pads[3])?,
                ceil_mode: p.ceil_mode,
                count_include_pad: p.count_include_pad,
            };
            (
                fb::Op::Pool2d,
                fb::Pool2d::create(fbb, &args).as_union_value(),
            )
        }
        Op::GlobalAveragePool => (
            fb::Op::GlobalAveragePool,
            fb::GlobalAveragePool::create(fbb, &fb::GlobalAveragePoolArgs {}).as_union_value(),
        ),
        Op::Binary(kind) => {
            let kind = match kind {
                BinaryKind::Add => fb::BinaryKind::Add,
                BinaryKind::Sub => fb::BinaryKind::Sub,
                BinaryKind::Mul => fb::BinaryKind::Mul,
                BinaryKind::Div => fb::BinaryKind::Div,
                BinaryKind::Pow => fb::BinaryKind::Pow,
                BinaryKind::Max => fb::BinaryKind::Max,
                BinaryKind::Min => fb::BinaryKind::Min,
            };
            let args = fb::BinaryArgs { kind };
            (
                fb::Op::Binary,
                fb::Binary::create(fbb, &args).as_union_value(),
            )
        }
        Op::Concat { axis } => {
            let args = fb::ConcatArgs { axis: u(*axis)? };
            (
                fb::Op::Concat,
                fb::Concat::create(fbb, &args).as_union_value(),
            )
        }
        Op::Reshape => (
            fb::Op::Reshape,
            fb::Reshape::create(fbb, &fb::ReshapeArgs {}).as_union_value(),
        ),
        Op::Transpose { perm } => {
            let perm = to_u32s(perm, &what)?;
            let args = fb::TransposeArgs {
                perm: Some(fbb.create_vector(&perm)),
            };
            (
                fb::Op::Transpose,
                fb::Transpose::create(fbb, &args).as_union_value(),
            )
        }
        Op::Pad(p) => {
            let begin = to_u32s(&p.begin, &what)?;
            let end = to_u32s(&p.end, &what)?;
            let args = fb::PadArgs {
                mode: match p.mode {
                    PadMode::Constant => fb::PadMode::Constant,
                    PadMode::Reflect => fb::PadMode::Reflect,
                    PadMode::Edge => fb::PadMode::Edge,
                },
                begin: Some(fbb.create_vector(&begin)),
                end: Some(fbb.create_vector(&end)),
                value: p.value,
            };
            (fb::Op::Pad, fb::Pad::create(fbb, &args).as_union_value())
        }
        Op::Softmax { axis } => {
            let args = fb::SoftmaxArgs { axis: u(*axis)? };
            (
                fb::Op::Softmax,
                fb::Softmax::create(fbb, &args).as_union_value(),
            )
        }
        Op::Unary => (
            fb::Op::Unary,
            fb::Unary::create(fbb, &fb::UnaryArgs {}).as_union_value(),
        ),
        Op::ConvTranspose2d(c) => {
            let args = fb::ConvTranspose2dArgs {
                stride_h: u(c.stride[0])?,
                stride_w: u(c.stride[1])?,
                dilation_h: u(c.dilation[0])?,
                dilation_w: u(c.dilation[1])?,
                pad_top: u(c.pads[0])?,
                pad_left: u(c.pads[1])?,
                pad_bottom: u(c.pads[2])?,
                pad_right: u(c.pads[3])?,
                output_padding_h: u(c.output_padding[0])?,
                output_padding_w: u(c.output_padding[1])?,
                groups: u(c.groups)?,
            };
            (
                fb::Op::ConvTranspose2d,
                fb::ConvTranspose2d::create(fbb, &args).as_union_value(),
            )
        }
        Op::Resize(r) => {
            let args = fb::ResizeArgs {
                mode: match r.mode {
                    ResizeMode::Nearest => fb::ResizeMode::Nearest,
                    ResizeMode::Linear => fb::ResizeMode::Linear,
                },
                coordinate_transform: match r.coordinate_transform {
                    CoordinateTransform::HalfPixel => fb::CoordinateTransform::HalfPixel,
                    CoordinateTransform::PytorchHalfPixel => {
                        fb::CoordinateTransform::PytorchHalfPixel
                    }
                    CoordinateTransform::AlignCorners => fb::CoordinateTransform::AlignCorners,
                    CoordinateTransform::Asymmetric => fb::CoordinateTransform::Asymmetric,
                    CoordinateTransform::TfHalfPixelForNearest => {
                        fb::CoordinateTransform::TfHalfPixelForNearest
                    }
                },
                nearest_mode: match r.nearest_mode {
                    NearestMode::RoundPreferFloor => fb::NearestMode::RoundPreferFloor,
                    NearestMode::RoundPreferCeil => fb::NearestMode::RoundPreferCeil,
                    NearestMode::Floor => fb::NearestMode::Floor,
                    NearestMode::Ceil => fb::NearestMode::Ceil,
                },
                scale_h: r.scales[0],
                scale_w: r.scales[1],
            };
            (
                fb::Op::Resize,
                fb::Resize::create(fbb, &args).as_union_value(),
            )
        }
        Op::Lrn(l) => {
            let args = fb::LrnArgs {
                size: u(l.size)?,
                alpha: l.alpha,
                beta: l.beta,
                bias: l.bias,
            };
            (fb::Op::Lrn, fb::Lrn::create(fbb, &args).as_union_value())
        }
        Op::Reduce(r) => {
            let axes = to_u32s(&r.axes, &what)?;
            let args = fb::ReduceArgs {
                kind: match r.kind {
                    ReduceKind::Mean => fb::ReduceKind::Mean,
                    ReduceKind::Sum => fb::ReduceKind::Sum,
                    ReduceKind::Max => fb::ReduceKind::Max,
                    ReduceKind::Min => fb::ReduceKind::Min,
                },
                axes: Some(fbb.create_vector(&axes)),
                keepdims: r.keepdims,
            };
            (
                fb::Op::Reduce,
                fb::Reduce::create(fbb, &args).as_union_value(),
            )
        }
        Op::LayerNorm(l) => {
            let args = fb::LayerNormArgs {
                axis: u(l.axis)?,
                epsilon: l.epsilon,
            };
            (
                fb::Op::LayerNorm,
                fb::LayerNorm::create(fbb, &args).as_union_value(),
            )
        }
        Op::Slice(s) => {
            let args = fb::SliceArgs {
                starts: Some(fbb.create_vector(&s.starts)),
                ends: Some(fbb.create_vector(&s.ends)),
                steps: Some(fbb.create_vector(&s.steps)),
            };
            (
                fb::Op::Slice,
                fb::Slice::create(fbb, &args).as_union_value(),
            )
        }
        Op::Gather(g) => {
            // Indices are below an axis length, which the format stores as u32.
            let indices: Vec<i64> = to_u32s(&g.indices, &what)?
                .into_iter()
                .map(i64::from)
                .collect();
            let indices_shape = to_u32s(&g.indices_shape, &what)?;
            let args = fb::GatherArgs {
                axis: u(g.axis)?,
                indices: Some(fbb.create_vector(&indices)),
                indices_shape: Some(fbb.create_vector(&indices_shape)),
            };
            (
                fb::Op::Gather,
                fb::Gather::create(fbb, &args).as_union_value(),
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_aligned_and_file_is_sealed() {
        let mut w = ModelWriter::new("test");
        let x = w.input("x", &[1, 3]);
        let a = w.constant("a", &[3], &[1.0, 2.0, 3.0]).unwrap();
        let b = w.constant("b", &[1], &[4.0]).unwrap();
        let y = w.tensor("y", &[1, 3]);
        w.node(
            "add",
            Op::Binary(BinaryKind::Add),
            &[x, a],
            &[y],
            Activation::None,
        );
        let z = w.tensor("z", &[1, 3]);
        w.node(
            "mul",
            Op::Binary(BinaryKind::Mul),
            &[y, b],
            &[z],
            Activation::Relu,
        );
        w.output(z);
        let file = w.finish().unwrap();
        let parts = super::super::footer::split(&file).unwrap();
        assert_eq!(parts.data_offset % BLOB_ALIGN, 0);
        assert_eq!(&file[4..8], b"LOPR");
        // Two blobs: 12 bytes at 0, 4 bytes at 64.
        assert_eq!(parts.data.len(), 64 + 4);
        assert_eq!(&parts.data[..4], &1.0f32.to_le_bytes());
        assert_eq!(&parts.data[64..68], &4.0f32.to_le_bytes());
    }
}
