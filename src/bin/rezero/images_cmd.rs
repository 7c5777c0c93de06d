//! What `rezero train mlp` and `rezero train resnet` share: loading the image data,
//! printing a run's summary, and a comparison of variants (one subfolder each, a diverged
//! variant marked and the next one run, the curves plotted, one table).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rezero::data::{self, Images};
use rezero::train::ImageSummary;
use rezero::train::heatmap::heatmaps_for;
use rezero::train::plot::{Curve, plot_svg_if_any, read_curve};
use rezero::train::progress::{first_step_note, format_duration, format_rate};
use rezero::{Error, Result};

use crate::flags::ImageDataArgs;

/// The training and test images the flags ask for.
pub fn load(data: &ImageDataArgs) -> Result<(Images, Images)> {
    let limit = |l: Option<u64>| l.map(|n| n.try_into().unwrap_or(usize::MAX));
    data::load_limited(
        data.dataset,
        data.data_dir.as_deref(),
        limit(data.train_limit),
        limit(data.test_limit),
    )
}

/// A loss or accuracy for a table: "-" when not measured, scientific once it has blown up.
fn number(v: Option<f32>, scale: f32) -> String {
    match v.map(|v| v * scale) {
        None => "-".into(),
        Some(v) if v.abs() >= 1e5 => format!("{v:.3e}"),
        Some(v) => format!("{v:.4}"),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub fn print_summary(s: &ImageSummary) {
    let r = &s.run;
    out!(
        "{}: {} steps in {}, {} images/s{}, final train loss {}, test loss {}, test accuracy {}%, memory: activations {:.1} MiB peak, parameters+gradients+optimizer {:.1} MiB{}",
        r.label,
        r.steps,
        format_duration(Duration::from_secs_f64(r.wall_seconds)),
        format_rate(r.items_per_second),
        first_step_note(r.first_step_seconds),
        number(r.final_train_loss, 1.0),
        number(s.eval.test_loss, 1.0),
        number(s.eval.test_accuracy, 100.0),
        mib(r.peak_activation_bytes),
        mib(r.param_bytes),
        r.divergence.as_ref().map_or(String::new(), |d| format!(
            " (DIVERGED at step {}: {})",
            d.step, d.why
        ))
    );
}

/// Runs `run_one(variant, folder)` for each variant in `dir/NAME`, then plots the training
/// loss and test accuracy of all and prints the table. A diverged variant is marked in the
/// table and the comparison goes on.
pub fn compare<V: Copy>(
    variants: &[V],
    name: impl Fn(V) -> &'static str,
    dir: &Path,
    title: &str,
    target: Option<f32>,
    mut run_one: impl FnMut(V, PathBuf) -> Result<ImageSummary>,
) -> Result<()> {
    let mut summaries = Vec::new();
    for &variant in variants {
        let summary = run_one(variant, dir.join(name(variant)))?;
        print_summary(&summary);
        summaries.push(summary);
    }
    let folders: Vec<PathBuf> = variants.iter().map(|&v| dir.join(name(v))).collect();
    let losses = folders
        .iter()
        .map(|f| read_curve(f, "metrics.csv", "loss"))
        .collect::<Result<Vec<_>>>()?;
    plot_svg_if_any(&losses, "training loss", title, &dir.join("loss.svg"))?;
    let accuracy: Vec<Curve> = summaries
        .iter()
        .map(|s| Curve {
            label: s.run.label.clone(),
            points: (s.eval.accuracy_curve.iter())
                .map(|&(e, a)| (e as f64, 100.0 * a as f64))
                .collect(),
            x_label: "epoch".into(),
        })
        .collect();
    plot_svg_if_any(
        &accuracy,
        "test accuracy (%)",
        title,
        &dir.join("test_accuracy.svg"),
    )?;
    print_table(&summaries, target);
    eprintln!("curves: {}", dir.join("{loss,test_accuracy}.svg").display());
    for heatmap in heatmaps_for(&folders, dir)? {
        eprintln!("α over training: {}", heatmap.display());
    }
    Ok(())
}

fn print_table(summaries: &[ImageSummary], target: Option<f32>) {
    let target_text = target.map_or("-".to_string(), |t| format!("{:.1}%", 100.0 * t));
    out!(
        "\n{:<24} {:>7} {:>16} {:>10} {:>14} {:>13} {:>9} {:>9} {:>10}",
        "variant",
        "steps",
        "final train loss",
        "test loss",
        "test accuracy",
        format!("epochs to {target_text}"),
        "speed-up",
        "images/s",
        "wall time"
    );
    let baseline = summaries.first().and_then(|s| s.eval.epochs_to_target);
    for s in summaries {
        let reached = (s.eval.epochs_to_target).map_or("not reached".into(), |e| e.to_string());
        let speedup = match (baseline, s.eval.epochs_to_target) {
            (Some(b), Some(e)) => format!("{:.2}x", b as f64 / e as f64),
            _ => "-".into(),
        };
        out!(
            "{:<24} {:>7} {:>16} {:>10} {:>13}% {:>13} {:>9} {:>9} {:>10}{}",
            s.run.label,
            s.run.steps,
            number(s.run.final_train_loss, 1.0),
            number(s.eval.test_loss, 1.0),
            number(s.eval.test_accuracy, 100.0),
            if target.is_some() {
                reached
            } else {
                "-".into()
            },
            speedup,
            format_rate(s.run.items_per_second),
            format_duration(Duration::from_secs_f64(s.run.wall_seconds)),
            s.run
                .divergence
                .as_ref()
                .map_or(String::new(), |d| format!("  diverged at step {}", d.step))
        );
    }
    if let (Some(first), Some(_)) = (summaries.first(), target) {
        out!(
            "(speed-up: epochs to the target of {} divided by each variant's)",
            first.run.label
        );
    }
}

/// A single run's outcome for the exit status: an error when it diverged.
pub fn outcome(summary: &rezero::train::RunSummary) -> Result<()> {
    summary.error().map_or(Ok(()), Err::<(), Error>)
}
