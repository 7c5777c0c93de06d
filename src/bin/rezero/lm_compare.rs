//! `rezero train lm --compare`: the entries of a comparison (a block variant, with or
//! without warm-up, with its own initial α) and the table, curves and α heatmaps it ends
//! with.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use rezero::nn::BlockVariant;
use rezero::train::heatmap::heatmaps_for;
use rezero::train::lm::LmSummary;
use rezero::train::plot::{Curve, plot_svg_if_any};
use rezero::train::progress::format_duration;
use rezero::{Error, Result};

use crate::flags;

/// One entry of `--compare`: `VARIANT[:warmup][:alpha=X]`, e.g. `postnorm:warmup` or
/// `rezero:alpha=1`, so that one variant can appear twice with different settings.
#[derive(Clone, Debug, PartialEq)]
pub struct VariantSpec {
    pub variant: BlockVariant,
    /// `:warmup`: this entry trains with `--warmup`. When any entry says it, only those
    /// entries get the warm-up; when none does, every entry gets it.
    pub warmup: bool,
    /// `:alpha=X`: this entry's initial α instead of `--alpha-init` (ReZero variants only).
    pub alpha_init: Option<f32>,
}

impl VariantSpec {
    /// The warm-up steps this entry of `all` trains with: `warmup` (--warmup), unless other
    /// entries say `:warmup` and this one does not.
    pub fn warmup_steps(&self, all: &[VariantSpec], warmup: u64) -> u64 {
        match self.warmup || !all.iter().any(|s| s.warmup) {
            true => warmup,
            false => 0,
        }
    }

    /// This entry's initial α: its own, else `default` (--alpha-init).
    pub fn alpha(&self, default: f32) -> f32 {
        self.alpha_init.unwrap_or(default)
    }

    /// The variant with the shared settings.
    pub fn plain(variant: BlockVariant) -> VariantSpec {
        VariantSpec {
            variant,
            warmup: false,
            alpha_init: None,
        }
    }

    /// Parses `VARIANT[:warmup][:alpha=X]` (a clap value parser).
    pub fn parse(text: &str) -> std::result::Result<VariantSpec, String> {
        const FORM: &str = "VARIANT[:warmup][:alpha=X]";
        let mut parts = text.split(':');
        let name = parts.next().unwrap_or_default();
        let variant = BlockVariant::from_str(name, false).map_err(|_| {
            let names: Vec<_> = BlockVariant::ALL.iter().map(|v| v.name()).collect();
            format!("unknown variant '{name}' (one of {})", names.join(", "))
        })?;
        let mut spec = VariantSpec::plain(variant);
        for option in parts {
            match option.split_once('=') {
                None if option == "warmup" => spec.warmup = true,
                Some(("alpha", _)) if !variant.has_alpha() => {
                    return Err(format!("{name} has no α to set in '{text}'"));
                }
                Some(("alpha", _)) if spec.alpha_init.is_some() => {
                    return Err(format!("'{text}' sets alpha twice"));
                }
                Some(("alpha", value)) => spec.alpha_init = Some(flags::finite(value)?),
                _ => return Err(format!("unknown option '{option}' in '{text}' ({FORM})")),
            }
        }
        Ok(spec)
    }

    /// The entry's folder name and label: `postnorm-warmup`, `rezero-alpha1`.
    pub fn name(&self) -> String {
        let warmup = if self.warmup { "-warmup" } else { "" };
        let alpha = self
            .alpha_init
            .map_or(String::new(), |a| format!("-alpha{a}"));
        format!("{}{warmup}{alpha}", self.variant.name())
    }
}

/// Errors before training when a comparison cannot be honoured: an entry asks for warm-up
/// while `--warmup` is 0, or two entries would train identically (the same variant,
/// warm-up steps and initial α).
pub fn check_entries(specs: &[VariantSpec], warmup: u64, alpha_init: f32) -> Result<()> {
    if let Some(spec) = specs.iter().find(|s| s.warmup).filter(|_| warmup == 0) {
        return Err(Error::Invalid {
            what: "--compare".into(),
            why: format!(
                "{} asks for warm-up, but --warmup is 0: give --warmup N (steps)",
                spec.name()
            ),
        });
    }
    let training = |s: &VariantSpec| {
        let alpha = s.variant.has_alpha().then(|| s.alpha(alpha_init));
        (s.variant, s.warmup_steps(specs, warmup), alpha)
    };
    for (i, spec) in specs.iter().enumerate() {
        if let Some(twin) = specs[..i].iter().find(|t| training(t) == training(spec)) {
            return Err(Error::Invalid {
                what: "--compare".into(),
                why: format!(
                    "{} and {} train identically (the same variant, warm-up and initial α): \
                     drop one, or set them apart",
                    twin.name(),
                    spec.name()
                ),
            });
        }
    }
    Ok(())
}

