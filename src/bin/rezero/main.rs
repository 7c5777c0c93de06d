//! The `rezero` command line: `info` (the GPU rezero would use), `bench` (kernel timings
//! beside a reference measured in the same run) and `train` (models on real data).

use std::process::ExitCode;

/// `println!` for the command modules (they `use std::io::Write`): a failed write to stdout
/// (a closed pipe, a full disk) ends the program with an error, exit status 1.
macro_rules! out {
    ($($arg:tt)*) => {
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            eprintln!("error: cannot write to standard output: {e}");
            std::process::exit(1);
        }
    };
}

mod bench_cmd;
mod eval_cmd;
mod flags;
mod images_cmd;
mod info_cmd;
mod isometry_cmd;
mod lm_cmd;
mod lm_compare;
mod lm_preset;
mod plot_cmd;
mod resnet_cmd;
mod start;
mod train_cmd;
mod tune_cmd;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use rezero::Result;
use rezero::gpu::{BackendChoice, Gpu, GpuOptions};

#[derive(Parser)]
#[command(
    name = "rezero",
    version,
    about = "ReZero deep networks on any GPU wgpu reaches: hand-written WGSL kernels, benchmarks"
)]
struct Cli {
    /// Graphics API to use: vulkan, metal, dx12 or gl (default: the best available).
    #[arg(long, global = true)]
    backend: Option<String>,
    /// Use the first adapter whose name contains this text (see `rezero info`).
    #[arg(long, global = true)]
    adapter: Option<String>,
    /// Build shaders with wgpu's runtime bounds checks (slower; for debugging a kernel).
    #[arg(long, global = true)]
    checked_shaders: bool,
    /// Where the kernel choices measured on this GPU are kept across runs
    /// (default: the user's cache directory, e.g. ~/.cache/rezero).
    #[arg(long, global = true, value_name = "DIR")]
    tuning_dir: Option<std::path::PathBuf>,
    /// Keep no tuning cache: measure kernel choices afresh in every run.
    #[arg(long, global = true, conflicts_with = "tuning_dir")]
    no_tuning_cache: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the adapter, backend, driver, features and the limits that matter.
    Info,
    /// Time kernels (median of synchronised runs) beside a reference from the same run.
    Bench(bench_cmd::BenchArgs),
    /// Measure the candidate kernels of each shape now, keep the winners and print them.
    Tune(tune_cmd::TuneArgs),
    /// Train a model; alone, the main job: a small ReZero Transformer on the built-in corpus.
    Train {
        #[command(subcommand)]
        command: Option<train_cmd::TrainCommand>,
    },
    /// Generate text from a language-model checkpoint.
    Sample(lm_cmd::SampleArgs),
    /// Bits per byte of a language-model checkpoint on any text file (non-overlapping windows).
    Eval(eval_cmd::EvalArgs),
    /// Singular values of a network's input-output Jacobian (dynamical isometry).
    Isometry(isometry_cmd::IsometryArgs),
    /// Draw the curves of several runs in one SVG picture.
    Plot(plot_cmd::PlotArgs),
}

fn open_gpu(cli: &Cli) -> Result<Gpu> {
    let backend = cli
        .backend
        .as_deref()
        .map(str::parse::<BackendChoice>)
        .transpose()?;
    pollster::block_on(Gpu::new(&GpuOptions {
        backend,
        adapter: cli.adapter.clone(),
        checked_shaders: cli.checked_shaders,
        tuning_cache: if cli.no_tuning_cache {
            None
        } else {
            cli.tuning_dir
                .clone()
                .or_else(rezero::gpu::tuning::default_dir)
        },
    }))
}

fn run(cli: &Cli) -> Result<()> {
    if let Command::Plot(args) = &cli.command {
        return plot_cmd::plot(args); // no GPU needed
    }
    let gpu = open_gpu(cli)?;
    match &cli.command {
        Command::Info => {
            info_cmd::info(&gpu);
            Ok(())
        }
        Command::Bench(args) => bench_cmd::bench(&gpu, args),
        Command::Tune(args) => tune_cmd::tune(&gpu, args),
        Command::Train { command } => train_cmd::train(&gpu, command.as_ref()),
        Command::Sample(args) => lm_cmd::sample_command(&gpu, args),
        Command::Eval(args) => eval_cmd::eval(&gpu, args),
        Command::Isometry(args) => isometry_cmd::isometry(&gpu, args),
        Command::Plot(_) => unreachable!("handled above"),
    }
}

/// Parses the command line, with `train lm --preset`'s values in the flags left at their
/// defaults.
fn parse() -> Cli {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Command::Train {
        command: Some(train_cmd::TrainCommand::Lm(args)),
    } = &mut cli.command
    {
        let lm = matches
            .subcommand_matches("train")
            .and_then(|m| m.subcommand_matches("lm"));
        if let (Some(preset), Some(lm)) = (args.preset, lm) {
            let applied = preset.apply(args, lm);
            eprintln!("--preset {}: {}", preset.name(), applied.join(" "));
        }
    }
    cli
}

fn main() -> ExitCode {
    let cli = parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
