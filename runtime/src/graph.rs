//! The graph as Rust values: what the writer takes and what the loader hands out after
//! verification. One set of types for both directions, so the format has one meaning.

use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

/// Highest tensor rank the runtime accepts. Kernels keep per-axis state in fixed arrays of
/// this length, so `run()` never allocates.
pub const MAX_RANK: usize = 8;

/// An element-wise activation, on its own (`Op::Unary`) or fused into the producing node.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Activation {
    /// Identity.
    #[default]
    None,
    /// max(x, 0).
    Relu,
    /// min(max(x, min), max); Relu6 is `Clip { min: 0.0, max: 6.0 }`.
    Clip { min: f32, max: f32 },
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// max(0, min(1, alpha * x + beta)).
    HardSigmoid { alpha: f32, beta: f32 },
    /// x * max(0, min(1, x / 6 + 1 / 2)).
    HardSwish,
    /// x if x >= 0 else alpha * x.
    LeakyRelu { alpha: f32 },
    /// tanh(x).
    Tanh,
}

/// 2-D convolution over NCHW input. Weight `[O, C / groups, kh, kw]`, optional bias `[O]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    /// Vertical and horizontal stride.
    pub stride: [usize; 2],
    /// Vertical and horizontal dilation.
    pub dilation: [usize; 2],
    /// Padding as `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// Number of groups; `groups == C == O` is a depthwise convolution.
    pub groups: usize,
}

impl Default for Conv2d {
    fn default() -> Self {
        Conv2d {
            stride: [1, 1],
            dilation: [1, 1],
            pads: [0; 4],
            groups: 1,
        }
    }
}

/// Max or average pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// Largest value in the window; padded cells never win.
    Max,
    /// Mean of the window.
    Average,
}

/// 2-D pooling over NCHW input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    /// Max or average.
    pub kind: PoolKind,
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Vertical and horizontal stride.
    pub stride: [usize; 2],
    /// Vertical and horizontal dilation.
    pub dilation: [usize; 2],
    /// Padding as `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// Output size rounds up instead of down (ONNX `ceil_mode`).
    pub ceil_mode: bool,
    /// Average divides by the full window, padding included (ONNX `count_include_pad`).
    pub count_include_pad: bool,
}

/// Element-wise binary operation with numpy broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryKind {
    /// a + b.
    Add,
    /// a - b.
    Sub,
    /// a * b.
    Mul,
    /// a / b.
    Div,
}

/// How `Op::Pad` fills the border.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    /// A constant value.
    Constant,
    /// Mirror without repeating the edge element.
    Reflect,
    /// Repeat the edge element.
    Edge,
}

/// Padding of every axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Pad {
    /// Constant, reflect or edge.
    pub mode: PadMode,
    /// Elements added before each axis.
    pub begin: Vec<usize>,
    /// Elements added after each axis.
    pub end: Vec<usize>,
    /// Fill value for `PadMode::Constant`.
    pub value: f32,
}

/// What a node computes. Shapes are not stored here: they live on the tensors.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Convolution; inputs `x, weight[, bias]`.
    Conv2d(Conv2d),
    /// `y = x W^T + b`; inputs `x [..., K], weight [N, K][, bias [N]]`.
    Linear,
    /// Numpy matmul of two rank >= 2 tensors with broadcast batch dimensions.
    MatMul,
    /// Max or average pooling.
    Pool2d(Pool2d),
    /// `[N, C, H, W] -> [N, C, 1, 1]`.
    GlobalAveragePool,
    /// Element-wise arithmetic with broadcasting.
    Binary(BinaryKind),
    /// Joins inputs along `axis`.
    Concat {
        /// Axis along which inputs are joined.
        axis: usize,
    },
    /// Same elements, the output tensor's shape (Reshape, Flatten, Squeeze, Unsqueeze).
    Reshape,
    /// Permutes axes: output axis `i` is input axis `perm[i]`.
    Transpose {
        /// The permutation.
        perm: Vec<usize>,
    },
    /// Pads every axis.
    Pad(Pad),
    /// Softmax along `axis`.
    Softmax {
        /// The normalised axis.
        axis: usize,
    },
    /// The node's activation on its own.
    Unary,
}