/// One finished entry of a comparison.
pub struct Entry {
    pub spec: VariantSpec,
    pub warmup: u64,
    pub folder: PathBuf,
    pub summary: LmSummary,
}

/// The entry whose steps to the target the others are measured against: the first
/// Post-Norm entry with warm-up, else the first Post-Norm entry.
fn baseline(entries: &[Entry]) -> Option<&Entry> {
    let postnorm = |e: &&Entry| e.spec.variant == BlockVariant::PostNorm;
    let warmed = entries.iter().filter(postnorm).find(|e| e.warmup > 0);
    warmed.or_else(|| entries.iter().find(postnorm))
}

/// The validation curves of a comparison in one picture, its table and its α heatmaps.
pub fn print_comparison(
    title: &str,
    dir: &Path,
    entries: &[Entry],
    target: Option<f32>,
) -> Result<()> {
    let curves: Vec<Curve> = entries
        .iter()
        .map(|e| Curve {
            label: e.summary.run.label.clone(),
            points: (e.summary.val_curve.iter())
                .map(|&(x, y)| (x as f64, y as f64))
                .collect(),
            x_label: "step".into(),
        })
        .collect();
    let svg = dir.join("val_bpb.svg");
    plot_svg_if_any(&curves, "validation bits per byte", title, &svg)?;
    let baseline = baseline(entries);
    let to_target = target.map_or("steps to target".into(), |t| format!("steps to {t}"));
    out!(
        "\n{:<28} {:>10} {:>8} {:>12} {:>16} {:>10} {:>10}",
        "variant",
        "warm-up",
        "steps",
        "val bpb",
        to_target,
        "speed-up",
        "wall time"
    );
    for entry in entries {
        print_row(entry, baseline.and_then(|b| b.summary.steps_to_target));
    }
    if let Some(b) = baseline {
        out!(
            "(speed-up: the steps {} took to the target, over each variant's)",
            b.summary.run.label
        );
    }
    eprintln!("validation curves: {}", svg.display());
    let folders: Vec<_> = entries.iter().map(|e| e.folder.clone()).collect();
    for heatmap in heatmaps_for(&folders, dir)? {
        eprintln!("α over training: {}", heatmap.display());
    }
    if target.is_none() {
        eprintln!("(give --target-bpb X to count the steps each variant needs to reach X)");
    }
    Ok(())
}

fn print_row(entry: &Entry, baseline_steps: Option<u64>) {
    let s = &entry.summary;
    let warmup = match entry.warmup {
        0 => "none".to_string(),
        w => format!("{w} steps"),
    };
    let speedup = match (baseline_steps, s.steps_to_target) {
        (Some(b), Some(t)) => format!("{:.2}x", b as f64 / t as f64),
        _ => "-".into(),
    };
    out!(
        "{:<28} {:>10} {:>8} {:>12} {:>16} {:>10} {:>10}{}",
        s.run.label,
        warmup,
        s.run.steps,
        s.val_bpb.map_or("-".into(), |b| format!("{b:.4}")),
        s.steps_to_target
            .map_or("not reached".into(), |t| t.to_string()),
        speedup,
        format_duration(std::time::Duration::from_secs_f64(s.run.wall_seconds)),
        s.run
            .divergence
            .as_ref()
            .map_or(String::new(), |d| format!("  diverged at step {}", d.step))
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_name_and_refuse_nonsense() {
        let spec = VariantSpec::parse("postnorm:warmup").unwrap();
        assert_eq!((spec.variant, spec.warmup), (BlockVariant::PostNorm, true));
        assert_eq!(spec.name(), "postnorm-warmup");
        let spec = VariantSpec::parse("rezero:alpha=1").unwrap();
        assert_eq!(
            (spec.alpha_init, spec.name().as_str()),
            (Some(1.0), "rezero-alpha1")
        );
        let spec = VariantSpec::parse("rezero-postnorm:warmup:alpha=0.5").unwrap();
        assert_eq!(spec.name(), "rezero-postnorm-warmup-alpha0.5");
        assert_eq!(
            VariantSpec::parse("prenorm").unwrap(),
            VariantSpec::plain(BlockVariant::PreNorm)
        );
        for (bad, says) in [
            ("rezro", "unknown variant"),
            ("", "unknown variant"),
            ("postnorm:alpha=1", "no α"),
            ("rezero:alpha=NaN", "not a finite number"),
            ("rezero:alpha=", "empty"),
            ("rezero:alpha=1:alpha=2", "twice"),
            ("rezero:warm", "unknown option"),
            ("rezero:", "unknown option"),
        ] {
            let error = VariantSpec::parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
