//! Sparsity schedules: which sparsity to prune to, and at which training steps.
//!
//! `Constant` and `PolynomialDecay` follow TF-MOT's `ConstantSparsity` and
//! `PolynomialDecay` (tensorflow_model_optimization/python/core/sparsity/keras/
//! pruning_schedule.py) step for step, with the same parameter checks: steps are `i64` so
//! that `end_step = -1` ("prune forever") and TF-MOT's negative-value errors exist. The
//! constructors validate; the `Schedule` methods never panic, whatever the fields hold
//! (a non-positive frequency never prunes).

use crate::ir::Graph;

use super::{check_sparsity, PruneError, Result};

/// When to prune during training, and to which sparsity (fraction of weights removed).
pub trait Schedule {
    /// Target sparsity at training step `step`.
    fn sparsity_at(&self, step: u64) -> f32;
    /// Whether masks are recomputed at `step`.
    fn should_prune(&self, step: u64) -> bool;
}

/// TF-MOT's `_validate_sparsity`.
fn validate_sparsity(sparsity: f32, name: &str) -> Result<()> {
    if (0.0..1.0).contains(&sparsity) {
        Ok(())
    } else {
        Err(PruneError::Schedule(format!(
            "{name} {sparsity} must be in [0, 1)"
        )))
    }
}

/// TF-MOT's `_validate_step`, checks in the same order; `allow_forever` permits
/// `end_step = -1`.
fn validate_steps(
    begin_step: i64,
    end_step: i64,
    frequency: i64,
    allow_forever: bool,
) -> Result<()> {
    let fail = |m: String| Err(PruneError::Schedule(m));
    if begin_step < 0 {
        return fail(format!("begin_step {begin_step} must be >= 0"));
    }
    if !allow_forever && end_step == -1 {
        return fail("end_step cannot be -1: polynomial decay needs an end".into());
    }
    if end_step != -1 {
        if end_step < 0 {
            return fail(format!("end_step {end_step} must be -1 or >= 0"));
        }
        if end_step < begin_step {
            return fail(format!(
                "begin_step {begin_step} must be <= end_step {end_step} when end_step != -1"
            ));
        }
    }
    if frequency <= 0 {
        return fail(format!("frequency {frequency} must be > 0"));
    }
    Ok(())
}

/// TF-MOT's `_should_prune_in_step`: `begin_step <= step`, `step <= end_step` unless
/// `end_step < 0` (forever), and `(step - begin_step) mod frequency == 0`.
fn in_pruning_turn(step: u64, begin_step: i64, end_step: i64, frequency: i64) -> bool {
    let step = i128::from(step);
    let in_range = step >= i128::from(begin_step) && (step <= i128::from(end_step) || end_step < 0);
    in_range && frequency > 0 && (step - i128::from(begin_step)).rem_euclid(frequency.into()) == 0
}

/// Prune once, at step 0, to `sparsity`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OneShot {
    /// Fraction removed.
    pub sparsity: f32,
}

impl OneShot {
    /// Checks `sparsity` is in `[0, 1)`.
    pub fn new(sparsity: f32) -> Result<Self> {
        check_sparsity(sparsity)?;
        Ok(OneShot { sparsity })
    }
}

impl Schedule for OneShot {
    fn sparsity_at(&self, _step: u64) -> f32 {
        self.sparsity
    }

    fn should_prune(&self, step: u64) -> bool {
        step == 0
    }
}

/// TF-MOT `ConstantSparsity`: the same sparsity every `frequency` steps from `begin_step`
/// to `end_step` inclusive (`-1`: until training ends).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Constant {
    /// Fraction removed.
    pub sparsity: f32,
    /// First pruning step.
    pub begin_step: i64,
    /// Last step that may prune; `-1` for no end.
    pub end_step: i64,
    /// Steps between pruning steps.
    pub frequency: i64,
}

impl Constant {
    /// TF-MOT's defaults: `end_step = -1`, `frequency = 100`.
    pub fn new(sparsity: f32, begin_step: i64) -> Result<Self> {
        let schedule = Constant {
            sparsity,
            begin_step,
            end_step: -1,
            frequency: 100,
        };
        schedule.validate()?;
        Ok(schedule)
    }

    /// TF-MOT's checks: `begin_step >= 0`, `end_step` is `-1` or `>= begin_step`,
    /// `frequency > 0`, sparsity in `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        validate_steps(self.begin_step, self.end_step, self.frequency, true)?;
        validate_sparsity(self.sparsity, "target_sparsity")
    }
}

impl Schedule for Constant {
    fn sparsity_at(&self, _step: u64) -> f32 {
        self.sparsity
    }

    fn should_prune(&self, step: u64) -> bool {
        in_pruning_turn(step, self.begin_step, self.end_step, self.frequency)
    }
}

