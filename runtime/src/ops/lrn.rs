//! Local response normalization across channels (ONNX LRN).

use crate::graph::Lrn;

/// Writes into `y` the LRN of `x` (`shape = [N, C, ...]`, rank >= 2, axis 1 the
/// channels): `y = x / (bias + alpha / size * s)^beta`, where `s` sums `x^2` over the
/// channels `c - floor((size - 1) / 2) ..= c + ceil((size - 1) / 2)` that exist, at the
/// same batch item and position. Never allocates.
pub fn lrn(p: &Lrn, x: &[f32], shape: &[usize], y: &mut [f32]) {
    let channels = shape[1];
    let inner: usize = shape[2..].iter().product();
    let before = (p.size - 1) / 2;
    let after = p.size - 1 - before;
    let alpha = p.alpha / p.size as f32;
    let block = channels * inner;
    for (xb, yb) in x.chunks_exact(block).zip(y.chunks_exact_mut(block)) {
        for c in 0..channels {
            let window = c.saturating_sub(before)..=c.saturating_add(after).min(channels - 1);
            for i in 0..inner {
                let sum: f32 = window
                    .clone()
                    .map(|k| xb[k * inner + i] * xb[k * inner + i])
                    .sum();
                let v = xb[c * inner + i];
                yb[c * inner + i] = v / libm::powf(p.bias + alpha * sum, p.beta);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p: &Lrn, x: &[f32], shape: &[usize]) -> [f32; 4] {
        let mut y = [f32::NAN; 4];
        lrn(p, x, shape, &mut y);
        y
    }

    #[track_caller]
    fn close(got: &[f32], want: &[f32]) {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-6, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn odd_window_centred() {
        // Channels 1, 2, 3, 4; size 3 looks one channel each way. alpha = 3 makes
        // alpha / size = 1, beta = 1, bias = 1: sums 1+4 = 5, 1+4+9 = 14, 4+9+16 = 29,
        // 9+16 = 25, so y = 1/6, 2/15, 3/30, 4/26.
        let p = Lrn {
            size: 3,
            alpha: 3.0,
            beta: 1.0,
            bias: 1.0,
        };
        let y = run(&p, &[1.0, 2.0, 3.0, 4.0], &[1, 4, 1, 1]);
        close(&y, &[1.0 / 6.0, 2.0 / 15.0, 0.1, 4.0 / 26.0]);
    }

    #[test]
    fn even_window_looks_ahead() {
        // Size 2: floor(1/2) = 0 channels before, ceil(1/2) = 1 after. alpha = 2 gives
        // alpha / size = 1, beta = 0.5, bias = 2: sums 1+4 = 5, 4+9 = 13, 9+16 = 25, 16,
        // so y = 1/sqrt(7), 2/sqrt(15), 3/sqrt(27), 4/sqrt(18).
        let p = Lrn {
            size: 2,
            alpha: 2.0,
            beta: 0.5,
            bias: 2.0,
        };
        let y = run(&p, &[1.0, 2.0, 3.0, 4.0], &[1, 4, 1, 1]);
        close(&y, &[0.377_964_47, 0.516_397_8, 0.577_350_26, 0.942_809_04]);
    }

    #[test]
    fn positions_and_batches_are_separate() {
        // Shape [2, 2] (no spatial axes): batch 0 has channels 1, 2, batch 1 has 3, 0. Size 1 only squares the element itself; alpha = 1, beta = 1,
        // bias = 0.5: y = x / (0.5 + x^2) = 1/1.5, 2/4.5, 3/9.5, 0.
        let p = Lrn {
            size: 1,
            alpha: 1.0,
            beta: 1.0,
            bias: 0.5,
        };
        let y = run(&p, &[1.0, 2.0, 3.0, 0.0], &[2, 2]);
        close(&y, &[1.0 / 1.5, 2.0 / 4.5, 3.0 / 9.5, 0.0]);

        // One batch item, two channels, two positions: position 0 has (1, 1), position 1
        // has (2, 0); size 3 covers both channels: sums 2 and 4. beta = 1, alpha = 3.
        let p = Lrn {
            size: 3,
            alpha: 3.0,
            beta: 1.0,
            bias: 1.0,
        };
        let y = run(&p, &[1.0, 2.0, 1.0, 0.0], &[1, 2, 2]);
        close(&y, &[1.0 / 3.0, 2.0 / 5.0, 1.0 / 3.0, 0.0]);
    }
}
