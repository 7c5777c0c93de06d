//! `rezero plot`: curves of several runs in one SVG picture.

use std::path::PathBuf;

use clap::Args;
use rezero::train::heatmap::{alpha_heatmap_svg, read_alphas};
use rezero::train::plot::{plot_svg, read_curve};
use rezero::{Error, Result};

#[derive(Args)]
pub struct PlotArgs {
    /// Run directories (each with metrics.csv and eval.csv, as `rezero train` writes them).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// The SVG file to write.
    #[arg(short, long, default_value = "loss.svg")]
    out: PathBuf,
    /// loss, lr, alpha_mean, alpha_min, alpha_max (metrics.csv) or test_loss, test_accuracy (eval.csv).
    #[arg(long, default_value = "loss")]
    metric: String,
    /// The picture's title (default: METRIC against step).
    #[arg(long)]
    title: Option<String>,
    /// Draw one run's α instead: every block's α against the step, as a heatmap (the
    /// paper's figure; default file alpha.svg).
    #[arg(long, conflicts_with = "metric")]
    alpha: bool,
}

/// The metrics file that holds `metric`.
pub fn file_of(metric: &str) -> &'static str {
    if metric.starts_with("test_") {
        "eval.csv"
    } else {
        "metrics.csv"
    }
}

/// `rezero plot RUN --alpha`: the heatmap of one run's α.
fn plot_alpha(args: &PlotArgs) -> Result<()> {
    let [run] = args.runs.as_slice() else {
        return Err(Error::Invalid {
            what: "--alpha".into(),
            why: format!("draws one run, {} were given", args.runs.len()),
        });
    };
    let out = match args.out.to_str() {
        Some("loss.svg") => PathBuf::from("alpha.svg"),
        _ => args.out.clone(),
    };
    let trace = read_alphas(run)?;
    let title = args
        .title
        .clone()
        .unwrap_or_else(|| run.display().to_string());
    alpha_heatmap_svg(&trace, &title, &out)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

pub fn plot(args: &PlotArgs) -> Result<()> {
    if args.alpha {
        return plot_alpha(args);
    }
    let file = file_of(&args.metric);
    let curves = args
        .runs
        .iter()
        .map(|dir| read_curve(dir, file, &args.metric))
        .collect::<Result<Vec<_>>>()?;
    let title = args
        .title
        .clone()
        .unwrap_or_else(|| format!("{} against step", args.metric));
    plot_svg(&curves, &args.metric, &title, &args.out)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
