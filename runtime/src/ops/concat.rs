//! Concatenation along one axis, one input at a time so the caller needs no list of inputs.

/// Copies `x` into `y` at position `offset` along `axis`. `x_shape` and `y_shape` must agree
/// on every other axis, and `offset + x_shape[axis] <= y_shape[axis]`; calling this for each
/// input with the running sum of the previous inputs' `x_shape[axis]` as `offset` fills `y`.
pub fn concat_part(
    x: &[f32],
    x_shape: &[usize],
    axis: usize,
    offset: usize,
    y: &mut [f32],
    y_shape: &[usize],
) {
    let inner: usize = x_shape[axis + 1..].iter().product();
    let x_block = x_shape[axis] * inner;
    let y_block = y_shape[axis] * inner;
    if x_block == 0 {
        return;
    }
    for (outer, src) in x.chunks_exact(x_block).enumerate() {
        let start = outer * y_block + offset * inner;
        y[start..start + x_block].copy_from_slice(src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_0_stacks_blocks() {
        let mut y = [0.0; 6];
        concat_part(&[1.0, 2.0], &[1, 2], 0, 0, &mut y, &[3, 2]);
        concat_part(&[3.0, 4.0, 5.0, 6.0], &[2, 2], 0, 1, &mut y, &[3, 2]);
        assert_eq!(y, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn channel_axis_of_nchw() {
        // [1, 1, 2, 2] and [1, 2, 2, 2] along channels into [2, 3, 2, 2] with N = 2:
        // every batch item takes a's channel then b's two channels.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let b = [
            10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, //
            20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0,
        ];
        let mut y = [f32::NAN; 24];
        concat_part(&a, &[2, 1, 2, 2], 1, 0, &mut y, &[2, 3, 2, 2]);
        concat_part(&b, &[2, 2, 2, 2], 1, 1, &mut y, &[2, 3, 2, 2]);
        let want = [
            1.0, 2.0, 3.0, 4.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, //
            5.0, 6.0, 7.0, 8.0, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0,
        ];
        assert_eq!(y, want);
    }

    #[test]
    fn last_axis_in_any_order() {
        // [2, 1] and [2, 2] into [2, 3]; the second input is written first.
        let mut y = [f32::NAN; 6];
        concat_part(&[3.0, 4.0, 7.0, 8.0], &[2, 2], 1, 1, &mut y, &[2, 3]);
        concat_part(&[1.0, 5.0], &[2, 1], 1, 0, &mut y, &[2, 3]);
        assert_eq!(y, [1.0, 3.0, 4.0, 5.0, 7.0, 8.0]);
    }

    #[test]
    fn empty_input_is_a_no_op() {
        let mut y = [1.0, 2.0];
        concat_part(&[], &[2, 0], 1, 1, &mut y, &[2, 1]);
        assert_eq!(y, [1.0, 2.0]);
    }
}
