//! A seeded, stratified train / validation split.

use super::shuffle::SplitMix64;
use super::{DataError, Dataset, Result};

/// Splits `data` into a training and a validation set, stratified: every class gives the
/// same fraction of its images to validation (rounded by largest remainder so the
/// validation set holds `round(len * validation_fraction)` images in total). Images are
/// picked at random with `seed` and keep their original order within each set. Both sets
/// must be non-empty.
pub fn split(data: &Dataset, validation_fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
    let (train, validation) =
        split_indices(data.labels(), data.classes(), validation_fraction, seed)?;
    Ok((
        data.subset(&train, format!("{} (train split)", data.name()))?,
        data.subset(&validation, format!("{} (validation split)", data.name()))?,
    ))
}

/// The indices of [`split`]: `(train, validation)`, each ascending, together `0..len`.
/// `labels` must be below `classes`.
pub fn split_indices(
    labels: &[u32],
    classes: usize,
    validation_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(validation_fraction > 0.0 && validation_fraction < 1.0) {
        return Err(DataError::Invalid(format!(
            "validation fraction {validation_fraction} is outside (0, 1)"
        )));
    }
    let mut members = vec![Vec::new(); classes];
    for (index, &label) in labels.iter().enumerate() {
        let Some(class) = members.get_mut(label as usize) else {
            return Err(DataError::Invalid(format!(
                "label {label} of image {index} is outside the classes 0..{classes}"
            )));
        };
        class.push(index);
    }
    let total = (labels.len() as f64 * validation_fraction).round() as usize;
    if total == 0 || total == labels.len() {
        return Err(DataError::Invalid(format!(
            "a validation fraction of {validation_fraction} leaves {} of {} images for \
             validation; both sets need at least one",
            total,
            labels.len()
        )));
    }

    // Each class's exact share, floored, then the remaining images to the largest remainders.
    let exact: Vec<f64> = members
        .iter()
        .map(|m| m.len() as f64 * validation_fraction)
        .collect();
    let mut quota: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut by_remainder: Vec<usize> = (0..classes).collect();
    by_remainder
        .sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    let missing = total.saturating_sub(quota.iter().sum());
    for &class in by_remainder.iter().take(missing) {
        quota[class] += 1;
    }

    let mut train = Vec::with_capacity(labels.len() - total);
    let mut validation = Vec::with_capacity(total);
    for (class, mut indices) in members.into_iter().enumerate() {
        SplitMix64::new(seed, class as u64).shuffle(&mut indices);
        let (picked, rest) = indices.split_at(quota[class].min(indices.len()));
        validation.extend_from_slice(picked);
        train.extend_from_slice(rest);
    }
    train.sort_unstable();
    validation.sort_unstable();
    Ok((train, validation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::data::digits;

    #[test]
    fn sizes_stratification_and_determinism() {
        let data = digits().unwrap();
        let (train, validation) = split(&data, 0.2, 1).unwrap();
        assert_eq!((train.len(), validation.len()), (1438, 359)); // 1797 * 0.2 = 359.4
        assert_eq!(validation.name(), "digits (validation split)");
        // Every class gives 17.4 to 36.6 images: 36 or 37 (or 35 for the 174 eights).
        for (class, &count) in validation.class_counts().iter().enumerate() {
            let exact = data.class_counts()[class] as f64 * 0.2;
            assert!(
                (count as f64 - exact).abs() < 1.0,
                "class {class}: {count} vs {exact}"
            );
        }
        // Together the sets are the data, each image once.
        let (t, v) = split_indices(data.labels(), 10, 0.2, 1).unwrap();
        let mut all: Vec<usize> = t.iter().chain(&v).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1797).collect::<Vec<_>>());

        // Same seed, same split (images too); another seed, another split.
        let (again_train, again_validation) = split(&data, 0.2, 1).unwrap();
        assert_eq!(again_validation.labels(), validation.labels());
        let diff = (again_train.images() - train.images())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0);
        let (t2, v2) = split_indices(data.labels(), 10, 0.2, 2).unwrap();
        assert_ne!(v2, v);
        assert_eq!((t2.len(), v2.len()), (1438, 359));
    }

    #[test]
    fn bad_fractions_are_errors() {
        let labels = [0, 1, 0, 1];
        for fraction in [0.0, 1.0, -0.5, f64::NAN] {
            let err = split_indices(&labels, 2, fraction, 0)
                .unwrap_err()
                .to_string();
            assert_eq!(
                err,
                format!("validation fraction {fraction} is outside (0, 1)")
            );
        }
        let err = split_indices(&labels, 2, 0.1, 0).unwrap_err().to_string();
        assert_eq!(
            err,
            "a validation fraction of 0.1 leaves 0 of 4 images for validation; both sets \
             need at least one"
        );
        let err = split_indices(&labels, 1, 0.5, 0).unwrap_err().to_string();
        assert_eq!(err, "label 1 of image 1 is outside the classes 0..1");
        let (train, validation) = split_indices(&labels, 2, 0.5, 0).unwrap();
        assert_eq!((train.len(), validation.len()), (2, 2));
    }
}
