//! Element-wise activations, applied on their own (`Op::Unary`) or fused into the node
//! that produced the tensor.

use crate::graph::Activation;

/// The activation of one value; the single definition every kernel's fused epilogue must
/// agree with.
#[inline(always)]
pub fn apply_one(act: Activation, x: f32) -> f32 {
    match act {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        // `max` then `min` rather than `f32::clamp`, which panics when `min > max` or on NaN.
        Activation::Clip { min, max } => x.max(min).min(max),
        Activation::Sigmoid => sigmoid(x),
        Activation::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
        Activation::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        Activation::LeakyRelu { alpha } => {
            if x >= 0.0 {
                x
            } else {
                alpha * x
            }
        }
        Activation::Tanh => libm::tanhf(x),
        Activation::Sqrt => libm::sqrtf(x),
        Activation::Exp => libm::expf(x),
        Activation::Abs => x.abs(),
        Activation::Neg => -x,
        Activation::Erf => libm::erff(x),
        Activation::Gelu => 0.5 * x * (1.0 + libm::erff(x / core::f32::consts::SQRT_2)),
        Activation::Reciprocal => 1.0 / x,
        Activation::Softplus => softplus(x),
        Activation::Elu { alpha } => {
            if x > 0.0 {
                x
            } else {
                alpha * libm::expm1f(x)
            }
        }
    }
}

/// ln(1 + e^x) as `max(x, 0) + ln(1 + e^-|x|)`: `exp` never overflows, and for large |x|
/// the result is exactly `x` or a tiny positive number instead of 0 or infinity.
fn softplus(x: f32) -> f32 {
    x.max(0.0) + libm::log1pf(libm::expf(-x.abs()))
}

/// Applies `act` to every value in place; used for `Op::Unary` and for fused activations
/// of kernels that have no epilogue of their own.
pub fn apply(act: Activation, data: &mut [f32]) {
    if act != Activation::None {
        map_each(act, InPlace(data));
    }
}

/// Writes `act(src[i])` to `dst[i]`: [`apply`] fused with a copy, for kernels that finish
/// their sums in a scratch buffer. Inlined, so that it vectorises for the caller's
/// instruction set.
#[inline(always)]
pub fn apply_from(act: Activation, src: &[f32], dst: &mut [f32]) {
    map_each(act, Copied { src, dst });
}

/// A loop mapping a function over values, in place or from one slice to another.
trait Map {
    fn map(self, f: impl Fn(f32) -> f32);
}

struct InPlace<'a>(&'a mut [f32]);

impl Map for InPlace<'_> {
    #[inline(always)]
    fn map(self, f: impl Fn(f32) -> f32) {
        for v in self.0 {
            *v = f(*v);
        }
    }
}

struct Copied<'a> {
    src: &'a [f32],
    dst: &'a mut [f32],
}

impl Map for Copied<'_> {
    #[inline(always)]
    fn map(self, f: impl Fn(f32) -> f32) {
        for (d, &s) in self.dst.iter_mut().zip(self.src) {
            *d = f(s);
        }
    }
}

/// Runs `m` with `act`: the common piecewise-linear activations get loops of their own,
/// where `apply_one` inlines with its `match` resolved and the loop vectorises.
#[inline(always)]
fn map_each(act: Activation, m: impl Map) {
    use Activation as A;
    match act {
        A::None => m.map(|x| x),
        A::Relu => m.map(|x| apply_one(A::Relu, x)),
        A::Clip { min, max } => m.map(|x| apply_one(A::Clip { min, max }, x)),
        A::HardSigmoid { alpha, beta } => m.map(|x| apply_one(A::HardSigmoid { alpha, beta }, x)),
        A::HardSwish => m.map(|x| apply_one(A::HardSwish, x)),
        A::LeakyRelu { alpha } => m.map(|x| apply_one(A::LeakyRelu { alpha }, x)),
        other => m.map(|x| apply_one(other, x)),
    }
}