/// TF-MOT `PolynomialDecay` (Zhu and Gupta 2017, "To prune, or not to prune"): sparsity
/// rises fast from `initial_sparsity`, then levels off at `final_sparsity`:
/// `p = min(1, max(0, (step - begin_step) / (end_step - begin_step)))`,
/// `sparsity = final + (initial - final) * (1 - p)^power`, pruning every `frequency`
/// steps from `begin_step` to `end_step` inclusive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PolynomialDecay {
    /// Sparsity at `begin_step`.
    pub initial_sparsity: f32,
    /// Sparsity from `end_step` on.
    pub final_sparsity: f32,
    /// First pruning step.
    pub begin_step: i64,
    /// Last pruning step (never `-1` here).
    pub end_step: i64,
    /// Exponent of the decay.
    pub power: f32,
    /// Steps between pruning steps.
    pub frequency: i64,
}

impl PolynomialDecay {
    /// TF-MOT's defaults: `power = 3`, `frequency = 100`.
    pub fn new(
        initial_sparsity: f32,
        final_sparsity: f32,
        begin_step: i64,
        end_step: i64,
    ) -> Result<Self> {
        let schedule = PolynomialDecay {
            initial_sparsity,
            final_sparsity,
            begin_step,
            end_step,
            power: 3.0,
            frequency: 100,
        };
        schedule.validate()?;
        Ok(schedule)
    }

    /// TF-MOT's checks: `begin_step >= 0`, `end_step >= begin_step` (and not `-1`),
    /// `frequency > 0`, both sparsities in `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        validate_steps(self.begin_step, self.end_step, self.frequency, false)?;
        validate_sparsity(self.initial_sparsity, "initial_sparsity")?;
        validate_sparsity(self.final_sparsity, "final_sparsity")
    }
}

impl Schedule for PolynomialDecay {
    /// Computed in f64 and rounded once. With `begin_step == end_step`, where TF-MOT
    /// divides by zero, `p` is 0 before the step and 1 from it on.
    fn sparsity_at(&self, step: u64) -> f32 {
        let elapsed = i128::from(step) - i128::from(self.begin_step);
        let span = i128::from(self.end_step) - i128::from(self.begin_step);
        let p = if span == 0 {
            if elapsed < 0 {
                0.0
            } else {
                1.0
            }
        } else {
            (elapsed as f64 / span as f64).clamp(0.0, 1.0)
        };
        let (initial, fin) = (
            f64::from(self.initial_sparsity),
            f64::from(self.final_sparsity),
        );
        (fin + (initial - fin) * (1.0 - p).powf(f64::from(self.power))) as f32
    }

    fn should_prune(&self, step: u64) -> bool {
        in_pruning_turn(step, self.begin_step, self.end_step, self.frequency)
    }
}

/// `rounds` rounds of prune then fine-tune, each removing the same fraction of what is
/// left: round `k` (1-based) prunes to `1 - (1 - final_sparsity)^(k / rounds)`. As a
/// [`Schedule`], step `k` is round `k`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Iterative {
    /// Number of rounds, at least 1.
    pub rounds: usize,
    /// Sparsity after the last round.
    pub final_sparsity: f32,
}

impl Iterative {
    /// Checks `rounds >= 1` and `final_sparsity` in `[0, 1)`.
    pub fn new(rounds: usize, final_sparsity: f32) -> Result<Self> {
        let schedule = Iterative {
            rounds,
            final_sparsity,
        };
        schedule.validate()?;
        Ok(schedule)
    }

    /// Checks `rounds >= 1` and `final_sparsity` in `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        if self.rounds == 0 {
            return Err(PruneError::Schedule(
                "an iterative schedule needs at least one round".into(),
            ));
        }
        check_sparsity(self.final_sparsity)
    }

    /// Sparsity after round `round` (1-based; 0 before the first, the final sparsity from
    /// the last on).
    pub fn round_sparsity(&self, round: usize) -> f32 {
        if round == 0 || self.rounds == 0 {
            return 0.0;
        }
        let fraction = round.min(self.rounds) as f64 / self.rounds as f64;
        (1.0 - (1.0 - f64::from(self.final_sparsity)).powf(fraction)) as f32
    }
}

impl Schedule for Iterative {
    fn sparsity_at(&self, step: u64) -> f32 {
        self.round_sparsity(usize::try_from(step).unwrap_or(usize::MAX))
    }

    fn should_prune(&self, step: u64) -> bool {
        (1..=self.rounds as u64).contains(&step)
    }
}

/// Recovers accuracy between pruning rounds; the trainer implements it.
pub trait FineTune {
    /// Fine-tunes `graph` after pruning round `round` (1-based).
    fn fine_tune(&mut self, graph: &mut Graph, round: usize) -> anyhow::Result<()>;
}

