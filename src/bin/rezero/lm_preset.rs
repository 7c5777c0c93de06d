//! `rezero train lm --preset`: the paper's Transformer comparison in one flag. A preset
//! gives its values to the flags left at their defaults; a flag given on the command line
//! always wins, so `--preset paper --steps 500` is the paper's setup for 500 steps.

use clap::ArgMatches;
use clap::ValueEnum;
use clap::parser::ValueSource;
use rezero::optim::OptimizerName;

use crate::lm_cmd::LmArgs;
use crate::lm_compare::VariantSpec;

/// The paper's 12-layer enwik8 comparison, full size or sized for a CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// The paper's setup: 12 layers, d_model 512, 8 heads, d_ff 2048, 512-byte windows,
    /// LAMB at 0.016, dropout 0.1, target 1.2 bits/byte; Post-Norm with warm-up against
    /// ReZero (for a GPU; give --data enwik8 for the paper's text).
    Paper,
    /// The same recipe small enough for software Vulkan on a CPU: 12 layers of d_model
    /// 64; Post-Norm with and without warm-up, Pre-Norm, ReZero α=0 and ReZero α=1.
    PaperSmall,
}

/// The flags a preset sets.
struct Values {
    layers: u64,
    d_model: u64,
    heads: u64,
    d_ff: u64,
    seq: u64,
    batch: u64,
    steps: u64,
    optimizer: OptimizerName,
    lr: f32,
    dropout: f32,
    warmup: u64,
    eval_every: u64,
    eval_windows: u64,
    target_bpb: f32,
    compare: &'static str,
}

impl Preset {
    fn values(self) -> Values {
        let paper = Values {
            layers: 12,
            d_model: 512,
            heads: 8,
            d_ff: 2048,
            seq: 512,
            batch: 32,
            steps: 20_000,
            optimizer: OptimizerName::Lamb,
            lr: 0.016,
            dropout: 0.1,
            warmup: 1000,
            eval_every: 500,
            eval_windows: 128,
            target_bpb: 1.2,
            compare: "postnorm:warmup,rezero",
        };
        match self {
            Preset::Paper => paper,
            Preset::PaperSmall => Values {
                d_model: 64,
                heads: 2,
                d_ff: 256,
                seq: 64,
                batch: 16,
                steps: 400,
                warmup: 100,
                eval_every: 25,
                eval_windows: 64,
                target_bpb: 3.5,
                compare: "postnorm:warmup,postnorm,prenorm,rezero,rezero:alpha=1",
                ..paper
            },
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Preset::Paper => "paper",
            Preset::PaperSmall => "paper-small",
        }
    }

    /// Sets the flags of `args` that `matches` (the `train lm` matches) left at their
    /// defaults to the preset's values; returns them as command-line text.
    pub fn apply(self, args: &mut LmArgs, matches: &ArgMatches) -> Vec<String> {
        let v = self.values();
        let unset = |id: &str| {
            matches!(
                matches.value_source(id),
                None | Some(ValueSource::DefaultValue)
            )
        };
        let mut applied = Vec::new();
        macro_rules! preset {
            ($id:literal, $field:expr, $value:expr, $shown:expr) => {
                if unset($id) {
                    $field = $value;
                    applied.push(format!("--{} {}", $id.replace('_', "-"), $shown));
                }
            };
            ($id:literal, $field:expr, $value:expr) => {
                preset!($id, $field, $value, $value)
            };
        }
        preset!("layers", args.layers, v.layers);
        preset!("d_model", args.d_model, v.d_model);
        preset!("heads", args.heads, v.heads);
        preset!("d_ff", args.d_ff, v.d_ff);
        preset!("seq", args.seq, v.seq);
        preset!("batch", args.run.batch, v.batch);
        preset!("steps", args.run.steps, Some(v.steps), v.steps);
        let optimizer = v
            .optimizer
            .to_possible_value()
            .expect("named")
            .get_name()
            .to_string();
        preset!("optimizer", args.optim.optimizer, v.optimizer, optimizer);
        preset!("lr", args.optim.lr, v.lr);
        preset!("dropout", args.dropout, v.dropout);
        preset!("warmup", args.optim.warmup, v.warmup);
        preset!("eval_every", args.eval_every, v.eval_every);
        preset!("eval_windows", args.eval_windows, v.eval_windows);
        preset!(
            "target_bpb",
            args.target_bpb,
            Some(v.target_bpb),
            v.target_bpb
        );
        if unset("compare") && unset("variant") {
            let specs = v.compare.split(',').map(VariantSpec::parse);
            args.compare = specs
                .collect::<Result<_, _>>()
                .expect("the presets' entries parse");
            applied.push(format!("--compare {}", v.compare));
        }
        applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: LmArgs,
    }

    /// `train lm` parsed from `argv`, with the preset applied.
    fn parsed(argv: &[&str]) -> (LmArgs, Vec<String>) {
        let matches = Wrapper::command().get_matches_from(argv);
        let mut args = Wrapper::from_arg_matches(&matches).unwrap().args;
        let applied = args.preset.unwrap().apply(&mut args, &matches);
        (args, applied)
    }

    #[test]
    fn a_preset_fills_the_defaults_and_the_given_flags_win() {
        let (args, applied) =
            parsed(&["lm", "--preset", "paper", "--layers", "3", "--lr", "0.002"]);
        assert_eq!((args.layers, args.optim.lr), (3, 0.002));
        assert_eq!((args.d_model, args.seq, args.run.batch), (512, 512, 32));
        assert_eq!(
            (args.optim.optimizer, args.dropout),
            (OptimizerName::Lamb, 0.1)
        );
        assert_eq!((args.run.steps, args.target_bpb), (Some(20_000), Some(1.2)));
        let names: Vec<_> = args.compare.iter().map(VariantSpec::name).collect();
        assert_eq!(names, ["postnorm-warmup", "rezero"]);
        assert!(
            applied.contains(&"--optimizer lamb".to_string()),
            "{applied:?}"
        );
        assert!(
            !applied
                .iter()
                .any(|a| a.starts_with("--layers") || a.starts_with("--lr "))
        );
        // A flag given at its default value still wins over the preset.
        let (args, _) = parsed(&["lm", "--preset", "paper-small", "--dropout", "0"]);
        assert_eq!(
            (args.dropout, args.d_model, args.compare.len()),
            (0.0, 64, 5)
        );
        // A single variant or a comparison of one's own replaces the preset's.
        let (args, _) = parsed(&["lm", "--preset", "paper", "--variant", "prenorm"]);
        assert!(args.compare.is_empty());
        let (args, _) = parsed(&["lm", "--preset", "paper", "--compare", "prenorm,rezero"]);
        assert_eq!(args.compare.len(), 2);
        assert!(args.compare.iter().all(|s| !s.warmup));
    }
}
