//! Arithmetic: element-wise binary ops with broadcasting, Linear, MatMul, Softmax and
//! reductions.

use candle_core::Tensor;
use lopper_runtime::graph::{BinaryKind, Reduce, ReduceKind};

use super::{expect_axis, operands, with_optional_bias, Fail, OpResult};

/// `Op::Binary`: `a <kind> b` with numpy broadcasting.
pub(super) fn binary(kind: BinaryKind, args: &[Tensor]) -> OpResult {
    let [a, b] = operands::<2>(args)?;
    Ok(match kind {
        BinaryKind::Add => a.broadcast_add(b)?,
        BinaryKind::Sub => a.broadcast_sub(b)?,
        BinaryKind::Mul => a.broadcast_mul(b)?,
        BinaryKind::Div => a.broadcast_div(b)?,
        BinaryKind::Max => a.broadcast_maximum(b)?,
        BinaryKind::Min => a.broadcast_minimum(b)?,
        BinaryKind::Pow => pow(a, b)?,
    })
}

/// `a` raised to `b` as C `powf` does: negative bases work with integral exponents (odd
/// ones keep the sign) and give NaN with fractional ones, and `x^0` is 1. A single-element
/// exponent (`x^2`, `x^0.5`, ...) goes through `powf`, whose gradient is `b a^(b - 1)` even
/// at `a = 0`; its value is read from the tensor, so that exponent gets no gradient.
fn pow(a: &Tensor, b: &Tensor) -> OpResult {
    let shape = a.shape().broadcast_shape_binary_op(b.shape(), "pow")?;
    if b.elem_count() == 1 {
        let e = b.flatten_all()?.to_vec1::<f32>()?[0];
        return Ok(a.powf(f64::from(e))?.broadcast_as(&shape)?.contiguous()?);
    }
    let (a, b) = (a.broadcast_as(&shape)?, b.broadcast_as(&shape)?);
    // |a|^b, then the sign and NaN for negative bases, then 1 where b is 0.
    let magnitude = b.mul(&a.abs()?.log()?)?.exp()?;
    let integral = b.floor()?.eq(&b)?;
    let half = b.affine(0.5, 0.0)?;
    let odd = half.floor()?.ne(&half)?;
    let nan = Tensor::full(f32::NAN, &shape, a.device())?;
    let negative_base = odd.where_cond(&magnitude.neg()?, &magnitude)?;
    let negative_base = integral.where_cond(&negative_base, &nan)?;
    let y = a.lt(0f32)?.where_cond(&negative_base, &magnitude)?;
    let ones = Tensor::ones(&shape, a.dtype(), a.device())?;
    Ok(b.eq(0f32)?.where_cond(&ones, &y)?)
}

/// `Op::Linear`: `y = x W^T + b` for `x [..., K]`, `W [N, K]`, `b [N]`.
pub(super) fn linear(args: &[Tensor]) -> OpResult {
    let (x, w, bias) = with_optional_bias(args)?;
    let (&k, batch) = x
        .dims()
        .split_last()
        .ok_or_else(|| Fail::Invalid("input must have rank >= 1".to_string()))?;
    if w.rank() != 2 || w.dims()[1] != k {
        return Err(Fail::Invalid(format!(
            "weight {:?} does not match input {:?}",
            w.dims(),
            x.dims()
        )));
    }
    let n = w.dims()[0];
    if bias.is_some_and(|b| b.dims() != [n]) {
        return Err(Fail::Invalid(format!("bias must have shape [{n}]")));
    }
    let rows = batch.iter().product::<usize>();
    let mut y = x.reshape((rows, k))?.matmul(&w.t()?)?;
    if let Some(b) = bias {
        y = y.broadcast_add(b)?;
    }
    let mut shape = batch.to_vec();
    shape.push(n);
    Ok(y.reshape(shape)?)
}

/// `Op::MatMul`: numpy matmul of two rank >= 2 tensors, batch axes broadcast.
pub(super) fn matmul(args: &[Tensor]) -> OpResult {
    let [a, b] = operands::<2>(args)?;
    if a.rank() < 2 || b.rank() < 2 {
        return Err(Fail::Invalid(format!(
            "operands {:?} and {:?} must have rank >= 2",
            a.dims(),
            b.dims()
        )));
    }
    Ok(a.contiguous()?.broadcast_matmul(&b.contiguous()?)?)
}

