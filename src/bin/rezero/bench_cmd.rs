//! `rezero bench`: kernel timings beside a reference measured in the same run.

use std::io::Write;

use clap::ValueEnum;
use rezero::bench::{self, Record};
use rezero::gpu::Gpu;
use rezero::kernels::Dtype;
use rezero::kernels::attention::AttentionShape;
use rezero::kernels::conv2d::ConvVariant;
use rezero::kernels::matmul::MatmulVariant;
use rezero::{Error, Result};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Family {
    Matmul,
    Rezero,
    Elementwise,
    Reduce,
    Softmax,
    Layernorm,
    Embedding,
    CrossEntropy,
    Optim,
    /// A linear layer's bias gradient (ROWSxCOLS), alone and through GELU, beside the ones-vector
    /// product it replaced.
    Bias,
    /// Causal attention, forward and forward with backward: each fused kernel against the materialised path.
    Attention,
    /// conv2d forward and both backwards at ResNet shapes, beside the matmul of the equivalent GEMM.
    Conv2d,
    /// Batchnorm (training, eval, backward) and global average pooling, beside the plain copy.
    Batchnorm,
    /// A whole MLP training step (forward, backward, Adagrad) against depth.
    Mlp,
    /// A whole Transformer training step (forward, backward, Adam): tokens/s.
    Lm,
    /// A whole ResNet training step (forward, backward, SGD): images/s against depth.
    Resnet,
    All,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Which kernels to time.
    #[arg(value_enum)]
    pub family: Family,
    /// Comma-separated sizes: matmul N or MxNxK (e.g. 1024,4096x512x512); rezero,
    /// elementwise, reduce and optim element counts (e.g. 1M,16M); softmax, layernorm and
    /// cross-entropy and bias ROWSxCOLS; embedding TOKENSxDIM[xVOCAB]; mlp DEPTH[xWIDTH[xBATCH]];
    /// attention T or BHxTxD; lm LAYERSxD_MODELxSEQxBATCH; conv2d
    /// BATCHxC_INxSIZExC_OUTxKxSTRIDE; batchnorm BATCHxCHANNELSxPIXELS; resnet DEPTHxBATCH.
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<String>,
    /// Matmul variants to time: naive, tiled, reg8x4, blocked[:BMxBNxBK:TMxTN], coop8,
    /// coop16, auto (default: naive where small, tiled, reg8x4, blocked, auto; then, where
    /// the device has f16, blocked, auto and each tensor-core size it lists, on f16).
    #[arg(long, value_delimiter = ',')]
    variants: Vec<MatmulVariant>,
    /// Element type of the matmul --variants given (f32, or f16: f16 A, B and C, f32 sums),
    /// of the attention's fused kernels (f16 q, k, v, o and gradients, f32 tiles), and of
    /// the lm step's activations (f16: mixed precision with loss scaling).
    #[arg(long, default_value = "f32")]
    precision: Dtype,
    /// Timed runs per case (the median is reported).
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Untimed runs before timing.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// mlp, lm, resnet: time every dispatch of one more step with timestamp queries and
    /// print where the step's time goes, by kernel entry point.
    #[arg(long)]
    profile: bool,
}

/// Prints a step's profile, if it has one.
fn emit_profile(step: Option<&bench::StepProfile>, median_seconds: f64, json: bool) {
    if let Some(step) = step {
        for line in step
            .profile
            .lines(step.wall_seconds, Some(median_seconds), json)
        {
            out!("{line}");
        }
    }
}

/// Prints one record as a table row or a JSON line.
fn emit(record: &Record, json: bool) {
    if json {
        out!("{}", record.to_json());
    } else {
        out!("{}", record.to_row());
    }
}

