//! Learning-rate schedules: linear warm-up, then constant, step decay or cosine decay.

use crate::gpu::{Error, Result};

/// What the learning rate does after warm-up.
#[derive(Clone, Debug, PartialEq)]
pub enum Decay {
    Constant,
    /// Multiply by `gamma` at each milestone (counted in steps).
    Step {
        milestones: Vec<u64>,
        gamma: f32,
    },
    /// Cosine from the base rate down to 0 at `total` steps.
    Cosine {
        total: u64,
    },
}

/// lr(step) = base · warm-up factor · decay factor, steps counted from 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub warmup: u64,
    pub decay: Decay,
}

impl Default for Schedule {
    fn default() -> Schedule {
        Schedule {
            warmup: 0,
            decay: Decay::Constant,
        }
    }
}

impl Schedule {
    /// Parses `constant`, `step:M1,M2[,...][@GAMMA]` (gamma 0.1 by default) or
    /// `cosine:TOTAL`; `warmup` steps of linear warm-up come first in every case.
    pub fn parse(text: &str, warmup: u64) -> Result<Schedule> {
        let bad = |why: &str| Error::Invalid {
            what: format!("schedule '{text}'"),
            why: why.to_string(),
        };
        let decay = match text.split_once(':') {
            None if text == "constant" => Decay::Constant,
            Some(("step", rest)) => {
                let (list, gamma) = match rest.split_once('@') {
                    Some((list, gamma)) => (
                        list,
                        gamma
                            .parse::<f32>()
                            .map_err(|_| bad("gamma is not a number"))?,
                    ),
                    None => (rest, 0.1),
                };
                let milestones = list
                    .split(',')
                    .map(|m| m.trim().parse::<u64>())
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|_| bad("milestones must be step numbers"))?;
                if !(gamma > 0.0 && gamma <= 1.0) {
                    return Err(bad("gamma must be in (0, 1]"));
                }
                Decay::Step { milestones, gamma }
            }
            Some(("cosine", total)) => {
                let total = total
                    .parse::<u64>()
                    .map_err(|_| bad("cosine needs the total step count"))?;
                if total == 0 {
                    return Err(bad("cosine needs a total above 0"));
                }
                Decay::Cosine { total }
            }
            _ => return Err(bad("expected constant, step:M1,M2[@GAMMA] or cosine:TOTAL")),
        };
        Ok(Schedule { warmup, decay })
    }

    /// The same schedule with its milestones and cosine length given in epochs, counted in
    /// steps (warm-up stays in steps).
    pub fn epochs_to_steps(&self, steps_per_epoch: u64) -> Schedule {
        let decay = match &self.decay {
            Decay::Constant => Decay::Constant,
            Decay::Step { milestones, gamma } => Decay::Step {
                milestones: milestones.iter().map(|m| m * steps_per_epoch).collect(),
                gamma: *gamma,
            },
            Decay::Cosine { total } => Decay::Cosine {
                total: total * steps_per_epoch,
            },
        };
        Schedule {
            warmup: self.warmup,
            decay,
        }
    }

    /// The factor the base learning rate is multiplied by at `step` (from 0).
    pub fn factor(&self, step: u64) -> f32 {
        let warm = if step < self.warmup {
            (step + 1) as f32 / self.warmup as f32
        } else {
            1.0
        };
        let decay = match &self.decay {
            Decay::Constant => 1.0,
            Decay::Step { milestones, gamma } => {
                gamma.powi(milestones.iter().filter(|&&m| step >= m).count() as i32)
            }
            Decay::Cosine { total } => {
                let t = (step.min(*total)) as f32 / *total as f32;
                0.5 * (1.0 + (std::f32::consts::PI * t).cos())
            }
        };
        warm * decay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_become_steps() {
        let s = Schedule::parse("step:2,3@0.5", 0)
            .unwrap()
            .epochs_to_steps(10);
        assert_eq!([s.factor(19), s.factor(20), s.factor(30)], [1.0, 0.5, 0.25]);
        let c = Schedule::parse("cosine:2", 0).unwrap().epochs_to_steps(10);
        assert_eq!(c.factor(20), 0.0);
    }

    #[test]
    fn warmup_then_each_decay() {
        let s = Schedule::parse("constant", 4).unwrap();
        assert_eq!(
            [s.factor(0), s.factor(1), s.factor(3), s.factor(100)],
            [0.25, 0.5, 1.0, 1.0]
        );
        let s = Schedule::parse("step:10,20", 0).unwrap();
        assert!(
            (s.factor(9) - 1.0).abs() < 1e-7
                && (s.factor(10) - 0.1).abs() < 1e-7
                && (s.factor(25) - 0.01).abs() < 1e-7
        );
        let s = Schedule::parse("step:5@0.5", 0).unwrap();
        assert_eq!(s.factor(5), 0.5);
        let s = Schedule::parse("cosine:100", 0).unwrap();
        assert!(
            (s.factor(0) - 1.0).abs() < 1e-6
                && (s.factor(50) - 0.5).abs() < 1e-6
                && s.factor(100).abs() < 1e-6
        );
        for bad in ["linear", "step:", "step:a,b", "cosine:0", "step:10@2"] {
            assert!(Schedule::parse(bad, 0).is_err(), "{bad} should be rejected");
        }
    }
}
