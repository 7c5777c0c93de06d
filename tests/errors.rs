//! Bad input gets the expected error variant, before anything is dispatched.

mod common;

use rezero::Error;
use rezero::kernels::Dtype;
use rezero::kernels::matmul::{Matmul, MatmulVariant, Tile, matmul};
use rezero::kernels::{elementwise, optim, rezero as rz, softmax};

#[test]
fn mismatched_shapes_are_shape_errors() {
    let gpu = require_gpu!();
    let (a, b, c) = (
        gpu.zeroed_f32("a", 4 * 8),
        gpu.zeroed_f32("b", 7 * 5),
        gpu.zeroed_f32("c", 4 * 5),
    );
    // B holds 7×5, the product needs 8×5.
    let err = pollster::block_on(
        gpu.run(|pass| matmul(gpu, pass, &c, &a, &b, None, &Matmul::new(4, 5, 8)).map(drop)),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Shape { op: "matmul", .. }), "{err}");
    assert!(err.to_string().contains("B [k, n]"), "{err}");

    let (x, y) = (gpu.zeroed_f32("x", 10), gpu.zeroed_f32("y", 9));
    let err =
        pollster::block_on(gpu.run(|pass| elementwise::relu(gpu, pass, &y, &x, 10, Dtype::F32)))
            .unwrap_err();
    assert!(matches!(err, Error::Shape { op: "relu", .. }), "{err}");

    let err = pollster::block_on(
        gpu.run(|pass| softmax::softmax_forward(gpu, pass, &x, &x, 3, 4, Dtype::F32)),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
}

#[test]
fn zero_size_inputs_are_empty_errors() {
    let gpu = require_gpu!();
    let buf = gpu.zeroed_f32("buf", 16);
    let err =
        pollster::block_on(gpu.run(|pass| {
            matmul(gpu, pass, &buf, &buf, &buf, None, &Matmul::new(4, 0, 4)).map(drop)
        }))
        .unwrap_err();
    assert!(matches!(err, Error::Empty { op: "matmul", .. }), "{err}");
    let err = pollster::block_on(gpu.run(|pass| {
        rz::rezero_forward(
            gpu,
            pass,
            &buf,
            &buf,
            &buf,
            &buf,
            rz::RezeroShape::new(0, 0),
        )
    }))
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Empty {
                op: "rezero_forward",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_tensor_over_the_binding_limit_is_a_limits_error() {
    let gpu = require_gpu!();
    let limit = gpu.limits().max_storage_buffer_binding_size;
    // Never allocated: the check runs on the size before any buffer is bound.
    let err = gpu.check_binding("huge tensor", limit + 4).unwrap_err();
    assert!(
        matches!(err, Error::Limits { needed, limit: l, .. } if needed == limit + 4 && l == limit),
        "{err}"
    );
    // And through a launcher: a buffer one element over the limit, when the device allows it.
    if gpu.limits().max_buffer_size > limit {
        let big = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("big"),
            size: limit + 4,
            usage: rezero::gpu::STORAGE_USAGE,
            mapped_at_creation: false,
        });
        let small = gpu.zeroed_f32("small", 4);
        let err = pollster::block_on(
            gpu.run(|pass| elementwise::copy(gpu, pass, &big, &small, 1, Dtype::F32)),
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::Limits { .. }),
            "expected a limits error, got {err}"
        );
    }
}

#[test]
fn a_tile_over_the_workgroup_storage_limit_is_a_limits_error() {
    let gpu = require_gpu!();
    let limit = gpu.limits().max_compute_workgroup_storage_size as u64;
    // bk chosen so that (bm + bn) · bk · 4 bytes exceeds the device's limit.
    let bk = (limit / (4 * 128)) as u32 + 1;
    let tile = Tile { bm: 64, bn: 64, bk };
    assert!(tile.storage_bytes() > limit);
    let buf = gpu.zeroed_f32("buf", 64 * 64);
    let desc = Matmul::new(64, 64, 64)
        .variant(MatmulVariant::Tiled)
        .tile(tile);
    let err = pollster::block_on(
        gpu.run(|pass| matmul(gpu, pass, &buf, &buf, &buf, None, &desc).map(drop)),
    )
    .unwrap_err();
    match err {
        Error::Limits {
            what,
            needed,
            limit: l,
        } => {
            assert!(what.contains("workgroup storage"), "{what}");
            assert_eq!((needed, l), (tile.storage_bytes(), limit));
        }
        other => panic!("expected a limits error, got {other}"),
    }
}