fn sizes_or<'a>(given: &'a [String], default: &[&'a str]) -> Vec<&'a str> {
    if given.is_empty() {
        default.to_vec()
    } else {
        given.iter().map(String::as_str).collect()
    }
}

fn bench_matmul(gpu: &Gpu, args: &BenchArgs) -> Result<()> {
    for size in sizes_or(
        &args.sizes,
        &["256", "512", "1024", "4096x512x512", "4096x2048x512"],
    ) {
        let (m, n, k) = bench::parse_mnk(size)?;
        bench::check_matmul_size(gpu, size, [m, n, k])?;
        let flops = 2.0 * m as f64 * n as f64 * k as f64;
        let cpu_runs = if flops > 4e9 { 3 } else { args.runs };
        let cpu =
            flops / bench::cpu_sgemm_seconds(m as usize, n as usize, k as usize, cpu_runs)? / 1e9;
        let rows = if args.variants.is_empty() {
            bench::default_matmul_rows(gpu, flops)
        } else {
            args.variants.iter().map(|&v| (v, args.precision)).collect()
        };
        for (variant, dtype) in rows {
            let case = match bench::typed_matmul_case(gpu, [m, n, k], variant, dtype) {
                Ok(case) => case,
                Err(Error::Unsupported { why, .. }) => {
                    eprintln!("matmul {size} {dtype} {}: skipped, {why}", variant.name());
                    continue;
                }
                Err(e) => return Err(e),
            };
            // Products over 4 GFLOP take seconds on software Vulkan: fewer runs.
            let (warmup, runs) = if flops > 4e9 {
                (args.warmup.min(1), args.runs.min(3))
            } else {
                (args.warmup, args.runs)
            };
            emit(
                &bench::measure(gpu, &case, warmup, runs, "cpu-sgemm", cpu)?,
                args.json,
            );
        }
    }
    Ok(())
}

/// The prepared cases of a memory-bound family at one size, and the element count of the
/// plain copy they are measured against.
fn memory_cases(gpu: &Gpu, family: Family, size: &str) -> Result<(Vec<bench::Case>, u32)> {
    // Every buffer is checked against the device's limits before any is allocated.
    let name = family.to_possible_value().map(|v| v.get_name().to_string());
    let case = format!("bench {} {size}", name.unwrap_or_default());
    let fits = |buffers: &[(&str, u64)]| bench::check_buffers(gpu, &case, buffers);
    let rows_cols = |size: &str| -> Result<(u32, u32, u32)> {
        let (rows, cols) = bench::parse_rows_cols(size)?;
        let n = rows
            .checked_mul(cols)
            .ok_or_else(|| bench::too_many_elements(size))?;
        fits(&[("[rows, cols]", n as u64)])?;
        Ok((rows, cols, n))
    };
    let count = |size: &str| -> Result<u32> {
        let n = bench::parse_count(size)?;
        fits(&[("each operand", n as u64)])?;
        Ok(n)
    };
    Ok(match family {
        Family::Rezero | Family::Elementwise => {
            let n = count(size)?;
            let mut cases = if family == Family::Rezero {
                bench::rezero_cases(gpu, n)
            } else {
                bench::elementwise_cases(gpu, n)
            };
            if n % 4 == 0 {
                // The vec4 copy shows the ceiling beside the plain copy reference.
                cases.insert(0, bench::copy_vec4_case(gpu, n));
            }
            (cases, n)
        }
        Family::Reduce => {
            let n = count(size)?;
            (bench::reduce_cases(gpu, n), n)
        }
        Family::Optim => {
            let n = count(size)?;
            (bench::optim_cases(gpu, n), n)
        }
        Family::Embedding => {
            let (tokens, dim, vocab) = bench::parse_embedding(size)?;
            let n = tokens
                .checked_mul(dim)
                .ok_or_else(|| bench::too_many_elements(size))?;
            let table = vocab as u64 * dim as u64;
            fits(&[("the output [tokens, dim]", n as u64), ("the table", table)])?;
            (bench::embedding_cases(gpu, tokens, dim, vocab)?, n)
        }
        Family::Softmax => {
            let (rows, cols, n) = rows_cols(size)?;
            (bench::softmax_cases(gpu, rows, cols), n)
        }
        Family::Layernorm => {
            let (rows, cols, n) = rows_cols(size)?;
            (bench::layernorm_cases(gpu, rows, cols), n)
        }
        Family::Bias => {
            let (rows, cols, n) = rows_cols(size)?;
            (bench::bias_cases(gpu, rows, cols)?, n)
        }
        Family::CrossEntropy => {
            let (rows, cols, n) = rows_cols(size)?;
            (bench::cross_entropy_cases(gpu, rows, cols), n)
        }
        Family::Batchnorm => {
            let shape = bench::parse_batchnorm(size)?;
            let n = u32::try_from(shape.len()).map_err(|_| bench::too_many_elements(size))?;
            fits(&[("[batch, channels, h·w]", n as u64)])?;
            (bench::batchnorm_cases(gpu, shape), n)
        }
        _ => unreachable!("not a memory-bound family"),
    })
}

fn bench_memory(gpu: &Gpu, args: &BenchArgs, family: Family) -> Result<()> {
    let defaults: &[&str] = match family {
        Family::Softmax | Family::Layernorm => &["4096x256", "16384x1024"],
        // The feed-forward layer of a Transformer step: 4096 and 16384 tokens, d_ff 2048.
        Family::Bias => &["4096x2048", "16384x2048"],
        // 128 sequences of 128 bytes over 256 classes; 1024 tokens over a 32k vocabulary
        // (128 MiB of logits, the largest binding lavapipe allows).
        Family::CrossEntropy => &["16384x256", "1024x32768"],
        Family::Embedding => &["16384x512x256", "4096x512x32768"],
        // The three ResNet stages at batch 128.
        Family::Batchnorm => &["128x16x1024", "128x32x256", "128x64x64"],
        _ => &["1M", "16M"],
    };
    for size in sizes_or(&args.sizes, defaults) {
        let (cases, n) = memory_cases(gpu, family, size)?;
        for case in &cases {
            let record = bench::measure_against_copy(gpu, case, n, args.warmup, args.runs)?;
            emit(&record, args.json);
        }
    }
    Ok(())
}

pub fn bench(gpu: &Gpu, args: &BenchArgs) -> Result<()> {
    if !args.json {
        out!("{} ({:?})", gpu.info().name, gpu.info().backend);
        out!("{}", Record::header());
    }
    let families = match args.family {
        Family::All => {
            if !args.sizes.is_empty() {
                return Err(Error::Invalid {
                    what: "--sizes".into(),
                    why: "sizes mean different things per family; give a family, not all".into(),
                });
            }
            vec![
                Family::Matmul,
                Family::Rezero,
                Family::Elementwise,
                Family::Reduce,
                Family::Softmax,
                Family::Layernorm,
                Family::Embedding,
                Family::CrossEntropy,
                Family::Optim,
                Family::Bias,
                Family::Attention,
                Family::Conv2d,
                Family::Batchnorm,
                Family::Mlp,
            ]
        }
        f => vec![f],
    };
    for family in families {
        match family {
            Family::Matmul => bench_matmul(gpu, args)?,
            Family::Mlp => bench_mlp(gpu, args)?,
            Family::Lm => bench_lm(gpu, args)?,
            Family::Attention => bench_attention(gpu, args)?,
            Family::Conv2d => bench_conv(gpu, args)?,
            Family::Resnet => bench_resnet(gpu, args)?,
            f => bench_memory(gpu, args, f)?,
        }
    }
    Ok(())
}

/// ReZero MLP training steps against depth, beside the matmul of one layer's shape
/// ([batch, width] · [width, width]) in the same run.
fn bench_mlp(gpu: &Gpu, args: &BenchArgs) -> Result<()> {
    for size in sizes_or(&args.sizes, &["64", "256", "1000"]) {
        let (depth, width, batch) = bench::parse_mlp(size)?;
        let config = bench::mlp_config(
            rezero::nn::MlpVariant::Rezero,
            depth as usize,
            width as usize,
        );
        config
            .footprint(batch as usize, Dtype::F32)?
            .check(gpu, 1)?;
        let layer = bench::matmul_case(gpu, batch, width, width, MatmulVariant::Auto)?;
        let reference = bench::measure(gpu, &layer, args.warmup, args.runs, "", 1.0)?.value;
        let runs = args.runs.min(5);
        let step = bench::mlp_step(
            gpu,
            rezero::nn::MlpVariant::Rezero,
            depth as usize,
            width as usize,
            batch as usize,
            bench::StepTiming {
                warmup: 1,
                runs,
                profile: args.profile,
            },
        )?;
        let mib = |b: u64| b as f64 / 1048576.0;
        let record = Record {
            kernel: "mlp_step".into(),
            shape: format!("{depth}x{width}x{batch}"),
            variant: "rezero".into(),
            ms: step.seconds * 1e3,
            value: step.flops / step.seconds / 1e9,
            unit: "GFLOP/s",
            reference: format!("matmul {batch}x{width}x{width}"),
            reference_value: reference,
            note: format!(
                "activations {:.1} MiB peak, params+grads+state {:.1} MiB",
                mib(step.peak_activation_bytes),
                mib(step.param_bytes)
            ),
        };
        emit(&record, args.json);
        emit_profile(step.profile.as_ref(), step.seconds, args.json);
    }
    Ok(())
}

/// The fused causal attention kernels beside the materialised path in the same run: the
/// forward, then the forward with the backward. Each fused kernel is timed in turn with
/// the materialised path, and its ratio is to those runs of it.
fn bench_attention(gpu: &Gpu, args: &BenchArgs) -> Result<()> {
    for size in sizes_or(&args.sizes, &["128", "512", "2048"]) {
        let (bh, t, d) = bench::parse_attention(size)?;
        let shape = AttentionShape::heads(bh, t, d).dtype(args.precision);
        for backward in [false, true] {
            let (materialised, fused) = bench::attention_cases(gpu, shape, backward)?;
            let (warmup, runs) = (args.warmup, args.runs);
            let mut reference = bench::measure(gpu, &materialised, warmup, runs, "itself", 1.0)?;
            reference.reference_value = reference.value; // the reference row: ratio 1
            emit(&reference, args.json);
            for case in &fused {
                let against = (&materialised, "materialised");
                let record = bench::measure_alternating(gpu, case, against, warmup, runs)?;
                emit(&record, args.json);
            }
        }
    }
    Ok(())
}

/// Transformer training steps in tokens/s, beside the matmul of the feed-forward layer's
/// first product ([batch·seq, d_model] · [4·d_model, d_model]ᵀ) in the same run.
fn bench_lm(gpu: &Gpu, args: &BenchArgs) -> Result<()> {
    // Sizes that finish on software Vulkan; a GPU takes the 12-layer, d_model 512, seq 512 ones.
    for size in sizes_or(
        &args.sizes,
        &["12x256x128x4", "12x256x512x1", "12x512x128x1"],
    ) {
        let (layers, d_model, seq, batch) = bench::parse_lm(size)?;
        let config = bench::lm_config(layers as usize, d_model as usize, seq as usize);
        config
            .footprint(batch as usize, args.precision)?
            .check(gpu, 2)?;
        let layer =
            bench::matmul_case(gpu, batch * seq, 4 * d_model, d_model, MatmulVariant::Auto)?;
        let reference = bench::measure(gpu, &layer, args.warmup, args.runs, "", 1.0)?.value;
        let step = bench::lm_step(
            gpu,
            layers as usize,
            d_model as usize,
            seq as usize,
            batch as usize,
            args.precision,
            bench::StepTiming {
                warmup: 1,
                runs: args.runs.min(3),
                profile: args.profile,
            },
        )?;
        let record = Record {
            kernel: "lm_step".into(),
            shape: size.to_string(),
            // f16 rows say so, as the matmul's do.
            variant: match args.precision {
                Dtype::F32 => "rezero".into(),
                Dtype::F16 => "f16:rezero".into(),
            },
            ms: step.seconds * 1e3,
            value: step.flops / step.seconds / 1e9,
            unit: "GFLOP/s",
            reference: format!("matmul {}x{}x{}", batch * seq, 4 * d_model, d_model),
            reference_value: reference,
            note: format!(
                "{:.0} tokens/s, activations {:.1} MiB peak",
                step.tokens as f64 / step.seconds,
                step.peak_activation_bytes as f64 / 1048576.0
            ),
        };
        emit(&record, args.json);
        emit_profile(step.profile.as_ref(), step.seconds, args.json);
    }
    Ok(())
}

/// conv2d at ResNet layer shapes: every pass beside the matmul of its equivalent GEMM
/// shape in the same run.
fn bench_conv(gpu: &Gpu, args: &BenchArgs) -> Result<()> {
    for size in sizes_or(&args.sizes, &bench::RESNET_CONV_SHAPES) {
        let shape = bench::parse_conv(size)?;
        for conv in bench::conv_cases(gpu, shape)? {
            let (m, n, k) = conv.gemm;
            // The unfolded operand of a large layer may not fit one binding (128 MiB on
            // software Vulkan): then there is no matmul to compare with.
            let (reference, name) = match bench::gemm_case(gpu, conv.gemm) {
                Ok(gemm) => (
                    bench::measure(gpu, &gemm, args.warmup, args.runs, "", 1.0)?.value,
                    format!("matmul {m}x{n}x{k}"),
                ),
                Err(Error::Limits { .. }) => (f64::NAN, "matmul too big".to_string()),
                Err(e) => return Err(e),
            };
            let record = bench::measure(gpu, &conv.case, args.warmup, args.runs, &name, reference)?;
            emit(&record, args.json);
        }
    }
    Ok(())
}

/// ResNet training steps in images/s against depth, beside the forward convolution (`Auto`)
/// of the first stage's layer (16 → 16 channels, 3×3, 32×32) at the same batch in the same
/// run.
fn bench_resnet(gpu: &Gpu, args: &BenchArgs) -> Result<()> {
    // Sizes that finish on software Vulkan; a GPU takes 20x128,56x128,110x128.
    for size in sizes_or(&args.sizes, &["20x32", "56x32"]) {
        let (depth, batch) = bench::parse_resnet(size)?;
        let config = bench::resnet_config(rezero::nn::ResnetVariant::Rezero, depth as usize);
        config
            .footprint(batch as usize, 32, Dtype::F32)?
            .check(gpu, 1)?;
        let layer = rezero::kernels::conv2d::Conv2d::new(batch, 16, 32, 32, 16, 3).pad(1);
        // The forward kernel the tape runs (`Auto`) on the first stage's layer.
        let x = gpu.upload("x", &rezero::cpu::seeded(1, layer.input_len(), -1.0, 1.0));
        let w = gpu.upload("w", &rezero::cpu::seeded(2, layer.weight_len(), -1.0, 1.0));
        let forward = bench::conv_forward_case(gpu, layer, ConvVariant::Auto, &x, &w);
        let reference = bench::measure(gpu, &forward, args.warmup, args.runs, "", 1.0)?;
        for variant in [
            rezero::nn::ResnetVariant::Standard,
            rezero::nn::ResnetVariant::Rezero,
        ] {
            let step = bench::resnet_step(
                gpu,
                variant,
                depth as usize,
                batch as usize,
                bench::StepTiming {
                    warmup: 1,
                    runs: args.runs.min(3),
                    profile: args.profile,
                },
            )?;
            let record = Record {
                kernel: "resnet_step".into(),
                shape: size.to_string(),
                variant: variant.name().into(),
                ms: step.seconds * 1e3,
                value: step.flops / step.seconds / 1e9,
                unit: "GFLOP/s",
                reference: format!("conv {}", bench::conv_shape_name(&layer)),
                reference_value: reference.value,
                note: format!(
                    "{:.0} images/s, activations {:.1} MiB peak, params+grads+state {:.1} MiB",
                    step.images as f64 / step.seconds,
                    step.peak_activation_bytes as f64 / 1048576.0,
                    step.param_bytes as f64 / 1048576.0
                ),
            };
            emit(&record, args.json);
            emit_profile(step.profile.as_ref(), step.seconds, args.json);
        }
    }
    Ok(())
}
