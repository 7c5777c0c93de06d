//! Language models on the built-in corpus: a narrow 64-layer ReZero Transformer trains
//! without warm-up (its loss falls, nothing is NaN); checkpoints load back and sample.

mod common;

use rezero::data::text::{TextSplits, builtin_corpus};
use rezero::nn::{BlockVariant, Transformer, TransformerConfig};
use rezero::optim::{Method, Optimizer, OptimizerConfig, Schedule};
use rezero::train::RunConfig;
use rezero::train::checkpoint::{load_transformer, save_transformer};
use rezero::train::lm::{LmRun, sample, train_lm};

fn narrow(layers: usize) -> TransformerConfig {
    TransformerConfig {
        variant: BlockVariant::Rezero,
        layers,
        d_model: 16,
        heads: 2,
        d_ff: 32,
        seq: 16,
        gelu: true,
        alpha_per_sublayer: false,
        alpha_init: 0.0,
        seed: 5,
    }
}

#[test]
fn builtin_corpus_is_the_king_james_version() {
    let text = builtin_corpus();
    assert!(text.len() > 4_000_000 && text.is_ascii());
    assert!(text.starts_with(b"In the beginning God created the heaven and the earth."));
    let splits = TextSplits::new(text);
    assert!(splits.train.len() > 9 * splits.validation.len());
}

