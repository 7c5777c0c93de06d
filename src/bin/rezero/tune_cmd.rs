//! `rezero tune`: measures the candidate kernels of each shape class now (instead of at
//! first use), records the winners in the tuning table (and its cache file) and prints
//! every candidate's time.

use std::io::Write;
use std::path::PathBuf;

use rezero::gpu::Gpu;
use rezero::kernels::matmul::{self, Matmul};
use rezero::{Error, Result};

#[derive(clap::Args)]
pub struct TuneArgs {
    /// Matmul shapes: N or MxNxK, with :nt, :tn or :tt for stored-transposed operands
    /// (default: square products, the Transformer's projections and their backwards).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<String>,
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

pub fn tune(gpu: &Gpu, args: &TuneArgs) -> Result<()> {
    let sizes: Vec<&str> = if args.sizes.is_empty() {
        DEFAULT_SIZES.to_vec()
    } else {
        args.sizes.iter().map(String::as_str).collect()
    };
    let shapes = sizes
        .iter()
        .map(|s| parse_shape(s))
        .collect::<Result<Vec<_>>>()?;
    if !args.json {
        out!(
            "{:<22} {:<38} {:<24} {:>10} {:>10}",
            "shape",
            "class",
            "candidate",
            "ms",
            "GFLOP/s"
        );
    }
    for (text, desc) in sizes.iter().zip(&shapes) {
        let key = matmul::tuning_key(desc);
        let times = matmul::measure_candidates(gpu, desc)?;
        let best = times
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|&(v, _)| v)
            .expect("there is always a candidate");
        for (variant, seconds) in &times {
            let gflops = desc.flops() / seconds / 1e9;
            let mark = if *variant == best { " *" } else { "" };
            if args.json {
                out!(
                    "{{\"kernel\":\"matmul\",\"shape\":\"{text}\",\"class\":\"{key}\",\"candidate\":\"{}\",\"ms\":{:.4},\"gflops\":{gflops:.3},\"best\":{}}}",
                    variant.name(),
                    seconds * 1e3,
                    *variant == best
                );
            } else {
                out!(
                    "{text:<22} {key:<38} {:<24} {:>10.3} {gflops:>10.1}{mark}",
                    variant.name(),
                    seconds * 1e3
                );
            }
        }
        gpu.set_tuned(&key, &best.name());
    }
    let (table, file) = gpu.tuning_table();
    match file {
        Some(path) => eprintln!("tuning table: {}", path.display()),
        None => eprintln!("tuning table: not kept (--no-tuning-cache)"),
    }
    if let Some(path) = &args.save {
        std::fs::write(path, table).map_err(|e| Error::data(path, e.to_string()))?;
        eprintln!("saved to {}", path.display());
    }
    Ok(())
}
