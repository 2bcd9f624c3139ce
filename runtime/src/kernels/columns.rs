//! Which output columns of a sliding window read inside the input row, and the gather of
//! those columns, for the convolution kernels that walk rows directly (im2col, depthwise).

/// The output columns `lo..hi` whose tap at offset `shift` (kernel column times dilation)
/// reads a real input column, and `first`, the input column of output `lo`: output `ox`
/// reads input `ox * stride + shift - pad`, which must lie in `0..width`. `None` when no
/// output does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// First output column inside.
    pub lo: usize,
    /// One past the last output column inside.
    pub hi: usize,
    /// Input column read by output `lo`.
    pub first: usize,
}

/// The [`Run`] of one kernel column; see there.
pub fn inside(
    width: usize,
    out_width: usize,
    pad: usize,
    stride: usize,
    shift: usize,
) -> Option<Run> {
    let lo = pad.saturating_sub(shift).div_ceil(stride);
    let hi = (width + pad)
        .checked_sub(shift + 1)
        .map_or(0, |last| last / stride + 1)
        .min(out_width);
    (lo < hi).then(|| Run {
        lo,
        hi,
        first: lo * stride + shift - pad,
    })
}

/// Writes the outputs of one kernel column: `out[ox]` is the input under it for the
/// columns of `run` (`line[first + (ox - lo) * stride]`) and 0 in the padding.
#[inline(always)]
pub fn gather(line: &[f32], run: Option<Run>, stride: usize, out: &mut [f32]) {
    let Some(Run { lo, hi, first }) = run else {
        out.fill(0.0);
        return;
    };
    out[..lo].fill(0.0);
    out[hi..].fill(0.0);
    let inside = &mut out[lo..hi];
    if stride == 1 {
        inside.copy_from_slice(&line[first..first + inside.len()]);
    } else {
        // Whole chunks of `stride` while the line has them (the compiler turns `chunk[0]`
        // into vector loads and shuffles), then the last few one by one.
        let src = &line[first..];
        let whole = inside.len().min(src.len() / stride);
        let (head, tail) = inside.split_at_mut(whole);
        for (o, chunk) in head.iter_mut().zip(src.chunks_exact(stride)) {
            *o = chunk[0];
        }
        for (i, o) in tail.iter_mut().enumerate() {
            *o = src[(whole + i) * stride];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_match_the_definition() {
        for width in 1usize..9 {
            for pad in 0usize..4 {
                for stride in 1..4 {
                    for shift in 0..6 {
                        let out_width = (width + 2 * pad).saturating_sub(shift) / stride + 2;
                        let inside_cols: alloc::vec::Vec<usize> = (0..out_width)
                            .filter(|ox| {
                                (ox * stride + shift)
                                    .checked_sub(pad)
                                    .is_some_and(|ix| ix < width)
                            })
                            .collect();
                        let run = inside(width, out_width, pad, stride, shift);
                        let line: alloc::vec::Vec<f32> = (1..=width).map(|v| v as f32).collect();
                        let mut out = alloc::vec![f32::NAN; out_width];
                        gather(&line, run, stride, &mut out);
                        for (ox, &o) in out.iter().enumerate() {
                            let want = (ox * stride + shift)
                                .checked_sub(pad)
                                .and_then(|ix| line.get(ix))
                                .map_or(0.0, |&v| v);
                            assert_eq!(o, want, "{width} {pad} {stride} {shift} at {ox}");
                        }
                        match run {
                            None => assert!(inside_cols.is_empty()),
                            Some(r) => {
                                assert_eq!(
                                    inside_cols,
                                    (r.lo..r.hi).collect::<alloc::vec::Vec<_>>()
                                );
                                assert_eq!(r.first, r.lo * stride + shift - pad);
                            }
                        }
                    }
                }
            }
        }
    }
}