#[test]
fn a_64_layer_rezero_transformer_trains_without_warmup() {
    let gpu = require_gpu!();
    let model = Transformer::new(gpu, narrow(64)).unwrap();
    let config = OptimizerConfig {
        method: Method::parse("adam").unwrap(),
        lr: 3e-3,
        weight_decay: 0.0,
        clip: None,
        schedule: Schedule::default(),
    };
    let mut optimizer = Optimizer::new(gpu, &model.params(), config).unwrap();
    let text = TextSplits::new(builtin_corpus());
    let out = std::env::temp_dir().join(format!("rezero-lm64-{}", std::process::id()));
    let run = LmRun {
        run: RunConfig {
            seed: 1,
            out: Some(out.clone()),
            ..RunConfig::quiet("rezero-64x16", 4)
        },
        steps: 30,
        seq: 16,
        eval_every: 30,
        eval_windows: 8,
        target_bpb: None,
        dropout: 0.0,
    };
    let summary = pollster::block_on(train_lm(gpu, &model, &mut optimizer, &text, &run)).unwrap();
    assert_eq!(summary.run.steps, 30);
    assert!(!summary.run.diverged() && summary.val_bpb.is_some_and(f32::is_finite));
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let losses: Vec<f32> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    let (first, last) = (
        losses[..3].iter().sum::<f32>() / 3.0,
        losses[losses.len() - 5..].iter().sum::<f32>() / 5.0,
    );
    assert!(
        last < first - 0.5,
        "the loss should fall without warm-up: first steps {first}, last steps {last}"
    );
    assert!(
        csv.lines().next().unwrap().contains("alpha_63"),
        "every α has a column"
    );

    let loaded = load_transformer(gpu, &out.join("model.safetensors")).unwrap();
    assert_eq!(loaded.config.layers, 64);
    let a = pollster::block_on(sample(gpu, &model, b"And ", 12, 0.0, 0)).unwrap();
    let b = pollster::block_on(sample(gpu, &loaded, b"And ", 12, 0.0, 0)).unwrap();
    assert_eq!(a, b, "the loaded checkpoint samples the same greedy text");
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn checkpoint_round_trip_for_every_variant() {
    let gpu = require_gpu!();
    for variant in BlockVariant::ALL {
        let model = Transformer::new(
            gpu,
            TransformerConfig {
                variant,
                alpha_per_sublayer: true,
                ..narrow(2)
            },
        )
        .unwrap();
        let path = std::env::temp_dir().join(format!(
            "rezero-tf-{}-{}.safetensors",
            variant.name(),
            std::process::id()
        ));
        pollster::block_on(save_transformer(gpu, &model, &path)).unwrap();
        let loaded = load_transformer(gpu, &path).unwrap();
        assert_eq!(loaded.config.variant, variant);
        for (a, b) in model.params().iter().zip(loaded.params()) {
            assert_eq!(
                pollster::block_on(gpu.read_f32(&a.value, a.len())).unwrap(),
                pollster::block_on(gpu.read_f32(&b.value, b.len())).unwrap(),
                "{}",
                a.name
            );
        }
        std::fs::remove_file(path).unwrap();
    }
}

#[test]
fn a_resumed_run_ends_exactly_where_an_unbroken_one_does() {
    use rezero::train::checkpoint::{load, restore_run, transformer_from};
    let gpu = require_gpu!();
    let text = TextSplits::new(builtin_corpus());
    let adam = || OptimizerConfig {
        method: Method::parse("adam").unwrap(),
        lr: 3e-3,
        weight_decay: 0.0,
        clip: None,
        schedule: Schedule::default(),
    };
    let dir = |name: &str| {
        std::env::temp_dir().join(format!("rezero-resume-{name}-{}", std::process::id()))
    };
    let run = |out: &std::path::Path, steps: u64, start_step: u64| LmRun {
        run: RunConfig {
            seed: 9,
            out: Some(out.to_path_buf()),
            start_step,
            ..RunConfig::quiet("r", 2)
        },
        steps,
        seq: 8,
        eval_every: 3,
        eval_windows: 2,
        target_bpb: None,
        // With dropout on: its masks are drawn from the seed and the step, so the resumed
        // half draws what the unbroken run drew.
        dropout: 0.2,
    };

    let straight = Transformer::new(gpu, narrow(3)).unwrap();
    let mut optimizer = Optimizer::new(gpu, &straight.params(), adam()).unwrap();
    let (a, b) = (dir("straight"), dir("broken"));
    pollster::block_on(train_lm(
        gpu,
        &straight,
        &mut optimizer,
        &text,
        &run(&a, 6, 0),
    ))
    .unwrap();

    let first = Transformer::new(gpu, narrow(3)).unwrap();
    let mut optimizer = Optimizer::new(gpu, &first.params(), adam()).unwrap();
    pollster::block_on(train_lm(gpu, &first, &mut optimizer, &text, &run(&b, 3, 0))).unwrap();
    let path = b.join("model.safetensors");
    let checkpoint = load(&path).unwrap();
    let resumed = transformer_from(gpu, &path, &checkpoint).unwrap();
    let mut optimizer = Optimizer::new(gpu, &resumed.params(), adam()).unwrap();
    let step = restore_run(gpu, &path, &checkpoint, &resumed.params(), &mut optimizer).unwrap();
    assert_eq!(step, 3);
    pollster::block_on(train_lm(
        gpu,
        &resumed,
        &mut optimizer,
        &text,
        &run(&b, 6, step),
    ))
    .unwrap();

    for (x, y) in straight.params().iter().zip(resumed.params()) {
        assert_eq!(
            pollster::block_on(gpu.read_f32(&x.value, x.len())).unwrap(),
            pollster::block_on(gpu.read_f32(&y.value, y.len())).unwrap(),
            "{} differs after resuming",
            x.name
        );
    }
    let metrics = std::fs::read_to_string(b.join("metrics.csv")).unwrap();
    assert_eq!(
        metrics.lines().count(),
        7,
        "one header and steps 1..6 in one file:\n{metrics}"
    );
    std::fs::remove_dir_all(a).unwrap();
    std::fs::remove_dir_all(b).unwrap();
}

#[test]
fn sampling_from_weights_holding_nan_is_an_error_not_a_panic() {
    let gpu = require_gpu!();
    let model = Transformer::new(gpu, narrow(1)).unwrap();
    let out = &model.out.w;
    gpu.write(&out.value, &vec![f32::NAN; out.len()]);
    let err = pollster::block_on(sample(gpu, &model, b"ab", 3, 0.8, 1)).unwrap_err();
    assert!(err.to_string().contains("NaN or infinite"), "{err}");
}

#[test]
fn text_bits_per_byte_covers_every_window_whatever_the_batch() {
    use rezero::data::text::fixed_windows;
    use rezero::train::lm::{text_bpb, validation_bpb};
    let gpu = require_gpu!();
    let model = Transformer::new(gpu, narrow(1)).unwrap();
    let text = &builtin_corpus()[..1001];
    let mut tape = rezero::tape::Tape::new(gpu);
    let all = fixed_windows(text, 16, usize::MAX).unwrap();
    let want = pollster::block_on(validation_bpb(&mut tape, &model, &all, 62, 16)).unwrap();
    for batch in [1, 7, 100] {
        let (got, bytes) =
            pollster::block_on(text_bpb(&mut tape, &model, text, 16, batch)).unwrap();
        assert_eq!(
            bytes,
            62 * 16,
            "1000 predicted bytes make 62 whole windows of 16"
        );
        assert!(
            (got - want).abs() < 1e-5,
            "batch {batch}: {got} against {want}"
        );
    }
    assert!(pollster::block_on(text_bpb(&mut tape, &model, &text[..16], 16, 4)).is_err());
    assert!(
        pollster::block_on(text_bpb(&mut tape, &model, text, 17, 4)).is_err(),
        "over the model's seq"
    );
}
