//! Element-wise activations, applied on their own (`Op::Unary`) or fused into the node
//! that produced the tensor.

use crate::graph::Activation;

/// The activation of one value; the single definition every kernel's fused epilogue must
/// agree with.
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
    }
}

/// Applies `act` to every value in place; used for `Op::Unary` and for fused activations
/// of kernels that have no epilogue of their own.
pub fn apply(act: Activation, data: &mut [f32]) {
    if act == Activation::None {
        return;
    }
    for v in data {
        *v = apply_one(act, *v);
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

    fn check(act: Activation, cases: &[(f32, f32)]) {
        for &(x, want) in cases {
            close(apply_one(act, x), want);
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
