//! Normalisation of pixels: `(x - mean[c]) / std[c]` per channel.

use std::str::FromStr;

use candle_core::{Device, Tensor};

use super::{DataError, Dataset, Result};

/// How to normalise images before training.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Normalize {
    /// Leave pixels as loaded (in `[0, 1]` for images).
    #[default]
    None,
    /// Fixed statistics: one mean and one standard deviation for all channels, or one per
    /// channel.
    MeanStd {
        /// Means.
        mean: Vec<f32>,
        /// Standard deviations, each positive.
        std: Vec<f32>,
    },
    /// Each channel's mean and standard deviation measured on the data it is fitted to.
    PerChannel,
}

/// Per-channel statistics to apply: `(x - mean[c]) / std[c]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStats {
    /// One mean per channel.
    pub mean: Vec<f32>,
    /// One standard deviation per channel, each positive.
    pub std: Vec<f32>,
}

impl Normalize {
    /// The statistics this option gives for images like those of `data`; `PerChannel`
    /// measures them on `data`. Fit on the training set, then apply the result to the
    /// training, validation and test sets alike.
    pub fn fit(&self, data: &Dataset) -> Result<ChannelStats> {
        let channels = data.image_shape()[0];
        match self {
            Self::None => Ok(ChannelStats {
                mean: vec![0.0; channels],
                std: vec![1.0; channels],
            }),
            Self::MeanStd { mean, std } => {
                let per_channel = |values: &[f32], what: &str| {
                    match values.len() {
                    1 => Ok(vec![values[0]; channels]),
                    n if n == channels => Ok(values.to_vec()),
                    n => Err(DataError::Invalid(format!(
                        "normalisation gives {n} {what} values, the images of {} have {channels} channel(s)",
                        data.name()
                    ))),
                }
                };
                let stats = ChannelStats {
                    mean: per_channel(mean, "mean")?,
                    std: per_channel(std, "std")?,
                };
                if let Some(bad) = stats.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                    return Err(DataError::Invalid(format!(
                        "normalisation std {bad} must be positive"
                    )));
                }
                if let Some(bad) = stats.mean.iter().find(|m| !m.is_finite()) {
                    return Err(DataError::Invalid(format!(
                        "normalisation mean {bad} must be finite"
                    )));
                }
                Ok(stats)
            }
            Self::PerChannel => ChannelStats::measure(data),
        }
    }
}

/// The accepted text forms of [`Normalize`].
const NORMALIZE_FORMS: &str =
    "none, per-channel, or MEAN/STD with comma-separated values per channel (0.5/0.25, \
     0.485,0.456,0.406/0.229,0.224,0.225)";

impl FromStr for Normalize {
    type Err = DataError;

    /// Parses `none`, `per-channel` or `MEAN/STD` (each one value or one per channel,
    /// comma-separated).
    fn from_str(text: &str) -> Result<Self> {
        let bad = || DataError::Invalid(format!("normalisation '{text}': use {NORMALIZE_FORMS}"));
        match text.trim() {
            "none" => Ok(Self::None),
            "per-channel" => Ok(Self::PerChannel),
            other => {
                let (mean, std) = other.split_once('/').ok_or_else(bad)?;
                let values = |list: &str| -> Result<Vec<f32>> {
                    list.split(',')
                        .map(|v| v.trim().parse::<f32>().map_err(|_| bad()))
                        .collect()
                };
                Ok(Self::MeanStd {
                    mean: values(mean)?,
                    std: values(std)?,
                })
            }
        }
    }
}

impl ChannelStats {
    /// Measures each channel's mean and (population) standard deviation over all images
    /// and pixels of `data`; a constant channel gets a standard deviation of 1.
    pub fn measure(data: &Dataset) -> Result<Self> {
        // [N, C, H, W] -> [C, N * H * W]
        let x = data.images().transpose(0, 1)?.flatten_from(1)?;
        let mean = x.mean_keepdim(1)?;
        let var = x.broadcast_sub(&mean)?.sqr()?.mean(1)?;
        let mean: Vec<f32> = mean.flatten_all()?.to_vec1()?;
        let std = var
            .sqrt()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(|s| if s > 0.0 { s } else { 1.0 })
            .collect();
        Ok(Self { mean, std })
    }

