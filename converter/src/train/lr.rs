//! Learning-rate schedules over the steps of a run.

use super::{Result, TrainError};

/// How the learning rate changes over `total` steps.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LrSchedule {
    /// The base rate throughout.
    Constant,
    /// Linear warm-up over `warmup` steps, then half a cosine down to 0 at the last step
    /// (Loshchilov and Hutter 2017, without restarts).
    Cosine {
        /// Steps of linear warm-up from `base / warmup`.
        warmup: u64,
    },
    /// Multiplied by `gamma` every `every` steps (PyTorch `StepLR`).
    Step {
        /// Steps between decays.
        every: u64,
        /// Factor per decay.
        gamma: f64,
    },
}

impl LrSchedule {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        match *self {
            LrSchedule::Step { every, gamma } if every == 0 || !(gamma > 0.0 && gamma <= 1.0) => {
                Err(TrainError::Config(format!(
                    "step schedule: every ({every}) must be >= 1 and gamma ({gamma}) in (0, 1]"
                )))
            }
            _ => Ok(()),
        }
    }

    /// The rate at `step` (0-based) of `total` steps, from base rate `base`.
    pub fn at(&self, base: f64, step: u64, total: u64) -> f64 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Cosine { warmup } => {
                if step < warmup {
                    return base * (step + 1) as f64 / warmup as f64;
                }
                let span = total.saturating_sub(warmup).max(1) as f64;
                let progress = ((step - warmup) as f64 / span).min(1.0);
                base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            LrSchedule::Step { every, gamma } => {
                let decays = step / every.max(1);
                base * gamma.powi(i32::try_from(decays).unwrap_or(i32::MAX))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_by_hand() {
        assert_eq!(LrSchedule::Constant.at(0.1, 57, 100), 0.1);
        let cos = LrSchedule::Cosine { warmup: 10 };
        assert!((cos.at(1.0, 0, 110) - 0.1).abs() < 1e-12);
        assert!((cos.at(1.0, 9, 110) - 1.0).abs() < 1e-12);
        assert!((cos.at(1.0, 10, 110) - 1.0).abs() < 1e-12);
        assert!((cos.at(1.0, 60, 110) - 0.5).abs() < 1e-12);
        assert!(cos.at(1.0, 110, 110).abs() < 1e-12);
        let step = LrSchedule::Step {
            every: 10,
            gamma: 0.5,
        };
        assert_eq!(step.at(1.0, 9, 100), 1.0);
        assert_eq!(step.at(1.0, 25, 100), 0.25);
        assert!(LrSchedule::Step {
            every: 0,
            gamma: 0.5
        }
        .validate()
        .is_err());
        assert!(LrSchedule::Step {
            every: 3,
            gamma: 1.5
        }
        .validate()
        .is_err());
    }
}
