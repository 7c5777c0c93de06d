//! `rezero plot`: curves of several runs in one SVG picture.

use std::path::PathBuf;

use clap::Args;
use rezero::Result;
use rezero::train::plot::{plot_svg, read_curve};

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
}

/// The metrics file that holds `metric`.
pub fn file_of(metric: &str) -> &'static str {
    if metric.starts_with("test_") {
        "eval.csv"
    } else {
        "metrics.csv"
    }
}

pub fn plot(args: &PlotArgs) -> Result<()> {
    let file = file_of(&args.metric);
    let curves = args
        .runs
        .iter()
        .map(|dir| read_curve(dir, file, &args.metric))
        .collect::<Result<Vec<_>>>()?;
    plot_svg(
        &curves,
        &args.metric,
        &format!("{} against step", args.metric),
        &args.out,
    )?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