    /// `data` with `(x - mean[c]) / std[c]` applied to every pixel.
    pub fn apply(&self, data: &Dataset) -> Result<Dataset> {
        let channels = data.image_shape()[0];
        if self.mean.len() != channels || self.std.len() != channels {
            return Err(DataError::Invalid(format!(
                "normalisation statistics for {} channel(s), the images of {} have {channels}",
                self.mean.len(),
                data.name()
            )));
        }
        let column = |values: &[f32]| Tensor::from_slice(values, (1, channels, 1, 1), &Device::Cpu);
        let images = data
            .images()
            .broadcast_sub(&column(&self.mean)?)?
            .broadcast_div(&column(&self.std)?)?;
        data.with_images(images)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::data::dataset::numbered_classes;
    use crate::train::data::digits;

    /// Two 2-channel 1x2 images: channel 0 is 0, 2, 4, 6; channel 1 is constant 5.
    fn two_channels() -> Dataset {
        let pixels = vec![0.0, 2.0, 5.0, 5.0, 4.0, 6.0, 5.0, 5.0];
        Dataset::from_pixels("two", pixels, [2, 2, 1, 2], vec![0, 1], numbered_classes(2)).unwrap()
    }

    #[test]
    fn per_channel_statistics() {
        let data = two_channels();
        let stats = Normalize::PerChannel.fit(&data).unwrap();
        assert_eq!(stats.mean, [3.0, 5.0]);
        assert_eq!(stats.std[1], 1.0); // constant channel
        assert!((stats.std[0] - 5f32.sqrt()).abs() < 1e-6);
        let normalised = stats.apply(&data).unwrap();
        let again = ChannelStats::measure(&normalised).unwrap();
        assert!(again.mean.iter().all(|m| m.abs() < 1e-6), "{again:?}");
        assert!((again.std[0] - 1.0).abs() < 1e-6);
        assert_eq!(normalised.labels(), data.labels());

        // Fitted on a training split, applied to the validation split.
        let (train, validation) = crate::train::data::split(&digits().unwrap(), 0.25, 3).unwrap();
        let stats = Normalize::PerChannel.fit(&train).unwrap();
        let validation = stats.apply(&validation).unwrap();
        let measured = ChannelStats::measure(&validation).unwrap();
        assert!(measured.mean[0].abs() < 0.05, "{measured:?}");
        assert!((measured.std[0] - 1.0).abs() < 0.05, "{measured:?}");
    }

    #[test]
    fn fixed_statistics_and_parsing() {
        let data = two_channels();
        let none = Normalize::None.fit(&data).unwrap();
        assert_eq!((none.mean, none.std), (vec![0.0; 2], vec![1.0; 2]));

        let fixed: Normalize = "1/2".parse().unwrap();
        assert_eq!(
            fixed,
            Normalize::MeanStd {
                mean: vec![1.0],
                std: vec![2.0]
            }
        );
        let stats = fixed.fit(&data).unwrap();
        let values: Vec<f32> = stats
            .apply(&data)
            .unwrap()
            .images()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(values, [-0.5, 0.5, 2.0, 2.0, 1.5, 2.5, 2.0, 2.0]);

        assert_eq!("none".parse::<Normalize>().unwrap(), Normalize::None);
        assert_eq!(
            "per-channel".parse::<Normalize>().unwrap(),
            Normalize::PerChannel
        );
        let per_channel: Normalize = "0.1, 0.2/0.3,0.4".parse().unwrap();
        assert_eq!(per_channel.fit(&data).unwrap().std, [0.3, 0.4]);

        let err = "fancy".parse::<Normalize>().unwrap_err().to_string();
        assert!(
            err.starts_with("normalisation 'fancy': use none, per-channel, or MEAN/STD"),
            "{err}"
        );
        let err = "1,2,3/1"
            .parse::<Normalize>()
            .unwrap()
            .fit(&data)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "normalisation gives 3 mean values, the images of two have 2 channel(s)"
        );
        let err = "0/0"
            .parse::<Normalize>()
            .unwrap()
            .fit(&data)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "normalisation std 0 must be positive");
        let err = ChannelStats {
            mean: vec![0.0],
            std: vec![1.0],
        }
        .apply(&data)
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "normalisation statistics for 1 channel(s), the images of two have 2"
        );
    }
}
