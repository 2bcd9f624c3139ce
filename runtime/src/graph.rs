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
    /// sqrt(x).
    Sqrt,
    /// e^x.
    Exp,
    /// |x|.
    Abs,
    /// -x.
    Neg,
    /// The error function erf(x).
    Erf,
    /// Exact GELU: 0.5 x (1 + erf(x / sqrt 2)).
    Gelu,
    /// 1 / x.
    Reciprocal,
    /// ln(1 + e^x), evaluated without overflow.
    Softplus,
    /// x if x > 0 else alpha * (e^x - 1).
    Elu { alpha: f32 },
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

/// 2-D transposed convolution over NCHW input. Weight `[C, O / groups, kh, kw]` (the ONNX
/// layout, so its matrix view has one row per input channel), optional bias `[O]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2d {
    /// Vertical and horizontal stride.
    pub stride: [usize; 2],
    /// Vertical and horizontal dilation.
    pub dilation: [usize; 2],
    /// Padding removed from the full output, as `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// Extra rows and columns added at the bottom and right (ONNX `output_padding`).
    pub output_padding: [usize; 2],
    /// Number of groups.
    pub groups: usize,
}

impl Default for ConvTranspose2d {
    fn default() -> Self {
        ConvTranspose2d {
            stride: [1, 1],
            dilation: [1, 1],
            pads: [0; 4],
            output_padding: [0, 0],
            groups: 1,
        }
    }
}

/// How `Op::Resize` computes an output value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeMode {
    /// The nearest input value, rounded by a [`NearestMode`].
    Nearest,
    /// Bilinear interpolation.
    Linear,
}

/// ONNX `coordinate_transformation_mode`: the input coordinate of output index `x`, for
/// an axis of input length `len` and scale `s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoordinateTransform {
    /// `(x + 0.5) / s - 0.5`.
    HalfPixel,
    /// As `HalfPixel`, but -0.5 (which reads index 0) when the resized length `len * s`
    /// is 1, within f32 rounding of the scale.
    PytorchHalfPixel,
    /// `x * (len - 1) / (len * s - 1)`, or 0 when `len * s` is 1 (within f32 rounding);
    /// `len * s` is the real-valued resized length, as in the ONNX reference.
    AlignCorners,
    /// `x / s`.
    Asymmetric,
    /// `(x + 0.5) / s`.
    TfHalfPixelForNearest,
}

/// ONNX `nearest_mode`: how a fractional input coordinate becomes an index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NearestMode {
    /// Round half down.
    RoundPreferFloor,
    /// Round half up.
    RoundPreferCeil,
    /// Round down.
    Floor,
    /// Round up.
    Ceil,
}

/// Resize of the last two axes of an NCHW tensor to the output tensor's shape (ONNX Resize,
/// opset 11-13, without cubic mode or `tf_crop_and_resize`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Resize {
    /// Nearest or linear.
    pub mode: ResizeMode,
    /// How output indices map to input coordinates.
    pub coordinate_transform: CoordinateTransform,
    /// Rounding for `ResizeMode::Nearest`.
    pub nearest_mode: NearestMode,
    /// Height and width scales used by the coordinate transform: the ONNX `scales` when
    /// given, else output / input size. Finite and positive.
    pub scales: [f32; 2],
}

/// Local response normalization across channels (axis 1):
/// `y = x / (bias + alpha / size * sum x[c']^2)^beta` over the channel window
/// `c - floor((size - 1) / 2) ..= c + ceil((size - 1) / 2)`, clipped to the tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lrn {
    /// Window length in channels (at least 1).
    pub size: usize,
    /// Scale of the sum of squares.
    pub alpha: f32,
    /// Exponent.
    pub beta: f32,
    /// Additive constant.
    pub bias: f32,
}

/// How `Op::Reduce` combines values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    /// Arithmetic mean.
    Mean,
    /// Sum.
    Sum,
    /// Largest value.
    Max,
    /// Smallest value.
    Min,
}

