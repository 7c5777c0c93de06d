//! Curves of several runs in one SVG picture (plotters), read from their metrics files.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::gpu::{Error, Result};

/// One run's curve: its label (the run directory's name), (x, value) points and what x
/// counts ("step", "epoch").
#[derive(Clone, Debug)]
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub x_label: String,
}

/// Reads column `column` against `step` from `RUN_DIR/file` (a CSV with a header line).
/// Rows whose value is empty or not finite are skipped.
pub fn read_curve(run_dir: &Path, file: &str, column: &str) -> Result<Curve> {
    read_curve_against(run_dir, file, "step", column)
}

/// Like [`read_curve`], against column `x` instead of `step`.
pub fn read_curve_against(run_dir: &Path, file: &str, x: &str, column: &str) -> Result<Curve> {
    let path = run_dir.join(file);
    let bad = |why: String| Error::Data {
        path: path.clone(),
        why,
    };
    let text = crate::files::read_text_capped(&path, crate::files::MAX_CSV_BYTES)
        .map_err(|e| Error::io(&path, "read", e))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| bad("empty file".into()))?
        .split(',')
        .collect();
    let find = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| bad(format!("no '{name}' column (has {})", header.join(", "))))
    };
    let (step_col, value_col) = (find(x)?, find(column)?);
    let mut points = Vec::new();
    for (i, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        let parse = |c: usize| fields.get(c).and_then(|f| f.parse::<f64>().ok());
        let step = parse(step_col).ok_or_else(|| bad(format!("line {}: no {x}", i + 2)))?;
        if let Some(v) = parse(value_col).filter(|v| v.is_finite()) {
            points.push((step, v));
        }
    }
    let label = run_dir.file_name().map_or_else(
        || run_dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(Curve {
        label,
        points,
        x_label: x.to_string(),
    })
}

/// Like [`plot_svg`], but when no curve has a finite point (every run diverged at once)
/// nothing is drawn and `Ok(false)` says so.
pub fn plot_svg_if_any(
    curves: &[Curve],
    y_label: &str,
    title: &str,
    out: &PathBuf,
) -> Result<bool> {
    if curves.iter().all(|c| c.points.is_empty()) {
        return Ok(false);
    }
    plot_svg(curves, y_label, title, out).map(|()| true)
}

/// Draws `curves` into an SVG file at `out`, with `y_label` and a legend.
pub fn plot_svg(curves: &[Curve], y_label: &str, title: &str, out: &PathBuf) -> Result<()> {
    if out.extension().is_none_or(|e| e != "svg") {
        return Err(Error::Invalid {
            what: "plot file".into(),
            why: format!(
                "{} should end in .svg (the only format drawn)",
                out.display()
            ),
        });
    }
    let points = curves.iter().flat_map(|c| c.points.iter());
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if !y_min.is_finite() {
        return Err(Error::Invalid {
            what: "plot".into(),
            why: "the runs have no finite values to draw".into(),
        });
    }
    let draw_error = |e: String| Error::Data {
        path: out.clone(),
        why: format!("cannot draw: {e}"),
    };
    let root = SVGBackend::new(out, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(e.to_string()))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70);
    // Positive values (losses) on a log scale, so a diverging run does not flatten the rest.
    if y_min > 0.0 {
        let chart = builder
            .build_cartesian_2d(0.0..x_max, (y_min * 0.9..y_max * 1.1).log_scale())
            .map_err(|e| draw_error(e.to_string()))?;
        draw_curves(chart, curves, &format!("{y_label} (log scale)")).map_err(draw_error)?;
    } else {
        let pad = ((y_max - y_min) * 0.05).max(1e-6);
        let chart = builder
            .build_cartesian_2d(0.0..x_max, (y_min - pad)..(y_max + pad))
            .map_err(|e| draw_error(e.to_string()))?;
        draw_curves(chart, curves, y_label).map_err(draw_error)?;
    }
    root.present().map_err(|e| draw_error(e.to_string()))?;
    Ok(())
}

/// The mesh, one line a curve and the legend, on either kind of y axis.
fn draw_curves<'a, Y>(
    mut chart: ChartContext<
        'a,
        SVGBackend<'a>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, Y>,
    >,
    curves: &[Curve],
    y_label: &str,
) -> std::result::Result<(), String>
where
    Y: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    // Plain numbers, or 1e9-style ones when they are huge or tiny.
    let tick = |v: &f64| {
        if v.abs() >= 1e4 || (*v != 0.0 && v.abs() < 1e-3) {
            format!("{v:.0e}")
        } else {
            format!("{v}")
        }
    };
    chart
        .configure_mesh()
        .x_desc(curves.first().map_or("step", |c| c.x_label.as_str()))
        .y_desc(y_label)
        .y_label_formatter(&tick)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, curve) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                curve.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(curve.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}
