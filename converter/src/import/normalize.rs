//! ONNX attribute conventions turned into plain values: negative axes, reshape specs,
//! slice bounds, automatic padding. Shared by constant folding and op conversion.

/// A negative axis counts from the end.
pub fn axis(a: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let n = if a < 0 { a + r } else { a };
    if (0..r).contains(&n) {
        Ok(n as usize)
    } else {
        Err(format!("axis {a} is out of range for rank {rank}"))
    }
}

/// Sorted, distinct axes.
pub fn axes(list: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    let mut out = list
        .iter()
        .map(|&a| axis(a, rank))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The shape a Reshape produces: `0` copies the input dimension (unless `allowzero`),
/// one `-1` takes what is left.
pub fn reshape_target(
    input: &[usize],
    spec: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>, String> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(*input.get(i).ok_or_else(|| {
                format!(
                    "shape {spec:?} copies axis {i}, input has rank {}",
                    input.len()
                )
            })?),
            d if d >= 0 => out.push(d as usize),
            _ => return Err(format!("invalid reshape spec {spec:?}")),
        }
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || total % known != 0 {
            return Err(format!("cannot reshape {input:?} into {spec:?}"));
        }
        out[i] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return Err(format!("cannot reshape {input:?} into {spec:?}"));
    }
    Ok(out)
}

/// Squeeze: drops `axes` (all 1-sized axes when empty).
pub fn squeeze(input: &[usize], list: &[i64]) -> Result<Vec<usize>, String> {
    let drop = axes(list, input.len())?;
    if let Some(&a) = drop.iter().find(|&&a| input[a] != 1) {
        return Err(format!("cannot squeeze axis {a} of size {}", input[a]));
    }
    Ok(input
        .iter()
        .enumerate()
        .filter(|(i, &d)| {
            if drop.is_empty() {
                d != 1
            } else {
                !drop.contains(i)
            }
        })
        .map(|(_, &d)| d)
        .collect())
}

/// Unsqueeze: inserts 1-sized axes at `axes` of the output.
pub fn unsqueeze(input: &[usize], list: &[i64]) -> Result<Vec<usize>, String> {
    let rank = input.len() + list.len();
    let add = axes(list, rank)?;
    if add.len() != list.len() {
        return Err(format!("repeated axes {list:?}"));
    }
    let mut rest = input.iter();
    Ok((0..rank)
        .map(|i| {
            if add.contains(&i) {
                1
            } else {
                *rest.next().unwrap_or(&1)
            }
        })
        .collect())
}

/// Padding `[begin_h, begin_w, end_h, end_w]` for a 2-D window op from `auto_pad` or
/// explicit `pads`.
pub fn window_pads(
    auto_pad: &str,
    pads: Option<&[i64]>,
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
) -> Result<[usize; 4], String> {
    match auto_pad {
        "NOTSET" | "" => match pads {
            None => Ok([0; 4]),
            Some(p) if p.len() == 4 && p.iter().all(|&v| v >= 0) => {
                Ok([p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize])
            }
            Some(p) => Err(format!("pads {p:?} must be 4 non-negative values")),
        },
        "VALID" => Ok([0; 4]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut out = [0; 4];
            for a in 0..2 {
                let out_len = input[a].div_ceil(stride[a]);
                let extent = (kernel[a] - 1) * dilation[a] + 1;
                let total = ((out_len - 1) * stride[a] + extent).saturating_sub(input[a]);
                let small = total / 2;
                let (begin, end) = if auto_pad == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
                out[a] = begin;
                out[a + 2] = end;
            }
            Ok(out)
        }
        other => Err(format!("auto_pad '{other}' is not supported")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_rules() {
        assert_eq!(reshape_target(&[2, 3, 4], &[0, -1], false), Ok(vec![2, 12]));
        assert_eq!(
            reshape_target(&[2, 3, 4], &[4, 0, 2], false),
            Ok(vec![4, 3, 2])
        );
        assert!(reshape_target(&[2, 3, 4], &[5, -1], false).is_err());
    }

    #[test]
    fn same_padding() {
        // 5 wide, kernel 3, stride 2 -> 3 outputs, total pad 2: 1 and 1.
        let p = window_pads("SAME_UPPER", None, [5, 5], [3, 3], [2, 2], [1, 1]).unwrap();
        assert_eq!(p, [1, 1, 1, 1]);
        // 4 wide, kernel 2, stride 1 -> total pad 1: upper puts it at the end.
        let p = window_pads("SAME_UPPER", None, [4, 4], [2, 2], [1, 1], [1, 1]).unwrap();
        assert_eq!(p, [0, 0, 1, 1]);
        let p = window_pads("SAME_LOWER", None, [4, 4], [2, 2], [1, 1], [1, 1]).unwrap();
        assert_eq!(p, [1, 1, 0, 0]);
    }

    #[test]
    fn squeeze_unsqueeze() {
        assert_eq!(squeeze(&[1, 3, 1, 2], &[]), Ok(vec![3, 2]));
        assert_eq!(squeeze(&[1, 3, 1, 2], &[-2]), Ok(vec![1, 3, 2]));
        assert_eq!(unsqueeze(&[3, 2], &[0, 3]), Ok(vec![1, 3, 2, 1]));
    }
}