/// Runs `schedule`: for each round `k` in `1..=rounds`, `prune(graph, round_sparsity(k))`
/// then `tuner.fine_tune(graph, k)`. Stops at the first error.
pub fn run_iterative(
    graph: &mut Graph,
    schedule: &Iterative,
    mut prune: impl FnMut(&mut Graph, f32) -> Result<()>,
    tuner: &mut dyn FineTune,
) -> Result<()> {
    schedule.validate()?;
    for round in 1..=schedule.rounds {
        prune(graph, schedule.round_sparsity(round))?;
        tuner
            .fine_tune(graph, round)
            .map_err(|error| PruneError::FineTune { round, error })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f64) -> bool {
        (f64::from(a) - b).abs() < 1e-6
    }

    #[test]
    fn polynomial_decay_matches_tf_mot_step_by_step() {
        let s = PolynomialDecay::new(0.5, 0.9, 0, 1000).unwrap();
        assert_eq!((s.power, s.frequency), (3.0, 100));
        // (step, p, sparsity = 0.9 + (0.5 - 0.9) * (1 - p)^3, should_prune)
        let table: [(u64, f64, bool); 11] = [
            (0, 0.9 - 0.4 * 1.0, true),
            (50, 0.9 - 0.4 * 0.857_375, false), // p = 0.05, 0.95^3
            (100, 0.9 - 0.4 * 0.729, true),     // p = 0.1
            (250, 0.9 - 0.4 * 0.421_875, false), // p = 0.25, 0.75^3
            (300, 0.9 - 0.4 * 0.343, true),     // p = 0.3
            (500, 0.85, true),                  // p = 0.5: 0.9 - 0.4 * 0.125
            (700, 0.9 - 0.4 * 0.027, true),     // p = 0.7
            (900, 0.9 - 0.4 * 0.001, true),     // p = 0.9
            (999, 0.9 - 0.4 * 1e-9, false),     // p = 0.999
            (1000, 0.9, true),                  // p = 1
            (1100, 0.9, false),                 // p clamped to 1, past end_step
        ];
        for (step, sparsity, prune) in table {
            let got = s.sparsity_at(step);
            assert!(close(got, sparsity), "step {step}: {got} vs {sparsity}");
            assert_eq!(s.should_prune(step), prune, "step {step}");
        }
        // Before begin_step, p is clamped to 0 and nothing is pruned.
        let late = PolynomialDecay::new(0.5, 0.9, 200, 1200).unwrap();
        assert!(close(late.sparsity_at(100), 0.5));
        assert!(!late.should_prune(100));
        assert!(late.should_prune(200) && late.should_prune(1200) && !late.should_prune(250));
        assert!(close(late.sparsity_at(700), 0.85));
        // power and frequency as fields; begin == end prunes once, to the final sparsity.
        let linear = PolynomialDecay {
            power: 1.0,
            frequency: 7,
            ..PolynomialDecay::new(0.0, 0.8, 10, 10).unwrap()
        };
        assert!(linear.validate().is_ok());
        assert!(close(linear.sparsity_at(9), 0.0));
        assert!(close(linear.sparsity_at(10), 0.8));
        assert!(linear.should_prune(10) && !linear.should_prune(17));
        let linear = PolynomialDecay {
            power: 1.0,
            ..PolynomialDecay::new(0.0, 0.8, 0, 100).unwrap()
        };
        assert!(close(linear.sparsity_at(25), 0.2));
    }

    #[test]
    fn constant_sparsity_forever_or_until_end() {
        let s = Constant::new(0.5, 0).unwrap();
        assert_eq!((s.end_step, s.frequency), (-1, 100));
        for (step, prune) in [(0, true), (100, true), (150, false), (1_000_000_000, true)] {
            assert_eq!(s.should_prune(step), prune, "step {step}");
            assert_eq!(s.sparsity_at(step), 0.5);
        }
        let s = Constant {
            begin_step: 50,
            end_step: 350,
            ..s
        };
        assert!(s.validate().is_ok());
        for (step, prune) in [
            (0, false),
            (50, true),
            (100, false),
            (150, true),
            (350, true),
            (450, false),
        ] {
            assert_eq!(s.should_prune(step), prune, "step {step}");
        }
        // A frequency that bypassed validation never prunes instead of dividing by zero.
        assert!(!Constant { frequency: 0, ..s }.should_prune(50));
    }

    #[test]
    fn tf_mot_validation_errors() {
        let msg = |r: Result<PolynomialDecay>| r.unwrap_err().to_string();
        assert!(msg(PolynomialDecay::new(0.5, 0.9, -1, 10)).contains("begin_step -1 must be >= 0"));
        assert!(msg(PolynomialDecay::new(0.5, 0.9, 0, -1)).contains("end_step cannot be -1"));
        assert!(msg(PolynomialDecay::new(0.5, 0.9, 0, -5)).contains("-1 or >= 0"));
        assert!(msg(PolynomialDecay::new(0.5, 0.9, 20, 10)).contains("must be <= end_step 10"));
        assert!(msg(PolynomialDecay::new(1.0, 0.9, 0, 10))
            .contains("initial_sparsity 1 must be in [0, 1)"));
        assert!(msg(PolynomialDecay::new(0.5, -0.1, 0, 10)).contains("final_sparsity"));
        let zero_frequency = PolynomialDecay {
            frequency: 0,
            ..PolynomialDecay::new(0.5, 0.9, 0, 10).unwrap()
        };
        assert!(zero_frequency
            .validate()
            .unwrap_err()
            .to_string()
            .contains("frequency 0 must be > 0"));
        assert!(Constant::new(1.0, 0)
            .unwrap_err()
            .to_string()
            .contains("target_sparsity"));
        assert!(Constant::new(0.5, -3).is_err());
        assert!(Constant {
            end_step: -2,
            ..Constant::new(0.5, 0).unwrap()
        }
        .validate()
        .is_err());
        assert!(OneShot::new(1.0).is_err());
        assert!(Iterative::new(0, 0.5).is_err());
        assert!(Iterative::new(3, 1.0).is_err());
    }

    #[test]
    fn one_shot_prunes_at_step_zero_only() {
        let s = OneShot::new(0.7).unwrap();
        assert!(s.should_prune(0) && !s.should_prune(1));
        assert_eq!(s.sparsity_at(5), 0.7);
    }

    #[test]
    fn iterative_removes_a_constant_fraction_per_round() {
        let s = Iterative::new(2, 0.75).unwrap();
        // Round 1: 1 - 0.25^(1/2) = 0.5; round 2: 1 - 0.25 = 0.75.
        assert!(close(s.round_sparsity(0), 0.0));
        assert!(close(s.round_sparsity(1), 0.5));
        assert!(close(s.round_sparsity(2), 0.75));
        assert!(close(s.round_sparsity(9), 0.75));
        assert!(!s.should_prune(0) && s.should_prune(1) && s.should_prune(2) && !s.should_prune(3));
        assert!(close(s.sparsity_at(1), 0.5));
        let s = Iterative::new(3, 0.875).unwrap();
        // 0.125^(k/3) = 0.5^k: 0.5, 0.75, 0.875.
        for (k, want) in [(1, 0.5), (2, 0.75), (3, 0.875)] {
            assert!(close(s.round_sparsity(k), want), "round {k}");
        }
    }

    /// Records the rounds it is called for, with what the pruning step left in the graph.
    struct Counting {
        calls: Vec<(usize, String)>,
        fail_at: Option<usize>,
    }

    impl FineTune for Counting {
        fn fine_tune(&mut self, graph: &mut Graph, round: usize) -> anyhow::Result<()> {
            let last = graph
                .values
                .last()
                .map_or(String::new(), |v| v.name.clone());
            self.calls.push((round, last));
            if self.fail_at == Some(round) {
                anyhow::bail!("diverged");
            }
            Ok(())
        }
    }

    /// A pruning step that leaves a trace: a value named after the sparsity.
    fn trace(graph: &mut Graph, sparsity: f32) -> Result<()> {
        graph.activation(&format!("{sparsity:.3}"), vec![]);
        Ok(())
    }

    #[test]
    fn fine_tune_runs_once_per_round_in_order() {
        let mut graph = Graph::default();
        let mut tuner = Counting {
            calls: Vec::new(),
            fail_at: None,
        };
        let schedule = Iterative::new(3, 0.875).unwrap();
        run_iterative(&mut graph, &schedule, trace, &mut tuner).unwrap();
        let expected = [(1, "0.500"), (2, "0.750"), (3, "0.875")];
        let expected: Vec<(usize, String)> =
            expected.iter().map(|&(k, s)| (k, s.to_string())).collect();
        assert_eq!(tuner.calls, expected);
        assert_eq!(graph.values.len(), 3);

        let mut graph = Graph::default();
        let mut tuner = Counting {
            calls: Vec::new(),
            fail_at: Some(2),
        };
        let e = run_iterative(&mut graph, &schedule, trace, &mut tuner).unwrap_err();
        assert!(matches!(e, PruneError::FineTune { round: 2, .. }));
        assert_eq!(e.to_string(), "fine-tuning after round 2: diverged");
        assert_eq!((tuner.calls.len(), graph.values.len()), (2, 2));
        let e = run_iterative(
            &mut graph,
            &schedule,
            |_, s| Err(PruneError::Sparsity(s)),
            &mut tuner,
        )
        .unwrap_err();
        assert!(matches!(e, PruneError::Sparsity(_)));
    }
}
