//! `rezero tune`: measures the candidate kernels of each shape class now (`Auto` otherwise
//! runs a default for a class the table lacks), records the winners in the tuning table
//! (and its cache file) and prints every candidate's time.

use std::io::Write;
use std::path::PathBuf;

use rezero::gpu::Gpu;
use rezero::kernels::autotune::{self, TuneRequest, Tuned};
use rezero::kernels::conv2d::ConvPass;
use rezero::kernels::matmul::Matmul;
use rezero::{Error, Result};

#[derive(clap::Args)]
pub struct TuneArgs {
    /// Matmul shapes: N or MxNxK, with :nt, :tn or :tt for stored-transposed operands
    /// (default: square products, the Transformer's projections and their backwards).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<String>,
    /// Convolutions, every pass: BATCHxC_INxSIZExC_OUTxKxSTRIDE with padding K/2
    /// (default: the CIFAR ResNet layers at batch 128; `none` for none).
    #[arg(long, value_delimiter = ',')]
    convs: Vec<String>,
    /// Also write the whole table to this file (to commit as the device's defaults).
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// One JSON object per candidate instead of a table.
    #[arg(long)]
    json: bool,
}

/// Square products, then a 12-layer d_model 512 Transformer's products at 4096 tokens:
/// forward (weights stored [out, in]: :nt), backward to the input (nn) and to the weights (tn).
const DEFAULT_SIZES: [&str; 9] = [
    "1024",
    "2048",
    "4096",
    "4096x1536x512:nt",
    "4096x2048x512:nt",
    "4096x512x2048:nt",
    "4096x512x2048",
    "512x2048x4096:tn",
    "2048x512x4096:tn",
];

/// "MxNxK[:nt]" as a product.
fn parse_shape(text: &str) -> Result<Matmul> {
    let (dims, layout) = text.split_once(':').unwrap_or((text, "nn"));
    let (m, n, k) = rezero::bench::parse_mnk(dims)?;
    let (ta, tb) = match layout {
        "nn" => (false, false),
        "nt" => (false, true),
        "tn" => (true, false),
        "tt" => (true, true),
        _ => {
            return Err(Error::Invalid {
                what: "matmul layout".into(),
                why: format!("'{layout}' in '{text}' is not nn, nt, tn or tt"),
            });
        }
    };
    Ok(Matmul::new(m, n, k).trans_a(ta).trans_b(tb))
}

/// One class, measured (and its winner recorded) by `autotune::tune`: prints every
/// candidate's time (or a JSON line each) and marks the fastest. A lone candidate is not
/// run: its time reads 0, shown as such.
fn report(args: &TuneArgs, (kernel, shape): (&str, &str), flops: f64, tuned: &Tuned) {
    let key = &tuned.key;
    for (label, seconds) in &tuned.times {
        let timed = (*seconds > 0.0).then(|| (seconds * 1e3, flops / seconds / 1e9));
        let winner = *label == tuned.winner;
        if args.json {
            let (ms, gflops) = timed.map_or(("null".into(), "null".into()), |(ms, g)| {
                (format!("{ms:.4}"), format!("{g:.3}"))
            });
            out!(
                "{{\"kernel\":\"{kernel}\",\"shape\":\"{shape}\",\"class\":\"{key}\",\"candidate\":\"{label}\",\"ms\":{ms},\"gflops\":{gflops},\"best\":{winner}}}"
            );
        } else {
            let figures = timed.map_or(format!("{:>21}", "the only candidate"), |(ms, g)| {
                format!("{ms:>10.3} {g:>10.1}")
            });
            let mark = if winner { " *" } else { "" };
            out!("{shape:<26} {key:<44} {label:<24} {figures}{mark}");
        }
    }
}

/// Measures one class now and records its winner.
fn measure(gpu: &Gpu, request: TuneRequest) -> Result<Tuned> {
    let mut tuned = pollster::block_on(autotune::tune(gpu, &[request]))?;
    Ok(tuned.remove(0))
}

pub fn tune(gpu: &Gpu, args: &TuneArgs) -> Result<()> {
    let pick = |given: &[String], default: &[&'static str]| -> Vec<String> {
        match given {
            [] => default.iter().map(|s| s.to_string()).collect(),
            [none] if none == "none" => vec![],
            list => list.to_vec(),
        }
    };
    let sizes = pick(&args.sizes, &DEFAULT_SIZES);
    let convs = pick(&args.convs, &rezero::bench::RESNET_CONV_SHAPES);
    // Every shape is parsed before anything is measured: a typo fails at once.
    let products = sizes
        .iter()
        .map(|s| parse_shape(s))
        .collect::<Result<Vec<_>>>()?;
    let layers = convs
        .iter()
        .map(|s| rezero::bench::parse_conv(s))
        .collect::<Result<Vec<_>>>()?;
    if !args.json {
        out!(
            "{:<26} {:<44} {:<24} {:>10} {:>10}",
            "shape",
            "class",
            "candidate",
            "ms",
            "GFLOP/s"
        );
    }
    for (text, desc) in sizes.iter().zip(&products) {
        let tuned = measure(gpu, TuneRequest::Matmul(*desc))?;
        report(args, ("matmul", text), desc.flops(), &tuned);
    }
    for (text, layer) in convs.iter().zip(&layers) {
        for pass in [
            ConvPass::Forward,
            ConvPass::BackwardInput,
            ConvPass::BackwardWeight,
        ] {
            let tuned = measure(gpu, TuneRequest::Conv(pass, *layer))?;
            let shape = format!("{text} {}", pass.name());
            report(args, ("conv2d", &shape), layer.flops(), &tuned);
        }
    }
    let (table, file) = gpu.tuning_table();
    match file {
        Some(path) => eprintln!("tuning table: {}", path.display()),
        None => eprintln!("tuning table: not kept (--no-tuning-cache)"),
    }
    if let Some(path) = &args.save {
        std::fs::write(path, table).map_err(|e| Error::io(path, "write", e))?;
        eprintln!("saved to {}", path.display());
    }
    Ok(())
}
