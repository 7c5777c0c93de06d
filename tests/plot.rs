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