/// 1 / (1 + e^-x), evaluated so that `exp` only ever sees a non-positive argument: no
/// overflow to infinity, and no NaN, for large |x|.
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + libm::expf(-x))
    } else {
        let e = libm::expf(x);
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f32, want: f32) {
        assert!(
            (got - want).abs() <= 1e-6 * want.abs().max(1.0),
            "got {got}, want {want}"
        );
    }

    /// Checks `apply_one`, and the slice loops `apply` and `apply_from`, on hand values.
    fn check(act: Activation, cases: &[(f32, f32)]) {
        let xs: alloc::vec::Vec<f32> = cases.iter().map(|&(x, _)| x).collect();
        let mut in_place = xs.clone();
        apply(act, &mut in_place);
        let mut copied = alloc::vec![f32::NAN; xs.len()];
        apply_from(act, &xs, &mut copied);
        for (i, &(x, want)) in cases.iter().enumerate() {
            close(apply_one(act, x), want);
            close(in_place[i], want);
            close(copied[i], want);
        }
    }

    #[test]
    fn none_is_identity() {
        check(Activation::None, &[(-3.5, -3.5), (0.0, 0.0), (2.25, 2.25)]);
    }

    #[test]
    fn relu() {
        check(Activation::Relu, &[(-2.0, 0.0), (0.0, 0.0), (3.5, 3.5)]);
    }

    #[test]
    fn clip_relu6() {
        let act = Activation::Clip { min: 0.0, max: 6.0 };
        check(act, &[(-1.0, 0.0), (2.5, 2.5), (6.0, 6.0), (7.5, 6.0)]);
    }

    #[test]
    fn clip_negative_range() {
        let act = Activation::Clip {
            min: -2.0,
            max: -1.0,
        };
        check(act, &[(-3.0, -2.0), (-1.5, -1.5), (0.5, -1.0)]);
    }

    #[test]
    fn sigmoid_values() {
        check(
            Activation::Sigmoid,
            &[
                (0.0, 0.5),
                (1.0, 0.731_058_6),
                (-1.0, 0.268_941_43),
                (2.0, 0.880_797_1),
                (-3.0, 0.047_425_874),
            ],
        );
    }

    #[test]
    fn sigmoid_is_stable_for_large_magnitudes() {
        let high = apply_one(Activation::Sigmoid, 100.0);
        let low = apply_one(Activation::Sigmoid, -100.0);
        assert_eq!(high, 1.0);
        assert!(low.is_finite() && (0.0..1e-40).contains(&low), "{low}");
        assert_eq!(apply_one(Activation::Sigmoid, f32::INFINITY), 1.0);
        assert_eq!(apply_one(Activation::Sigmoid, f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn hard_sigmoid() {
        // ONNX defaults alpha = 0.2, beta = 0.5.
        let act = Activation::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        };
        check(
            act,
            &[(-5.0, 0.0), (-1.0, 0.3), (0.0, 0.5), (1.5, 0.8), (4.0, 1.0)],
        );
    }

    #[test]
    fn hard_swish() {
        // x * clamp(x / 6 + 0.5, 0, 1): -4 -> 0, -1 -> -1/3, 1 -> 2/3, 2 -> 5/3, 4 -> 4.
        check(
            Activation::HardSwish,
            &[
                (-4.0, 0.0),
                (-3.0, 0.0),
                (-1.0, -1.0 / 3.0),
                (1.0, 2.0 / 3.0),
                (2.0, 5.0 / 3.0),
                (3.0, 3.0),
                (4.0, 4.0),
            ],
        );
    }

    #[test]
    fn leaky_relu() {
        let act = Activation::LeakyRelu { alpha: 0.1 };
        check(act, &[(-2.0, -0.2), (-0.5, -0.05), (0.0, 0.0), (3.0, 3.0)]);
    }

    #[test]
    fn tanh() {
        check(
            Activation::Tanh,
            &[
                (0.0, 0.0),
                (0.5, 0.462_117_16),
                (-1.0, -0.761_594_2),
                (2.0, 0.964_027_6),
                (-100.0, -1.0),
            ],
        );
    }

    #[test]
    fn sqrt_exp_abs_neg_reciprocal() {
        check(
            Activation::Sqrt,
            &[(4.0, 2.0), (2.0, core::f32::consts::SQRT_2), (0.0, 0.0)],
        );
        assert!(apply_one(Activation::Sqrt, -1.0).is_nan());
        check(
            Activation::Exp,
            &[
                (0.0, 1.0),
                (1.0, core::f32::consts::E),
                (-2.0, 0.135_335_28),
            ],
        );
        check(Activation::Abs, &[(-2.5, 2.5), (0.0, 0.0), (3.0, 3.0)]);
        check(Activation::Neg, &[(-2.5, 2.5), (0.0, 0.0), (3.0, -3.0)]);
        check(Activation::Reciprocal, &[(4.0, 0.25), (-0.5, -2.0)]);
        assert_eq!(apply_one(Activation::Reciprocal, 0.0), f32::INFINITY);
    }

    #[test]
    fn erf_is_accurate() {
        // erf from Python's math.erf (double precision), compared in f64.
        let cases: [(f32, f64); 6] = [
            (0.0, 0.0),
            (0.1, 0.112_462_916_018_284_9),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (-2.0, -0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
        ];
        for (x, want) in cases {
            let got = apply_one(Activation::Erf, x);
            let error = (f64::from(got) - want).abs();
            assert!(error <= 1e-7, "erf({x}) = {got}, want {want}");
        }
    }

    #[test]
    fn gelu_is_exact() {
        // 0.5 x (1 + erf(x / sqrt 2)), i.e. x * Phi(x): Phi(1) = 0.84134475, Phi(-1) =
        // 0.15865525, Phi(2) = 0.97724987, Phi(-3) = 0.0013498980.
        check(
            Activation::Gelu,
            &[
                (0.0, 0.0),
                (1.0, 0.841_344_8),
                (-1.0, -0.158_655_25),
                (2.0, 1.954_499_7),
                (-3.0, -0.004_049_694),
                (0.5, 0.345_731_23),
            ],
        );
    }

    #[test]
    fn softplus_is_stable() {
        // ln(1 + e^x): ln 2 at 0, 1.3132617 at 1, 0.3132617 at -1.
        check(
            Activation::Softplus,
            &[
                (0.0, core::f32::consts::LN_2),
                (1.0, 1.313_261_7),
                (-1.0, 0.313_261_7),
                (20.0, 20.0),
            ],
        );
        assert_eq!(apply_one(Activation::Softplus, 100.0), 100.0);
        assert_eq!(apply_one(Activation::Softplus, 1000.0), 1000.0);
        let tiny = apply_one(Activation::Softplus, -20.0);
        assert!((tiny - 2.061_153_6e-9).abs() <= 1e-15, "{tiny}");
        let tinier = apply_one(Activation::Softplus, -100.0);
        assert!(tinier > 0.0 && tinier < 1e-40, "{tinier}");
    }

    #[test]
    fn elu() {
        // alpha (e^x - 1) below zero: e^-1 - 1 = -0.63212056, 0.5 (e^-2 - 1) = -0.43233236.
        check(
            Activation::Elu { alpha: 1.0 },
            &[(-1.0, -0.632_120_56), (0.0, 0.0), (2.0, 2.0)],
        );
        check(
            Activation::Elu { alpha: 0.5 },
            &[(-2.0, -0.432_332_36), (-100.0, -0.5), (3.0, 3.0)],
        );
    }

    #[test]
    fn apply_in_place() {
        let mut data = [-1.0, 0.5, 8.0];
        apply(Activation::Clip { min: 0.0, max: 6.0 }, &mut data);
        assert_eq!(data, [0.0, 0.5, 6.0]);

        let mut data = [-1.0, 0.5];
        apply(Activation::None, &mut data);
        assert_eq!(data, [-1.0, 0.5]);

        let mut data = [-2.0, 2.0];
        apply(Activation::LeakyRelu { alpha: 0.25 }, &mut data);
        assert_eq!(data, [-0.5, 2.0]);
    }
}
