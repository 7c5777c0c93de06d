//! What a run ends with: its summary (`summary.txt`, a row each field) and how an optional
//! figure is written as a field (empty when it was not measured).

use super::divergence::Divergence;
use crate::error::Error;

/// What every run ends with; each loop adds its own metric.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub label: String,
    /// The step reached (over resumed runs too).
    pub steps: u64,
    /// Mean loss of the last [`FINAL_WINDOW`](super::core::FINAL_WINDOW) steps; `None` if
    /// no step was taken.
    pub final_train_loss: Option<f32>,
    pub wall_seconds: f64,
    /// Examples (tokens, images) per second of training over the steps after the first,
    /// evaluation and checkpoints excluded; `None` for a run of one step.
    pub items_per_second: Option<f64>,
    /// The first step's time: compiling its kernels (and tuning them with `tune`) and
    /// running it.
    pub first_step_seconds: Option<f64>,
    /// Peak bytes of activations and gradients (the tape's pool).
    pub peak_activation_bytes: u64,
    /// Parameters, their gradients and the optimizer state.
    pub param_bytes: u64,
    pub divergence: Option<Divergence>,
    /// (step, loss) of every logged step.
    pub losses: Vec<(u64, f32)>,
}

impl RunSummary {
    pub fn diverged(&self) -> bool {
        self.divergence.is_some()
    }

    /// The run's error when it diverged (for a command's exit status).
    pub fn error(&self) -> Option<Error> {
        self.divergence.as_ref().map(|d| Error::RunDiverged {
            label: self.label.clone(),
            step: d.step,
            why: d.why.clone(),
        })
    }
}

/// An optional number as a CSV or summary field: empty when it was not measured.
pub fn field(value: Option<f32>) -> String {
    field_with(value, |v| v.to_string())
}

/// An optional value as a field, shown by `show`: empty when it was not measured.
pub fn field_with<T>(value: Option<T>, show: impl FnOnce(T) -> String) -> String {
    value.map_or(String::new(), show)
}

pub(crate) fn summary_fields(s: &RunSummary) -> Vec<(&'static str, String)> {
    let d = s.divergence.as_ref();
    vec![
        ("label", s.label.clone()),
        ("steps", s.steps.to_string()),
        ("final_train_loss", field(s.final_train_loss)),
        ("wall_seconds", format!("{:.3}", s.wall_seconds)),
        (
            "items_per_second",
            field_with(s.items_per_second, |r| format!("{r:.1}")),
        ),
        (
            "first_step_seconds",
            field_with(s.first_step_seconds, |t| format!("{t:.3}")),
        ),
        ("peak_activation_bytes", s.peak_activation_bytes.to_string()),
        ("param_bytes", s.param_bytes.to_string()),
        ("diverged", d.is_some().to_string()),
        ("diverged_at_step", field_with(d, |d| d.step.to_string())),
        ("diverged_because", field_with(d, |d| d.why.clone())),
    ]
}
