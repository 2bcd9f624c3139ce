//! Optimizers: SGD with momentum and AdamW, on the parameters' `Var`s.
//!
//! Both follow PyTorch's definitions (`torch.optim.SGD`, `torch.optim.AdamW`) so that
//! hyper-parameters carry over. Their state (momentum buffers, moment estimates, step
//! count) is named per parameter so checkpoints can save and restore it.

use std::collections::HashMap;

use candle_core::Tensor;

use super::params::Params;
use super::{Result, TrainError};

/// Which optimizer, with its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerKind {
    /// `v = momentum * v + g + wd * w; w -= lr * v` (PyTorch SGD with `dampening = 0`;
    /// weight decay coupled to the gradient).
    Sgd {
        /// Momentum factor, in `[0, 1)`.
        momentum: f64,
        /// L2 weight decay added to the gradient.
        weight_decay: f64,
    },
    /// Adam with decoupled weight decay (Loshchilov and Hutter 2019):
    /// `w -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * w)`.
    AdamW {
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Added to the denominator.
        eps: f64,
        /// Decoupled weight decay.
        weight_decay: f64,
    },
}

impl OptimizerKind {
    /// SGD with momentum 0.9 and weight decay `weight_decay`.
    pub fn sgd(weight_decay: f64) -> Self {
        OptimizerKind::Sgd {
            momentum: 0.9,
            weight_decay,
        }
    }

    /// AdamW with PyTorch's defaults (`betas = (0.9, 0.999)`, `eps = 1e-8`) and weight
    /// decay `weight_decay`.
    pub fn adamw(weight_decay: f64) -> Self {
        OptimizerKind::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        }
    }

    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Config(m));
        match *self {
            OptimizerKind::Sgd {
                momentum,
                weight_decay,
            } => {
                if !(0.0..1.0).contains(&momentum) {
                    return bad(format!("momentum {momentum} must be in [0, 1)"));
                }
                check_decay(weight_decay)
            }
            OptimizerKind::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                if !(0.0..1.0).contains(&beta1) || !(0.0..1.0).contains(&beta2) {
                    return bad(format!("AdamW betas ({beta1}, {beta2}) must be in [0, 1)"));
                }
                if eps.is_nan() || eps <= 0.0 {
                    return bad(format!("AdamW eps {eps} must be positive"));
                }
                check_decay(weight_decay)
            }
        }
    }
}

fn check_decay(weight_decay: f64) -> Result<()> {
    if weight_decay.is_finite() && weight_decay >= 0.0 {
        Ok(())
    } else {
        Err(TrainError::Config(format!(
            "weight decay {weight_decay} must be a finite number >= 0"
        )))
    }
}

/// An optimizer and its state.
pub struct Optimizer {
    kind: OptimizerKind,
    /// Completed updates.
    steps: u64,
    /// State tensors by `"<slot>/<parameter name>"`: `m` (momentum or first moment), `v`
    /// (second moment).
    state: HashMap<String, Tensor>,
}

impl Optimizer {
    /// A fresh optimizer (validated).
    pub fn new(kind: OptimizerKind) -> Result<Self> {
        kind.validate()?;
        Ok(Self {
            kind,
            steps: 0,
            state: HashMap::new(),
        })
    }

