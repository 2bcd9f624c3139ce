//! Sliding windows over one spatial axis, shared by convolution and pooling.

/// Output length of one axis of a sliding window (convolution, pooling), by the ONNX /
/// PyTorch rule:
/// `floor_or_ceil((input + pads - dilation * (kernel - 1) - 1) / stride) + 1`, where with
/// `ceil_mode` a last window that would start in the end padding is dropped. `None` when
/// the window does not fit in the padded input, when `kernel`, `stride` or `dilation` is
/// zero, or on overflow.
pub fn output_len(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_begin: usize,
    pad_end: usize,
    ceil_mode: bool,
) -> Option<usize> {
    if kernel == 0 || stride == 0 || dilation == 0 {
        return None;
    }
    let padded = input.checked_add(pad_begin)?.checked_add(pad_end)?;
    let window = dilation.checked_mul(kernel - 1)?.checked_add(1)?;
    let span = padded.checked_sub(window)?;
    let steps = if ceil_mode {
        span.div_ceil(stride)
    } else {
        span / stride
    };
    let mut out = steps + 1;
    if ceil_mode && steps.checked_mul(stride)? >= input + pad_begin {
        out -= 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::output_len;

    #[test]
    fn output_len_rule() {
        assert_eq!(output_len(224, 3, 2, 1, 1, 1, false), Some(112));
        assert_eq!(output_len(4, 2, 2, 1, 1, 0, false), Some(2));
        assert_eq!(output_len(4, 2, 2, 1, 1, 0, true), Some(3));
        // Ceil would add a window starting in the end padding: dropped.
        assert_eq!(output_len(4, 2, 2, 1, 0, 1, true), Some(2));
        assert_eq!(output_len(5, 2, 2, 1, 0, 0, false), Some(2));
        assert_eq!(output_len(5, 2, 2, 1, 0, 0, true), Some(3));
        assert_eq!(output_len(4, 3, 2, 1, 1, 1, true), Some(3));
        assert_eq!(output_len(7, 3, 2, 2, 1, 1, false), Some(3));
        assert_eq!(output_len(5, 2, 1, 2, 0, 0, false), Some(3));
        assert_eq!(output_len(3, 3, 1, 1, 0, 0, true), Some(1));
    }

    #[test]
    fn output_len_rejects() {
        assert_eq!(output_len(2, 3, 1, 1, 0, 0, false), None);
        assert_eq!(output_len(4, 2, 1, 4, 0, 0, false), None);
        assert_eq!(output_len(4, 2, 0, 1, 0, 0, false), None);
        assert_eq!(output_len(4, 0, 1, 1, 0, 0, false), None);
        assert_eq!(output_len(4, 2, 1, 0, 0, 0, false), None);
        assert_eq!(output_len(usize::MAX, 1, 1, 1, 1, 0, false), None);
        assert_eq!(output_len(4, usize::MAX, 1, 2, 0, 0, false), None);
    }

    #[test]
    fn convolution_lengths() {
        assert_eq!(output_len(3, 2, 1, 1, 0, 0, false), Some(2));
        assert_eq!(output_len(3, 2, 2, 1, 1, 1, false), Some(2));
        assert_eq!(output_len(3, 2, 1, 2, 0, 0, false), Some(1));
        assert_eq!(output_len(224, 7, 2, 1, 3, 3, false), Some(112));
        assert_eq!(output_len(7, 3, 2, 2, 2, 1, false), Some(3));
        assert_eq!(output_len(2, 3, 1, 1, 0, 0, false), None);
        assert_eq!(output_len(3, 2, 1, 3, 0, 0, false), None);
        assert_eq!(output_len(3, 1, 0, 1, 0, 0, false), None);
        assert_eq!(output_len(3, 1, 1, 0, 0, 0, false), None);
        assert_eq!(output_len(3, 0, 1, 1, 0, 0, false), None);
        assert_eq!(output_len(usize::MAX, 1, 1, 1, 1, 0, false), None);
        assert_eq!(output_len(3, 2, 1, usize::MAX, 0, 0, false), None);
    }
}
