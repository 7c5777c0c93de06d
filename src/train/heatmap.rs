//! The paper's picture of α over training: every block's α (a row) against the step (a
//! column), on a colour scale that diverges from 0 (blue below, white at 0, red above),
//! drawn from the α columns a run's metrics.csv holds.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::gpu::{Error, Result};

/// Most columns (steps) and rows (blocks) drawn: larger traces are sampled evenly.
const MAX_CELLS: usize = 240;

/// Every block's α at each logged step of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct AlphaTrace {
    pub steps: Vec<f64>,
    /// [steps][blocks]
    pub alphas: Vec<Vec<f64>>,
}

/// Reads the `alpha_0`, `alpha_1`, ... columns of `RUN_DIR/metrics.csv` against `step`;
/// rows with a missing or non-finite α are skipped. A run without α columns (not a ReZero
/// variant) is an error.
pub fn read_alphas(run_dir: &Path) -> Result<AlphaTrace> {
    let path = run_dir.join("metrics.csv");
    let text = crate::files::read_text_capped(&path, crate::files::MAX_CSV_BYTES)
        .map_err(|e| Error::io(&path, "read", e))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let step_col = header.iter().position(|h| *h == "step");
    let blocks: Vec<usize> = (0..)
        .map_while(|i| header.iter().position(|h| *h == format!("alpha_{i}")))
        .collect();
    let Some(step_col) = step_col.filter(|_| !blocks.is_empty()) else {
        return Err(Error::data(
            &path,
            "has no step and alpha_0, alpha_1, ... columns (is the run a ReZero variant?)",
        ));
    };
    let mut trace = AlphaTrace {
        steps: Vec::new(),
        alphas: Vec::new(),
    };
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let value = |c: usize| fields.get(c).and_then(|f| f.parse::<f64>().ok());
        let row: Option<Vec<f64>> = blocks.iter().map(|&c| value(c)).collect();
        match (value(step_col), row) {
            (Some(step), Some(row)) if row.iter().all(|a| a.is_finite()) => {
                trace.steps.push(step);
                trace.alphas.push(row);
            }
            _ => {}
        }
    }
    if trace.steps.is_empty() {
        return Err(Error::data(&path, "has no row with finite α values"));
    }
    Ok(trace)
}

/// At most `most` indices spread evenly over 0..len, the first and last included.
fn sample(len: usize, most: usize) -> Vec<usize> {
    if len <= most {
        return (0..len).collect();
    }
    (0..most).map(|i| i * (len - 1) / (most - 1)).collect()
}

/// White at 0, towards red for α up to `scale`, towards blue down to −`scale`.
fn colour(alpha: f64, scale: f64) -> RGBColor {
    let t = (alpha / scale).clamp(-1.0, 1.0);
    let fade = (255.0 * (1.0 - t.abs())) as u8;
    if t >= 0.0 {
        RGBColor(255, fade, fade)
    } else {
        RGBColor(fade, fade, 255)
    }
}

/// Draws `trace` as a heatmap into the SVG file `out`.
pub fn alpha_heatmap_svg(trace: &AlphaTrace, title: &str, out: &PathBuf) -> Result<()> {
    let blocks = trace.alphas[0].len();
    let scale = (trace.alphas.iter().flatten())
        .fold(0.0f64, |m, a| m.max(a.abs()))
        .max(1e-12);
    let (cols, rows) = (
        sample(trace.steps.len(), MAX_CELLS),
        sample(blocks, MAX_CELLS),
    );
    let draw_error = |e: String| Error::Data {
        path: out.clone(),
        why: format!("cannot draw: {e}"),
    };
    let root = SVGBackend::new(out, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(e.to_string()))?;
    let caption =
        format!("{title}: α of every block (blue −{scale:.3} · white 0 · red +{scale:.3})");
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0..cols.len(), 0..rows.len())
        .map_err(|e| draw_error(e.to_string()))?;
    let (steps, labels) = (&trace.steps, &rows);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("step")
        .y_desc("block")
        .x_label_formatter(&|&c| cols.get(c).map_or(String::new(), |&i| steps[i].to_string()))
        .y_label_formatter(&|&r| labels.get(r).map_or(String::new(), |b| b.to_string()))
        .draw()
        .map_err(|e| draw_error(e.to_string()))?;
    let cells = cols.iter().enumerate().flat_map(|(x, &step)| {
        rows.iter().enumerate().map(move |(y, &block)| {
            let fill = colour(trace.alphas[step][block], scale).filled();
            Rectangle::new([(x, y), (x + 1, y + 1)], fill)
        })
    });
    chart
        .draw_series(cells)
        .map_err(|e| draw_error(e.to_string()))?;
    root.present().map_err(|e| draw_error(e.to_string()))?;
    Ok(())
}

/// Writes `alpha-NAME.svg` into `dir` for each run folder in `runs` that holds α (the
/// ReZero variants of a comparison; the others are passed over). Returns the files written.
pub fn heatmaps_for(runs: &[PathBuf], dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for run in runs {
        let Ok(trace) = read_alphas(run) else {
            continue;
        };
        let name = run
            .file_name()
            .map_or("run".into(), |n| n.to_string_lossy());
        let out = dir.join(format!("alpha-{name}.svg"));
        alpha_heatmap_svg(&trace, &name, &out)?;
        written.push(out);
    }
    Ok(written)
}
