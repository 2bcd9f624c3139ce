//! Numpy matmul of two activation tensors: a matrix product over the last two axes, with
//! the leading (batch) axes broadcast against each other.

use alloc::vec::Vec;

use crate::graph::MAX_RANK;

/// Output shape of `a @ b` for rank >= 2 operands, or `None` when the inner dimensions
/// differ, a batch axis does not broadcast, or the result exceeds `MAX_RANK`. Used by the
/// verifier; `matmul` assumes it succeeded.
pub fn matmul_output_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    if a.len() < 2 || b.len() < 2 || rank > MAX_RANK {
        return None;
    }
    let [m, k] = [a[a.len() - 2], a[a.len() - 1]];
    let [k_b, n] = [b[b.len() - 2], b[b.len() - 1]];
    if k != k_b {
        return None;
    }
    let mut shape = Vec::with_capacity(rank);
    for axis in 0..rank - 2 {
        let dim = match (batch_dim(a, rank, axis), batch_dim(b, rank, axis)) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
        shape.push(dim);
    }
    shape.push(m);
    shape.push(n);
    Some(shape)
}

/// Size of output batch axis `axis` in `shape`, aligned to the right; missing leading
/// axes are 1.
fn batch_dim(shape: &[usize], rank: usize, axis: usize) -> usize {
    let missing = rank - shape.len();
    if axis < missing {
        1
    } else {
        shape[axis - missing]
    }
}

/// `y = a @ b` with numpy semantics for rank >= 2 tensors of possibly different ranks:
/// `[..., M, K] @ [..., K, N] -> [..., M, N]`, batch axes broadcast. `y_shape` is
/// `matmul_output_shape(a_shape, b_shape)`. Never allocates.
pub fn matmul(
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    y: &mut [f32],
    y_shape: &[usize],
) {
    let rank = y_shape.len();
    let batch_rank = rank - 2;
    let [m, k] = [a_shape[a_shape.len() - 2], a_shape[a_shape.len() - 1]];
    let n = b_shape[b_shape.len() - 1];
    let a_strides = batch_strides(a_shape, rank, m * k);
    let b_strides = batch_strides(b_shape, rank, k * n);
    let batches: usize = y_shape[..batch_rank].iter().product();
    for batch in 0..batches {
        // Decompose the output batch index into per-axis indices, last axis fastest.
        let (mut a_start, mut b_start, mut rest) = (0, 0, batch);
        for axis in (0..batch_rank).rev() {
            let i = rest % y_shape[axis];
            rest /= y_shape[axis];
            a_start += i * a_strides[axis];
            b_start += i * b_strides[axis];
        }
        matmul_2d(
            &a[a_start..a_start + m * k],
            &b[b_start..b_start + k * n],
            &mut y[batch * m * n..(batch + 1) * m * n],
            [m, k, n],
        );
    }
}

/// Element stride of each output batch axis in an operand of shape `shape`; 0 where the
/// operand has no such axis or broadcasts it (size 1).
fn batch_strides(shape: &[usize], rank: usize, matrix_len: usize) -> [usize; MAX_RANK] {
    let mut strides = [0; MAX_RANK];
    let missing = rank - shape.len();
    let mut stride = matrix_len;
    for axis in (0..shape.len() - 2).rev() {
        if shape[axis] != 1 {
            strides[missing + axis] = stride;
        }
        stride *= shape[axis];
    }
    strides
}

/// `y = a @ b` for row-major `[m, k] @ [k, n]`; rows of `b` are accumulated into rows of
/// `y` so the inner loop is contiguous.
fn matmul_2d(a: &[f32], b: &[f32], y: &mut [f32], [m, k, n]: [usize; 3]) {
    for i in 0..m {
        let y_row = &mut y[i * n..(i + 1) * n];
        y_row.fill(0.0);
        for p in 0..k {
            let a_ip = a[i * k + p];
            for (y, b) in y_row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                *y += a_ip * b;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn random(rng: &mut SmallRng, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect()
    }

    #[test]
    fn two_by_two_by_hand() {
        // [1 2; 3 4] @ [5 6; 7 8] = [19 22; 43 50]
        let mut y = [f32::NAN; 4];
        matmul(
            &[1.0, 2.0, 3.0, 4.0],
            &[2, 2],
            &[5.0, 6.0, 7.0, 8.0],
            &[2, 2],
            &mut y,
            &[2, 2],
        );
        assert_eq!(y, [19.0, 22.0, 43.0, 50.0]);
    }

    #[test]
    fn output_shapes() {
        assert_eq!(matmul_output_shape(&[2, 3], &[3, 4]), Some(vec![2, 4]));
        assert_eq!(
            matmul_output_shape(&[2, 1, 3, 4], &[5, 4, 2]),
            Some(vec![2, 5, 3, 2])
        );
        assert_eq!(
            matmul_output_shape(&[7, 3, 4], &[4, 2]),
            Some(vec![7, 3, 2])
        );
        assert_eq!(
            matmul_output_shape(&[1, 3, 4], &[0, 4, 2]),
            Some(vec![0, 3, 2])
        );
        assert_eq!(matmul_output_shape(&[2, 3], &[4, 3]), None);
        assert_eq!(matmul_output_shape(&[3, 2, 2], &[4, 2, 2]), None);
        assert_eq!(matmul_output_shape(&[3], &[3, 2]), None);
        assert_eq!(matmul_output_shape(&[1; 9], &[1, 1]), None);
    }

    #[test]
    fn broadcast_batches_match_naive_loops() {
        // [2, 1, 3, 4] @ [5, 4, 2] -> [2, 5, 3, 2]: a's axis 1 and b's missing axis 0
        // broadcast.
        let mut rng = SmallRng::seed_from_u64(1);
        let a = random(&mut rng, 2 * 3 * 4);
        let b = random(&mut rng, 5 * 4 * 2);
        let mut y = vec![f32::NAN; 2 * 5 * 3 * 2];
        matmul(&a, &[2, 1, 3, 4], &b, &[5, 4, 2], &mut y, &[2, 5, 3, 2]);
        for i0 in 0..2 {
            for i1 in 0..5 {
                for r in 0..3 {
                    for c in 0..2 {
                        let sum: f32 = (0..4)
                            .map(|p| a[(i0 * 3 + r) * 4 + p] * b[(i1 * 4 + p) * 2 + c])
                            .sum();
                        let got = y[((i0 * 5 + i1) * 3 + r) * 2 + c];
                        assert!((got - sum).abs() <= 1e-6, "[{i0}, {i1}, {r}, {c}]");
                    }
                }
            }
        }
    }

    #[test]
    fn rank_two_operand_broadcasts_over_batches() {
        // [3, 2, 4] @ [4, 5] -> [3, 2, 5]: b is shared by every batch.
        let mut rng = SmallRng::seed_from_u64(2);
        let a = random(&mut rng, 3 * 2 * 4);
        let b = random(&mut rng, 4 * 5);
        let mut y = vec![f32::NAN; 3 * 2 * 5];
        matmul(&a, &[3, 2, 4], &b, &[4, 5], &mut y, &[3, 2, 5]);
        for i in 0..3 {
            for r in 0..2 {
                for c in 0..5 {
                    let sum: f32 = (0..4).map(|p| a[(i * 2 + r) * 4 + p] * b[p * 5 + c]).sum();
                    assert!((y[(i * 2 + r) * 5 + c] - sum).abs() <= 1e-6);
                }
            }
        }
    }
}