/// `Op::Softmax` along `axis`: `exp(x - max) / sum exp(x - max)`.
pub(super) fn softmax(axis: usize, args: &[Tensor]) -> OpResult {
    let [x] = operands::<1>(args)?;
    expect_axis(x, axis)?;
    // The maximum only keeps exp from overflowing; softmax does not depend on it.
    let max = x.max_keepdim(axis)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(axis)?)?)
}

/// `Op::Reduce`: mean, sum, max or min over distinct axes; reduced axes are kept with
/// size 1 when `keepdims`, removed otherwise.
pub(super) fn reduce(r: &Reduce, args: &[Tensor]) -> OpResult {
    let [x] = operands::<1>(args)?;
    let mut reduced = vec![false; x.rank()];
    for &axis in &r.axes {
        expect_axis(x, axis)?;
        if std::mem::replace(&mut reduced[axis], true) {
            return Err(Fail::Invalid(format!("axis {axis} is listed twice")));
        }
    }
    let y = match r.kind {
        ReduceKind::Sum => x.sum_keepdim(r.axes.clone())?,
        ReduceKind::Mean => {
            let count: usize = r.axes.iter().map(|&a| x.dims()[a]).product();
            x.sum_keepdim(r.axes.clone())?
                .affine(1.0 / count as f64, 0.0)?
        }
        ReduceKind::Max | ReduceKind::Min => {
            let mut y = x.clone();
            for &axis in &r.axes {
                y = match r.kind {
                    ReduceKind::Max => y.max_keepdim(axis)?,
                    _ => y.min_keepdim(axis)?,
                };
            }
            y
        }
    };
    if r.keepdims {
        return Ok(y);
    }
    let kept: Vec<usize> = x
        .dims()
        .iter()
        .zip(&reduced)
        .filter(|(_, &r)| !r)
        .map(|(&d, _)| d)
        .collect();
    Ok(y.reshape(kept)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(data: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_slice(data, shape, &Device::Cpu).unwrap()
    }

    #[track_caller]
    fn close(got: &Tensor, shape: &[usize], want: &[f32]) {
        assert_eq!(got.dims(), shape);
        let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0) || (g.is_nan() && w.is_nan()),
                "{got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn broadcasting_arithmetic() {
        // [[1, 2], [3, 4]] with [10, -1] broadcast over rows.
        let a = t(&[1., 2., 3., 4.], &[2, 2]);
        let b = t(&[10., -1.], &[2]);
        let run = |kind| binary(kind, &[a.clone(), b.clone()]).unwrap();
        close(&run(BinaryKind::Add), &[2, 2], &[11., 1., 13., 3.]);
        close(&run(BinaryKind::Sub), &[2, 2], &[-9., 3., -7., 5.]);
        close(&run(BinaryKind::Mul), &[2, 2], &[10., -2., 30., -4.]);
        close(&run(BinaryKind::Div), &[2, 2], &[0.1, -2., 0.3, -4.]);
        close(&run(BinaryKind::Max), &[2, 2], &[10., 2., 10., 4.]);
        close(&run(BinaryKind::Min), &[2, 2], &[1., -1., 3., -1.]);
        // [2, 1] with [3]: outer broadcast to [2, 3].
        let y = binary(
            BinaryKind::Add,
            &[t(&[1., 2.], &[2, 1]), t(&[10., 20., 30.], &[3])],
        )
        .unwrap();
        close(&y, &[2, 3], &[11., 21., 31., 12., 22., 32.]);
    }

    #[test]
    fn powers() {
        // Scalar exponent: (-3)^2 = 9, 0^2 = 0, 2^2 = 4.
        let a = t(&[-3., 0., 2.], &[3]);
        let y = binary(BinaryKind::Pow, &[a, t(&[2.], &[])]).unwrap();
        close(&y, &[3], &[9., 0., 4.]);
        // Per-element exponents: 4^0.5 = 2, (-2)^3 = -8, (-2)^2 = 4, (-2)^0.5 = NaN,
        // 0^0 = 1, 2^-1 = 0.5.
        let a = t(&[4., -2., -2., -2., 0., 2.], &[6]);
        let b = t(&[0.5, 3., 2., 0.5, 0., -1.], &[6]);
        let y = binary(BinaryKind::Pow, &[a, b]).unwrap();
        close(&y, &[6], &[2., -8., 4., f32::NAN, 1., 0.5]);
        // Broadcast exponents [2, 3] over rows of [[-1, 2], [3, -2]]: 1, 8, 9, -8.
        let a = t(&[-1., 2., 3., -2.], &[2, 2]);
        let y = binary(BinaryKind::Pow, &[a, t(&[2., 3.], &[2])]).unwrap();
        close(&y, &[2, 2], &[1., 8., 9., -8.]);
    }

    #[test]
    fn linear_layer() {
        // x = [[1, 2], [3, 4]] (as [1, 2, 2]), W = [[1, 0], [1, 1], [0, -1]], b = [0, 1, 2]:
        // rows (1, 3, -2) + b = (1, 4, 0) and (3, 7, -4) + b = (3, 8, -2).
        let x = t(&[1., 2., 3., 4.], &[1, 2, 2]);
        let w = t(&[1., 0., 1., 1., 0., -1.], &[3, 2]);
        let y = linear(&[x.clone(), w.clone(), t(&[0., 1., 2.], &[3])]).unwrap();
        close(&y, &[1, 2, 3], &[1., 4., 0., 3., 8., -2.]);
        let y = linear(&[x.clone(), w]).unwrap();
        close(&y, &[1, 2, 3], &[1., 3., -2., 3., 7., -4.]);
        assert!(linear(&[x, t(&[1.; 3], &[1, 3])]).is_err());
    }

    #[test]
    fn batched_matmul() {
        // Two batches of [1, 2] times one shared [2, 2]: [1 2] x [[1, 2], [3, 4]] = [7 10],
        // [3 4] x ... = [15 22].
        let a = t(&[1., 2., 3., 4.], &[2, 1, 2]);
        let b = t(&[1., 2., 3., 4.], &[2, 2]);
        close(&matmul(&[a, b]).unwrap(), &[2, 1, 2], &[7., 10., 15., 22.]);
    }

    #[test]
    fn softmax_values() {
        const S123: [f32; 3] = [0.090_030_57, 0.244_728_47, 0.665_240_96];
        let y = softmax(0, &[t(&[1., 2., 3.], &[3])]).unwrap();
        close(&y, &[3], &S123);
        // Along axis 0 of [3, 2], with huge values in column 1 (no overflow).
        let x = t(&[1., 1001., 2., 1002., 3., 1003.], &[3, 2]);
        let y = softmax(0, &[x]).unwrap();
        let want: Vec<f32> = S123.iter().flat_map(|&v| [v, v]).collect();
        close(&y, &[3, 2], &want);
    }

    #[test]
    fn reductions() {
        // [[1, 5, 3], [4, 2, 6]].
        let x = t(&[1., 5., 3., 4., 2., 6.], &[2, 3]);
        let run = |kind, axes: Vec<usize>, keepdims| {
            reduce(
                &Reduce {
                    kind,
                    axes,
                    keepdims,
                },
                std::slice::from_ref(&x),
            )
            .unwrap()
        };
        close(&run(ReduceKind::Sum, vec![1], false), &[2], &[9., 12.]);
        close(
            &run(ReduceKind::Mean, vec![0], true),
            &[1, 3],
            &[2.5, 3.5, 4.5],
        );
        close(&run(ReduceKind::Max, vec![0, 1], false), &[], &[6.]);
        close(&run(ReduceKind::Min, vec![1, 0], true), &[1, 1], &[1.]);
        close(
            &run(ReduceKind::Sum, vec![], false),
            &[2, 3],
            &[1., 5., 3., 4., 2., 6.],
        );
        let twice = Reduce {
            kind: ReduceKind::Sum,
            axes: vec![1, 1],
            keepdims: false,
        };
        assert!(reduce(&twice, &[x]).is_err());
    }
}