impl Op {
    /// Short name for errors, profiles and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv2d(_) => "Conv2d",
            Op::Linear => "Linear",
            Op::MatMul => "MatMul",
            Op::Pool2d(p) => match p.kind {
                PoolKind::Max => "MaxPool",
                PoolKind::Average => "AveragePool",
            },
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::Binary(BinaryKind::Add) => "Add",
            Op::Binary(BinaryKind::Sub) => "Sub",
            Op::Binary(BinaryKind::Mul) => "Mul",
            Op::Binary(BinaryKind::Div) => "Div",
            Op::Concat { .. } => "Concat",
            Op::Reshape => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Pad(_) => "Pad",
            Op::Softmax { .. } => "Softmax",
            Op::Unary => "Unary",
        }
    }
}

/// How weight values are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// 32-bit floats.
    F32,
    /// IEEE 754 half precision, widened in the kernels.
    F16,
    /// Symmetric int8 with one f32 scale per row: `w = q * scale[row]`.
    I8,
}

/// Which entries of a weight matrix are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutKind {
    /// Every entry.
    Dense,
    /// Compressed sparse rows.
    Csr,
    /// Block-sparse rows with `rows x cols` blocks.
    Bsr {
        /// Block height.
        rows: usize,
        /// Block width.
        cols: usize,
    },
    /// `n` kept entries in every group of `m` consecutive columns.
    NM {
        /// Kept entries per group.
        n: usize,
        /// Group width.
        m: usize,
    },
}

/// Where a constant's bytes are, after verification: byte ranges of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConstantData {
    /// Storage of `values`.
    pub storage: Storage,
    /// Which entries are stored, with the byte ranges of the index arrays.
    pub layout: LayoutData,
    /// Byte range of the values.
    pub values: Range<usize>,
    /// Byte range of the per-row f32 scales (`Storage::I8` only).
    pub scales: Option<Range<usize>>,
}

/// A verified layout: byte ranges of the index arrays in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutData {
    /// Every entry, row-major.
    Dense,
    /// u32 `row_ptr` (rows + 1) and u32 `col_idx` (nnz).
    Csr {
        /// Byte range of `row_ptr`.
        row_ptr: Range<usize>,
        /// Byte range of `col_idx`.
        col_idx: Range<usize>,
    },
    /// Blocks of `block[0] x block[1]`; u32 `row_ptr` per block row, u32 `col_idx` per block.
    Bsr {
        /// Block height and width.
        block: [usize; 2],
        /// Byte range of `row_ptr`.
        row_ptr: Range<usize>,
        /// Byte range of `col_idx`.
        col_idx: Range<usize>,
    },
    /// `n` of every `m` columns; u8 `indices` per kept slot.
    NM {
        /// Kept entries per group.
        n: usize,
        /// Group width.
        m: usize,
        /// Byte range of `indices`.
        indices: Range<usize>,
    },
}

impl LayoutData {
    /// The layout without its byte ranges.
    pub fn kind(&self) -> LayoutKind {
        match self {
            LayoutData::Dense => LayoutKind::Dense,
            LayoutData::Csr { .. } => LayoutKind::Csr,
            LayoutData::Bsr { block, .. } => LayoutKind::Bsr {
                rows: block[0],
                cols: block[1],
            },
            LayoutData::NM { n, m, .. } => LayoutKind::NM { n: *n, m: *m },
        }
    }
}

/// A tensor of the verified graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Name from the source model.
    pub name: String,
    /// Dimensions; activations are NCHW.
    pub shape: Vec<usize>,
    /// Present for constants.
    pub constant: Option<ConstantData>,
}

/// A node of the verified graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Name from the source model.
    pub name: String,
    /// What it computes.
    pub op: Op,
    /// Tensor indices read.
    pub inputs: Vec<usize>,
    /// Tensor indices written.
    pub outputs: Vec<usize>,
    /// Applied to the output.
    pub activation: Activation,
}

/// Number of elements of a shape, `None` on overflow.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Row-major element strides of `shape` (at most `MAX_RANK` axes); unused axes are 0.
pub fn strides(shape: &[usize]) -> [usize; MAX_RANK] {
    let mut strides = [0; MAX_RANK];
    let mut step = 1;
    for (axis, &dim) in shape.iter().enumerate().rev() {
        strides[axis] = step;
        step *= dim;
    }
    strides
}

/// Rows and columns of the matrix view of a constant: `shape[0]` rows (one per output
/// channel) and the other axes flattened into columns. `None` on overflow.
pub fn matrix_dims(shape: &[usize]) -> Option<(usize, usize)> {
    let rows = shape.first().copied().unwrap_or(1);
    Some((rows, element_count(shape.get(1..).unwrap_or(&[]))?))
}
