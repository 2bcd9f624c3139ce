//! Element-wise activations, as fused into a node or on their own (`Op::Unary`).

use candle_core::{Result, Tensor};
use lopper_runtime::graph::Activation;

/// `act` applied to every element of `x`, from differentiable candle ops. Formulas that
/// could overflow (sigmoid, softplus) are written in forms that cannot.
pub(super) fn apply(act: Activation, x: &Tensor) -> Result<Tensor> {
    match act {
        Activation::None => Ok(x.clone()),
        Activation::Relu => x.relu(),
        Activation::Clip { min, max } => x.maximum(min)?.minimum(max),
        // With e = e^-|x| (never overflows): 1 / (1 + e) for x >= 0, e / (1 + e) below.
        Activation::Sigmoid => {
            let e = x.abs()?.neg()?.exp()?;
            let denominator = e.affine(1.0, 1.0)?;
            x.ge(0f32)?
                .where_cond(&denominator.recip()?, &e.div(&denominator)?)
        }
        Activation::HardSigmoid { alpha, beta } => x
            .affine(f64::from(alpha), f64::from(beta))?
            .maximum(0f32)?
            .minimum(1f32),
        Activation::HardSwish => x.mul(&x.affine(1.0 / 6.0, 0.5)?.maximum(0f32)?.minimum(1f32)?),
        Activation::LeakyRelu { alpha } => {
            let scaled = x.affine(f64::from(alpha), 0.0)?;
            x.ge(0f32)?.where_cond(x, &scaled)
        }
        Activation::Tanh => x.tanh(),
        Activation::Sqrt => x.sqrt(),
        Activation::Exp => x.exp(),
        Activation::Abs => x.abs(),
        Activation::Neg => x.neg(),
        Activation::Erf => x.erf(),
        Activation::Gelu => x.gelu_erf(),
        Activation::Reciprocal => x.recip(),
        // ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|).
        Activation::Softplus => x
            .relu()?
            .add(&x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?),
        Activation::Elu { alpha } => {
            let negative = x.exp()?.affine(f64::from(alpha), -f64::from(alpha))?;
            x.gt(0f32)?.where_cond(x, &negative)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// `act` at each `x`, checked against values worked out independently (by hand or
    /// with a calculator).
    #[track_caller]
    fn check(act: Activation, cases: &[(f32, f32)]) {
        let xs: Vec<f32> = cases.iter().map(|c| c.0).collect();
        let x = Tensor::new(xs.as_slice(), &Device::Cpu).unwrap();
        let y = apply(act, &x).unwrap().to_vec1::<f32>().unwrap();
        for (&(x, want), got) in cases.iter().zip(y) {
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{act:?}({x}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn identity_relu_clip() {
        check(Activation::None, &[(-3.5, -3.5), (0.0, 0.0), (2.25, 2.25)]);
        check(Activation::Relu, &[(-2.0, 0.0), (0.0, 0.0), (3.5, 3.5)]);
        let relu6 = Activation::Clip { min: 0.0, max: 6.0 };
        check(relu6, &[(-1.0, 0.0), (2.5, 2.5), (7.5, 6.0)]);
        // min > max: max(x, min) then min(., max) is always max.
        let odd = Activation::Clip { min: 2.0, max: 1.0 };
        check(odd, &[(0.0, 1.0), (5.0, 1.0)]);
    }

    #[test]
    fn sigmoid_family() {
        // 1 / (1 + e^-1) = 0.7310586, 1 / (1 + e^3) = 0.04742587.
        check(
            Activation::Sigmoid,
            &[
                (0.0, 0.5),
                (1.0, 0.731_058_6),
                (-3.0, 0.047_425_874),
                (100.0, 1.0),
                (-100.0, 0.0),
            ],
        );
        // 0.2 x + 0.5 clamped: -5 -> 0, -1 -> 0.3, 1.5 -> 0.8, 4 -> 1.
        let hs = Activation::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        };
        check(hs, &[(-5.0, 0.0), (-1.0, 0.3), (1.5, 0.8), (4.0, 1.0)]);
        // x * clamp(x / 6 + 0.5): -4 -> 0, -1 -> -1/3, 1 -> 2/3, 3 -> 3, 5 -> 5.
        check(
            Activation::HardSwish,
            &[
                (-4.0, 0.0),
                (-1.0, -1.0 / 3.0),
                (1.0, 2.0 / 3.0),
                (3.0, 3.0),
                (5.0, 5.0),
            ],
        );
    }

    #[test]
    fn piecewise_linear_and_elu() {
        let leaky = Activation::LeakyRelu { alpha: 0.1 };
        check(leaky, &[(-2.0, -0.2), (0.0, 0.0), (3.0, 3.0)]);
        // alpha (e^x - 1): e^-1 - 1 = -0.63212056, times 2.
        let elu = Activation::Elu { alpha: 2.0 };
        check(elu, &[(-1.0, -1.264_241_1), (0.0, 0.0), (2.0, 2.0)]);
    }

    #[test]
    fn transcendental() {
        check(
            Activation::Tanh,
            &[(0.0, 0.0), (0.5, 0.462_117_16), (-2.0, -0.964_027_6)],
        );
        check(
            Activation::Sqrt,
            &[(0.0, 0.0), (2.0, std::f32::consts::SQRT_2), (9.0, 3.0)],
        );
        check(
            Activation::Exp,
            &[(0.0, 1.0), (1.0, std::f32::consts::E), (-2.0, 0.135_335_28)],
        );
        check(
            Activation::Erf,
            &[(0.0, 0.0), (0.5, 0.520_499_9), (-1.0, -0.842_700_8)],
        );
        // 0.5 x (1 + erf(x / sqrt 2)): erf(1 / sqrt 2) = 0.6826895.
        check(
            Activation::Gelu,
            &[(0.0, 0.0), (1.0, 0.841_344_7), (-1.0, -0.158_655_25)],
        );
        // ln(1 + e^x): ln 2 = 0.6931472, ln(1 + e) = 1.3132616, ln(1 + e^-3) = 0.04858735;
        // large |x| gives x and 0 without overflow.
        check(
            Activation::Softplus,
            &[
                (0.0, std::f32::consts::LN_2),
                (1.0, 1.313_261_7),
                (-3.0, 0.048_587_35),
                (100.0, 100.0),
                (-100.0, 0.0),
            ],
        );
    }

    #[test]
    fn arithmetic() {
        check(Activation::Abs, &[(-2.5, 2.5), (0.0, 0.0), (3.0, 3.0)]);
        check(Activation::Neg, &[(-2.5, 2.5), (3.0, -3.0)]);
        check(Activation::Reciprocal, &[(4.0, 0.25), (-0.5, -2.0)]);
    }
}