    /// One update of every parameter with a gradient in `grads`, at learning rate `lr`.
    /// Parameters without a gradient (not on the loss's path) are left alone.
    pub fn step(
        &mut self,
        params: &Params,
        grads: &candle_core::backprop::GradStore,
        lr: f64,
    ) -> Result<()> {
        self.steps += 1;
        for p in params.iter() {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            // Detached, so that no update records the autograd graph of the step before:
            // state tensors would otherwise chain every step of the run in memory.
            let w = &p.var.as_tensor().detach();
            let g = &g.detach();
            let m_key = format!("m/{}", p.name);
            let updated = match self.kind {
                OptimizerKind::Sgd {
                    momentum,
                    weight_decay,
                } => {
                    let g = (g + (w * weight_decay)?)?;
                    let v = match self.state.get(&m_key) {
                        Some(v) if momentum > 0.0 => ((v * momentum)? + g)?,
                        _ => g,
                    };
                    let next = (w - (&v * lr)?)?;
                    self.state.insert(m_key, v);
                    next
                }
                OptimizerKind::AdamW {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => {
                    let v_key = format!("v/{}", p.name);
                    let m = match self.state.get(&m_key) {
                        Some(m) => ((m * beta1)? + (g * (1.0 - beta1))?)?,
                        None => (g * (1.0 - beta1))?,
                    };
                    let v = match self.state.get(&v_key) {
                        Some(v) => ((v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?,
                        None => (g.sqr()? * (1.0 - beta2))?,
                    };
                    let t = self.steps as i32;
                    let m_hat = (&m / (1.0 - beta1.powi(t)))?;
                    let v_hat = (&v / (1.0 - beta2.powi(t)))?;
                    let update = (m_hat / (v_hat.sqrt()? + eps)?)?;
                    let next = ((w * (1.0 - lr * weight_decay))? - (update * lr)?)?;
                    self.state.insert(m_key, m);
                    self.state.insert(v_key, v);
                    next
                }
            };
            p.var.set(&updated)?;
        }
        Ok(())
    }

    /// Completed updates.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The state tensors, for checkpoints.
    pub fn state(&self) -> &HashMap<String, Tensor> {
        &self.state
    }

    /// Restores a checkpoint's state and step count.
    pub fn restore(&mut self, steps: u64, state: HashMap<String, Tensor>) {
        self.steps = steps;
        self.state = state;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prune::test_graphs::B;
    use candle_core::Device;
    use lopper_runtime::graph::Activation;

    /// Params of a 1x1 linear layer, whose weight starts at `w0` and bias at 0.
    fn one_weight(w0: f32) -> (crate::ir::Graph, Params) {
        let (mut b, x) = B::new(&[1, 1]);
        let y = b.linear(x, 1, Activation::None);
        let mut g = b.finish(y);
        let (w, bias) = (g.nodes[0].inputs[1], g.nodes[0].inputs[2]);
        g.values[w].constant = Some(Tensor::new(&[[w0]], &Device::Cpu).unwrap());
        g.values[bias].constant = Some(Tensor::new(&[0f32], &Device::Cpu).unwrap());
        let params = Params::attach(&mut g).unwrap();
        (g, params)
    }

    fn weight(params: &Params) -> f32 {
        params
            .iter()
            .next()
            .unwrap()
            .var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0]
    }

    /// Gradient store holding `d(c * w)/dw = c` for the weight.
    fn grads_of(params: &Params, c: f32) -> candle_core::backprop::GradStore {
        let w = params.iter().next().unwrap().var.as_tensor();
        (w.sum_all().unwrap() * f64::from(c))
            .unwrap()
            .backward()
            .unwrap()
    }

    #[test]
    fn sgd_momentum_by_hand() {
        // w = 1, g = 2 twice, lr = 0.1, momentum 0.9, wd 0.
        // Step 1: v = 2, w = 0.8. Step 2: v = 0.9 * 2 + 2 = 3.8, w = 0.8 - 0.38 = 0.42.
        let (_g, params) = one_weight(1.0);
        let mut opt = Optimizer::new(OptimizerKind::sgd(0.0)).unwrap();
        opt.step(&params, &grads_of(&params, 2.0), 0.1).unwrap();
        assert!((weight(&params) - 0.8).abs() < 1e-6);
        opt.step(&params, &grads_of(&params, 2.0), 0.1).unwrap();
        assert!((weight(&params) - 0.42).abs() < 1e-6, "{}", weight(&params));
    }

    #[test]
    fn adamw_first_step_moves_by_lr_plus_decay() {
        // Step 1: m_hat = g, v_hat = g^2, update = g / (|g| + eps) ~ sign(g) = 1.
        // w = 2 * (1 - 0.1 * 0.5) - 0.1 * 1 = 1.8.
        let (_g, params) = one_weight(2.0);
        let mut opt = Optimizer::new(OptimizerKind::adamw(0.5)).unwrap();
        opt.step(&params, &grads_of(&params, 3.0), 0.1).unwrap();
        assert!((weight(&params) - 1.8).abs() < 1e-5, "{}", weight(&params));
        assert_eq!(opt.steps(), 1);
        // m and v of the weight; the bias had no gradient.
        assert_eq!(opt.state().len(), 2);
    }

    #[test]
    fn bad_hyper_parameters_are_refused() {
        assert!(Optimizer::new(OptimizerKind::Sgd {
            momentum: 1.0,
            weight_decay: 0.0
        })
        .is_err());
        assert!(Optimizer::new(OptimizerKind::sgd(-1.0)).is_err());
        let adam = OptimizerKind::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 0.0,
            weight_decay: 0.0,
        };
        assert!(Optimizer::new(adam).is_err());
    }
}
