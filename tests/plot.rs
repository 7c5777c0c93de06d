//! Reading curves from metrics files and drawing them: values, skipped empty cells, errors.

use rezero::Error;
use rezero::train::plot::{plot_svg, read_curve};

#[test]
fn curves_read_skip_empty_cells_and_draw() {
    let dir = std::env::temp_dir().join(format!("rezero-plot-{}", std::process::id()));
    let run = dir.join("rezero-8x16");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("metrics.csv"), "step,epoch,loss,lr,alpha_min,alpha_mean,alpha_max\n10,1,2.5,0.01,,,\n20,1,1.5,0.01,,,\n30,1,NaN,0.01,,,\n").unwrap();
    let curve = read_curve(&run, "metrics.csv", "loss").unwrap();
    assert_eq!(curve.label, "rezero-8x16");
    assert_eq!(
        curve.points,
        vec![(10.0, 2.5), (20.0, 1.5)],
        "the NaN row is skipped"
    );
    assert!(
        read_curve(&run, "metrics.csv", "alpha_mean")
            .unwrap()
            .points
            .is_empty()
    );
    let err = read_curve(&run, "metrics.csv", "accuracy").unwrap_err();
    assert!(
        matches!(&err, Error::Data { why, .. } if why.contains("no 'accuracy' column")),
        "{err}"
    );

    let svg = dir.join("loss.svg");
    plot_svg(std::slice::from_ref(&curve), "loss", "test", &svg).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.starts_with("<svg") && text.contains("rezero-8x16") && text.contains("<polyline"),
        "{text}"
    );
    assert!(
        plot_svg(&[curve], "loss", "test", &dir.join("loss.png")).is_err(),
        "only SVG is drawn"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn alpha_heatmaps_read_every_block_and_sample_large_runs() {
    use rezero::train::heatmap::{alpha_heatmap_svg, heatmaps_for, read_alphas};
    let dir = std::env::temp_dir().join(format!("rezero-heatmap-{}", std::process::id()));
    let (small, large, plain) = (dir.join("rezero"), dir.join("deep"), dir.join("postnorm"));
    for d in [&small, &large, &plain] {
        std::fs::create_dir_all(d).unwrap();
    }
    let header = "step,loss,lr,tokens_per_s,alpha_min,alpha_mean,alpha_max,alpha_0,alpha_1";
    let rows = "10,2.5,0.01,5,0,0.05,0.1,0,0.1\n20,2.0,0.01,5,,,,NaN,0.2\n30,1.5,0.01,5,-0.1,0.05,0.2,-0.1,0.2\n";
    std::fs::write(small.join("metrics.csv"), format!("{header}\n{rows}")).unwrap();
    let trace = read_alphas(&small).unwrap();
    assert_eq!(
        trace.steps,
        vec![10.0, 30.0],
        "the row with a NaN α is skipped"
    );
    assert_eq!(trace.alphas, vec![vec![0.0, 0.1], vec![-0.1, 0.2]]);
    let svg = dir.join("small.svg");
    alpha_heatmap_svg(&trace, "small", &svg).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("block") && text.matches("<rect").count() >= 4);
    // 1000 logged steps of 500 blocks: drawn as at most 240 × 240 cells.
    let header: String = (0..500).map(|i| format!(",alpha_{i}")).collect();
    let body: String = (1..=1000)
        .map(|s| {
            let alphas: String = (0..500)
                .map(|b| format!(",{}", (s * b) as f32 * 1e-6))
                .collect();
            format!("{s},1.0,0.1,1{alphas}\n")
        })
        .collect();
    let csv = format!("step,loss,lr,tokens_per_s{header}\n{body}");
    std::fs::write(large.join("metrics.csv"), csv).unwrap();
    std::fs::write(
        plain.join("metrics.csv"),
        "step,loss,lr,tokens_per_s\n1,2,0.1,1\n",
    )
    .unwrap();
    let err = read_alphas(&plain).unwrap_err().to_string();
    assert!(err.contains("ReZero variant"), "{err}");
    let written = heatmaps_for(&[small.clone(), large.clone(), plain.clone()], &dir).unwrap();
    assert_eq!(
        written,
        vec![dir.join("alpha-rezero.svg"), dir.join("alpha-deep.svg")]
    );
    let text = std::fs::read_to_string(dir.join("alpha-deep.svg")).unwrap();
    let cells = text.matches("<rect").count();
    assert!(
        (240 * 240..240 * 240 + 10).contains(&cells),
        "{cells} rectangles"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