/// Reduction over some axes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reduce {
    /// Mean, sum, max or min.
    pub kind: ReduceKind,
    /// The reduced axes: distinct, each below the input's rank. Empty reduces nothing.
    pub axes: Vec<usize>,
    /// Reduced axes stay with size 1 instead of being removed.
    pub keepdims: bool,
}

/// Layer normalization over the trailing axes `shape[axis..]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNorm {
    /// First normalized axis.
    pub axis: usize,
    /// Added to the variance before the square root.
    pub epsilon: f32,
}

/// Strided slice of every axis. Indices are resolved (no negative wrap-around) and are
/// clamped as ONNX does: for `step > 0`, `start` and `end` to `[0, dim]`; for `step < 0`,
/// `start` to `[0, dim - 1]` and `end` to `[-1, dim - 1]`. Axis `i` of the output has
/// `max(0, ceil((end - start) / step))` elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    /// First index taken, per axis.
    pub starts: Vec<i64>,
    /// Index where taking stops (exclusive), per axis.
    pub ends: Vec<i64>,
    /// Distance between taken indices, per axis; never 0, negative walks backwards.
    pub steps: Vec<i64>,
}

/// Gather along one axis with constant indices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gather {
    /// The indexed axis.
    pub axis: usize,
    /// Indices into that axis, each below its size, row-major in `indices_shape`.
    pub indices: Vec<usize>,
    /// Shape of the indices, which replaces the indexed axis in the output (empty for a
    /// single scalar index, which removes the axis).
    pub indices_shape: Vec<usize>,
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
    /// a raised to the power b.
    Pow,
    /// The larger of a and b.
    Max,
    /// The smaller of a and b.
    Min,
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
    /// Convolution; inputs `x, weight[, bias]`. Weight and bias are constants or, read as
    /// dense f32, activations.
    Conv2d(Conv2d),
    /// `y = x W^T + b`; inputs `x [..., K], weight [N, K][, bias [N]]`, constants or
    /// activations as for `Conv2d`.
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
    /// Transposed convolution; inputs `x, weight[, bias]`.
    ConvTranspose2d(ConvTranspose2d),
    /// Nearest or bilinear resize of the last two axes.
    Resize(Resize),
    /// Local response normalization across channels.
    Lrn(Lrn),
    /// Mean, sum, max or min over some axes.
    Reduce(Reduce),
    /// Layer normalization; inputs `x, scale[, bias]`.
    LayerNorm(LayerNorm),
    /// Strided slice of every axis.
    Slice(Slice),
    /// Gather along one axis with constant indices.
    Gather(Gather),
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
            Op::Binary(BinaryKind::Pow) => "Pow",
            Op::Binary(BinaryKind::Max) => "Max",
            Op::Binary(BinaryKind::Min) => "Min",
            Op::Concat { .. } => "Concat",
            Op::Reshape => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Pad(_) => "Pad",
            Op::Softmax { .. } => "Softmax",
            Op::Unary => "Unary",
            Op::ConvTranspose2d(_) => "ConvTranspose2d",
            Op::Resize(_) => "Resize",
            Op::Lrn(_) => "LRN",
            Op::Reduce(r) => match r.kind {
                ReduceKind::Mean => "ReduceMean",
                ReduceKind::Sum => "ReduceSum",
                ReduceKind::Max => "ReduceMax",
                ReduceKind::Min => "ReduceMin",
            },
            Op::LayerNorm(_) => "LayerNormalization",
            Op::Slice(_) => "Slice",
            Op::Gather(_) => "Gather",
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

/// Rows and columns of the matrix view of a weight: `shape[0]` rows (one per output
/// channel; per input channel for ConvTranspose2d) and the other axes flattened into
/// columns. `None` on overflow.
pub fn matrix_dims(shape: &[usize]) -> Option<(usize, usize)> {
    let rows = shape.first().copied().unwrap_or(1);
    Some((rows, element_count(shape.get(1..).unwrap_or(&[]))?))
}
