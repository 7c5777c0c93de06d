//! `rezero eval`: bits per byte of a language-model checkpoint on any text file, over
//! non-overlapping windows, so that runs can be compared on the same held-out text.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use rezero::Result;
use rezero::data::text::read_text;
use rezero::gpu::Gpu;
use rezero::tape::Tape;
use rezero::train::checkpoint::load_transformer;
use rezero::train::lm::text_bpb;

#[derive(Args)]
pub struct EvalArgs {
    /// A model.safetensors written by `rezero train lm`, or its run folder.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The text to evaluate on (any file of bytes).
    #[arg(long)]
    data: PathBuf,
    /// Window length in bytes (default: the model's context).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    seq: Option<u64>,
    /// Windows evaluated at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
}

pub fn eval(gpu: &Gpu, args: &EvalArgs) -> Result<()> {
    let path = if args.checkpoint.is_dir() {
        args.checkpoint.join("model.safetensors")
    } else {
        args.checkpoint.clone()
    };
    let model = load_transformer(gpu, &path)?;
    let text = read_text(&args.data)?;
    let seq = args.seq.map_or(model.config.seq, |s| s as usize);
    let mut tape = Tape::new(gpu);
    let (bpb, bytes) =
        pollster::block_on(text_bpb(&mut tape, &model, &text, seq, args.batch as usize))?;
    out!(
        "{}: {bpb:.4} bits/byte over {bytes} bytes ({} windows of {seq}) of {}",
        path.display(),
        bytes / seq as u64,
        args.data.display()
    );
    Ok(())
}
