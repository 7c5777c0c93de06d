//! The page's demo run natively, on this machine's adapter: the same code the browser
//! runs, so that a demo that does not train, or a limit check that lets a huge model
//! through, fails here first.

use rezero::nn::BlockVariant;
use rezero::{Error, Gpu, GpuOptions};
use rezero_web::demo::{Demo, DemoConfig};
use rezero_web::report::{adapter_json, quote};

/// This machine's device, or `None` (the test says it skipped; with `CI` set it fails).
fn gpu() -> Option<Gpu> {
    match pollster::block_on(Gpu::new(&GpuOptions::default())) {
        Ok(gpu) => Some(gpu),
        Err(e) if std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false")) => {
            panic!("CI is set and there is no adapter: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED demo: no adapter ({e})");
            None
        }
    }
}

#[test]
fn the_demo_trains_and_every_variant_runs() {
    let Some(gpu) = gpu() else { return };
    for variant in [
        BlockVariant::Rezero,
        BlockVariant::PreNorm,
        BlockVariant::PostNorm,
    ] {
        let mut demo = Demo::new(&gpu, DemoConfig::new(variant, 2e-3)).unwrap();
        let started = std::time::Instant::now();
        let losses: Vec<f32> = (0..30)
            .map(|_| pollster::block_on(demo.step()).unwrap())
            .collect();
        let seconds = started.elapsed().as_secs_f64();
        let mean = |xs: &[f32]| xs.iter().sum::<f32>() / xs.len() as f32;
        let (first, last) = (mean(&losses[..5]), mean(&losses[25..]));
        println!(
            "{}: loss {first:.4} -> {last:.4} nats/byte, {:.0} tokens/s",
            variant.name(),
            30.0 * demo.tokens_per_step() as f64 / seconds
        );
        assert!(last.is_finite() && last < first, "{variant:?}: {losses:?}");
        let bpb = pollster::block_on(demo.validation_bpb()).unwrap();
        assert!(bpb.is_finite() && bpb > 0.0 && bpb < 8.5, "{bpb}");
        let alphas = pollster::block_on(demo.alphas()).unwrap();
        // ReZero's α start at 0 and move; the baselines have none.
        match variant {
            BlockVariant::Rezero => {
                assert_eq!(alphas.len(), 4);
                assert!(alphas.iter().any(|&a| a != 0.0), "{alphas:?}");
            }
            _ => assert!(alphas.is_empty()),
        }
        let text = pollster::block_on(demo.sample("In the", 20)).unwrap();
        assert!(!text.is_empty() && text.len() <= 20 * 3, "{text:?}");
    }
}

#[test]
fn a_batch_too_large_for_the_device_is_refused_before_allocating() {
    let Some(gpu) = gpu() else { return };
    let mut config = DemoConfig::new(BlockVariant::Rezero, 1e-3);
    config.batch = 1 << 22;
    match Demo::new(&gpu, config) {
        Err(Error::Limits {
            what,
            needed,
            limit,
        }) => {
            assert!(needed > limit, "{what}: {needed} <= {limit}");
            assert!(what.contains("--batch 4194304"), "{what}");
        }
        Err(other) => panic!("expected a limits error, got {other}"),
        Ok(_) => panic!("a batch of 4M windows was accepted"),
    }
}

#[test]
fn bad_learning_rates_are_refused() {
    let Some(gpu) = gpu() else { return };
    for lr in [0.0, -1.0, f32::NAN, f32::INFINITY, 2.0] {
        let result = Demo::new(&gpu, DemoConfig::new(BlockVariant::Rezero, lr));
        assert!(
            matches!(result, Err(Error::Invalid { .. })),
            "lr {lr} accepted"
        );
    }
}

#[test]
fn the_adapter_report_is_json_with_the_kernel_choices() {
    let Some(gpu) = gpu() else { return };
    let json = adapter_json(&gpu);
    for key in [
        "\"name\"",
        "\"limits\"",
        "\"features\"",
        "\"kernels\"",
        "\"attention forward\"",
    ] {
        assert!(json.contains(key), "{key} missing from {json}");
    }
    assert_eq!(
        json.matches('{').count(),
        json.matches('}').count(),
        "{json}"
    );
    assert_eq!(quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\u000ad\"");
}