#[test]
fn reg8x4_on_an_unaligned_shape_is_unsupported() {
    let gpu = require_gpu!();
    let buf = gpu.zeroed_f32("buf", 64);
    let desc = Matmul::new(3, 5, 3).variant(MatmulVariant::Reg8x4);
    let err = pollster::block_on(
        gpu.run(|pass| matmul(gpu, pass, &buf, &buf, &buf, None, &desc).map(drop)),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Unsupported { op: "matmul", .. }),
        "{err}"
    );
}

#[test]
fn bad_hyperparameters_are_invalid() {
    let gpu = require_gpu!();
    let buf = gpu.zeroed_f32("buf", 4);
    let h = optim::Sgd {
        lr: -0.1,
        momentum: 0.9,
        weight_decay: 0.0,
    };
    let err = pollster::block_on(gpu.run(|pass| {
        optim::sgd(
            gpu,
            pass,
            &buf,
            &buf,
            optim::Gradient::keep(&buf),
            &buf,
            4,
            &h,
            None,
        )
    }))
    .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("learning rate"), "{err}");
}

#[test]
fn unknown_adapter_name_is_no_adapter_with_the_list() {
    let err = pollster::block_on(rezero::Gpu::new(&rezero::GpuOptions {
        adapter: Some("no-such-gpu-xyz".into()),
        ..Default::default()
    }))
    .unwrap_err();
    assert!(matches!(err, Error::NoAdapter { .. }), "{err}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_backend_the_system_lacks_is_no_adapter_with_an_install_hint() {
    let options = rezero::GpuOptions {
        backend: Some(rezero::gpu::BackendChoice::Metal),
        ..Default::default()
    };
    let err = pollster::block_on(rezero::Gpu::new(&options)).unwrap_err();
    assert!(matches!(err, Error::NoAdapter { .. }), "{err}");
    assert!(err.to_string().contains("mesa-vulkan-drivers"), "{err}");
}

/// A software Vulkan driver maps each buffer separately, and a process past Linux's
/// vm.max_map_count segfaults: the notebook's 10,000-layer MLP is refused with the fix
/// named when the limit is the usual 65,530, and runs when it is raised.
#[test]
fn a_model_with_more_buffers_than_the_process_may_map_is_refused() {
    use rezero::nn::{MlpConfig, MlpVariant};
    let mlp = |depth| MlpConfig {
        variant: MlpVariant::Rezero,
        depth,
        width: 150,
        inputs: 784,
        classes: 10,
        alpha_init: 0.0,
        seed: 0,
    };
    // Counted on lavapipe at depth 1,000 with Adagrad: 13,414 mappings at the peak.
    let counted = mlp(1000)
        .footprint(100, Dtype::F32)
        .unwrap()
        .buffers(1)
        .unwrap();
    assert!((13_414..20_000).contains(&counted), "{counted}");
    let deep = mlp(10_000).footprint(100, Dtype::F32).unwrap();
    let error = deep
        .check_mappings(1, Some(65_530))
        .unwrap_err()
        .to_string();
    assert!(error.contains("--depth 10000"), "{error}");
    assert!(error.contains("vm.max_map_count (65530)"), "{error}");
    assert!(
        error.contains("sysctl -w vm.max_map_count=262144"),
        "{error}"
    );
    deep.check_mappings(1, Some(262_144)).unwrap();
    deep.check_mappings(1, None).unwrap();
}

/// The fused attention keeps no [seq, seq] scores, so a long context is not refused for a
/// buffer that does not exist: 2,048 positions of 8 heads at batch 8 once "needed" 1 GiB
/// of scores against lavapipe's 128 MiB binding limit.
#[test]
fn a_long_context_is_not_refused_for_scores_the_fused_attention_never_holds() {
    use rezero::nn::{BlockVariant, TransformerConfig};
    let gpu = require_gpu!();
    let config = TransformerConfig {
        variant: BlockVariant::Rezero,
        layers: 1,
        d_model: 64,
        heads: 8,
        d_ff: 128,
        seq: 2048,
        gelu: true,
        alpha_per_sublayer: false,
        alpha_init: 0.0,
        seed: 0,
    };
    let footprint = config.footprint(8, Dtype::F32).unwrap();
    // The activations count the attention tuner's scratch of the first step: eight
    // [batch·seq, d_model] buffers (q, k, v, o, their gradients, dO), and lse and delta.
    // Per layer the pool buffers of lse [rows, 8], qkv [rows, 192] (a pool buffer of
    // [rows, 256]), seven [rows, 64] and two [rows, 128], and their gradients; outside
    // the blocks four [rows, 64] and the logits [rows, 256], with gradients.
    let rows = 8 * 2048;
    let layer = rows * (8 + 256 + 7 * 64 + 2 * 128) * 2;
    let outside = rows * (4 * 64 + 256) * 2;
    assert_eq!(
        footprint.activation_bytes,
        4 * (layer + outside + 8 * rows * 64 + 2 * 8 * 8 * 2048)
    );
    let (largest, what) = footprint.largest;
    assert!(largest <= 128 << 20, "{largest} bytes: {what}");
    assert!(!what.contains("scores"), "{what}");
    footprint.check(gpu, 2).unwrap();
}

/// A Transformer whose sizes multiply past 64 bits (an embedder's d_model of 2⁶²) gets an
/// error naming its flags from the footprint, not a wrapped count or a panic.
#[test]
fn a_transformer_footprint_that_overflows_is_an_error() {
    use rezero::nn::{BlockVariant, TransformerConfig};
    let config = TransformerConfig {
        variant: BlockVariant::Rezero,
        layers: 1,
        d_model: 1 << 62,
        heads: 1,
        d_ff: 4,
        seq: 4,
        gelu: true,
        alpha_per_sublayer: false,
        alpha_init: 0.0,
        seed: 0,
    };
    let err = config.footprint(2, Dtype::F32).unwrap_err();
    assert!(
        err.to_string().contains("--d-model 4611686018427387904"),
        "{err}"
    );
    assert!(err.to_string().contains("overflows"), "{err}");
}

#[test]
fn hostile_sizes_outside_the_kernels_are_errors_not_panics() {
    use rezero::data::text::{fixed_windows, random_windows};
    use rezero::nn::{Mlp, MlpConfig, MlpVariant};
    use rezero::optim::{Method, Optimizer, OptimizerConfig, Schedule};
    use rezero::tape::Param;
    use rezero::train::RunConfig;
    use rezero::train::core::{Columns, Trainer};
    let gpu = require_gpu!();
    // A parameter whose values do not fill its shape, an empty one, one whose size overflows.
    for (shape, values) in [
        (&[2usize, 3][..], &[0.0f32; 5][..]),
        (&[0], &[]),
        (&[usize::MAX, 2], &[0.0]),
    ] {
        let err = Param::new(gpu, "w", shape, values, true).unwrap_err();
        assert!(matches!(err, Error::Shape { .. }), "{shape:?}: {err}");
    }
    // Windows of 0 bytes, or as long as the whole text (no byte left for the target).
    assert!(matches!(
        random_windows(b"abc", 0, 2, 0),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        random_windows(b"abc", 3, 2, 0),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        fixed_windows(b"abc", 0, 2),
        Err(Error::Invalid { .. })
    ));
    assert_eq!(fixed_windows(b"abcd", 3, 2).unwrap().0.len(), 3);
    // A run that would read its loss every 0 steps.
    let config = MlpConfig {
        variant: MlpVariant::Rezero,
        depth: 1,
        width: 4,
        inputs: 4,
        classes: 2,
        alpha_init: 0.0,
        seed: 0,
    };
    let model = Mlp::new(gpu, config).unwrap();
    let params = model.params();
    let method = OptimizerConfig {
        method: Method::parse("sgd").unwrap(),
        lr: 0.1,
        weight_decay: 0.0,
        clip: None,
        schedule: Schedule::default(),
    };
    let mut optimizer = Optimizer::new(gpu, &params, method).unwrap();
    let run = RunConfig {
        log_every: 0,
        ..RunConfig::quiet("zero", 2)
    };
    let columns = Columns {
        epoch: false,
        rate_unit: "images",
        items_per_step: 2,
    };
    let err = Trainer::new(gpu, &mut optimizer, (params, None), &run, (columns, ""), 5)
        .err()
        .expect("log_every 0 is refused");
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
}
