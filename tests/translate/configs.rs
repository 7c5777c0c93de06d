//! The pipeline configurations the launchers request, gathered by dry runs (`KernelList`):
//! every launch of `common::launches` at every row workgroup size, the matmul, convolution
//! and attention variants pinned one by one over shapes that take each of their paths, and
//! the launchers the table leaves out. Gathered on this adapter as it is and posing as a
//! GPU (discrete, so the GPU candidates and defaults) with and without subgroups.

use rezero::Gpu;
use rezero::gpu::{KernelConfig, KernelList, Recorder, SUBGROUP_PROBE};
use rezero::kernels::attention::{
    AttentionKernel, AttentionShape, MAX_HEAD_DIM, attention_backward_with, attention_forward_with,
};
use rezero::kernels::attention_tiled::Tiles;
use rezero::kernels::autotune::{GPU_BLOCKS, SOFTWARE_BLOCKS};
use rezero::kernels::batchnorm::{
    BatchNormConfig, BatchNormShape, batchnorm_backward, batchnorm_eval_forward,
    batchnorm_train_forward,
};
use rezero::kernels::bias::{Activation, BiasShape, bias_activation_backward, bias_backward};
use rezero::kernels::conv2d::{self as conv, Conv2d, ConvVariant};
use rezero::kernels::matmul::{Matmul, MatmulVariant, matmul, matmul_activation};
use rezero::kernels::rezero::rezero_forward;
use rezero::kernels::{Dtype, Grad, NormSaved, cast, elementwise as ew, optim, softmax};

use super::common::launches::{Buffers, launches};

/// Every configuration requested on `gpu` and on the two GPU poses of its adapter.
pub fn every_configuration(gpu: &Gpu) -> Vec<KernelConfig> {
    let mut list = KernelList::default();
    gather(gpu, &mut list);
    for subgroups in [true, false] {
        let posing = pose_as_gpu(gpu, subgroups);
        gather(&posing, &mut list);
    }
    list.kernels.extend(cooperative());
    list.kernels
}

/// A second device on `gpu`'s adapter that calls itself a discrete GPU, with or without
/// the subgroup feature: the launchers then request what they request on GPUs.
fn pose_as_gpu(gpu: &Gpu, subgroups: bool) -> Gpu {
    let backends = wgpu::Backends::from(gpu.info().backend);
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    let adapter = adapters
        .into_iter()
        .find(|a| a.get_info().name == gpu.info().name)
        .expect("the test device's adapter");
    let mut features = adapter.features() & wgpu::Features::SHADER_F16;
    if subgroups {
        features |= adapter.features() & wgpu::Features::SUBGROUP;
    }
    let desc = wgpu::DeviceDescriptor {
        required_features: features,
        required_limits: adapter.limits(),
        ..Default::default()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&desc)).unwrap();
    let mut info = adapter.get_info();
    info.device_type = wgpu::DeviceType::DiscreteGpu;
    let gpu = Gpu::from_device(device, queue, info);
    pollster::block_on(gpu.probe_subgroups()).unwrap();
    gpu
}

/// Every launch on `gpu` into `list`.
fn gather(gpu: &Gpu, list: &mut KernelList) {
    let buffers = Buffers::new(gpu, None);
    let default_rows = gpu.row_workgroup_size();
    let limit = gpu.limits().max_compute_invocations_per_workgroup.min(256);
    for size in (0..=8).map(|p| 1u32 << p).filter(|&s| s <= limit) {
        gpu.set_row_workgroup_size(size).unwrap();
        for dtype in dtypes(gpu) {
            for (name, launch) in launches() {
                launch(gpu, list, &buffers, dtype).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            typed_others(gpu, list, &buffers, dtype);
        }
        others(gpu, list, &buffers);
    }
    gpu.set_row_workgroup_size(default_rows).unwrap();
    list.kernels.push(KernelConfig {
        shader: SUBGROUP_PROBE,
        entry: "probe_subgroups",
        constants: vec![],
    });
    matmuls(gpu, list, &buffers);
    casts(gpu, list, &buffers);
    convolutions(gpu, list, &buffers);
    attentions(gpu, list, &buffers);
}

/// The activations' types `gpu` runs: f16 too where it has `SHADER_F16` (the test says
/// visibly which modules an adapter without it leaves untranslated).
fn dtypes(gpu: &Gpu) -> Vec<Dtype> {
    match gpu.features().contains(wgpu::Features::SHADER_F16) {
        true => vec![Dtype::F32, Dtype::F16],
        false => vec![Dtype::F32],
    }
}

/// Each variant a matmul may run: every candidate the tuning of any adapter tries.
fn matmul_variants() -> Vec<MatmulVariant> {
    let blocks = GPU_BLOCKS.iter().chain(&SOFTWARE_BLOCKS).copied();
    MatmulVariant::SIMPLE
        .into_iter()
        .chain(blocks.map(MatmulVariant::Blocked))
        .chain([MatmulVariant::Blocked(ConvVariant::SIMPLE_BLOCK)])
        .collect()
}

/// Every matmul variant over shapes with and without vec4 rows, each transpose, with no
/// epilogue and with each activation. A variant the device or shape cannot run is skipped
/// (its launcher's refusal is tested elsewhere).
fn matmuls(gpu: &Gpu, list: &mut KernelList, b: &Buffers) {
    let (c, aux, a, w, bias) = (&b.out[0], &b.out[1], &b.input[0], &b.input[1], &b.input[2]);
    let dtypes = [
        (Dtype::F32, Dtype::F32),
        (Dtype::F16, Dtype::F32),
        (Dtype::F16, Dtype::F16),
    ];
    for variant in matmul_variants() {
        for ((m, n, k), (operands, output)) in [(37, 29, 23), (36, 28, 24)]
            .into_iter()
            .flat_map(|shape| dtypes.map(|d| (shape, d)))
        {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let desc = Matmul::new(m, n, k)
                    .trans_a(ta)
                    .trans_b(tb)
                    .dtypes(operands, output)
                    .variant(variant);
                let _ = matmul(gpu, list, c, a, w, None, &desc);
                for activation in [Activation::Relu, Activation::Gelu] {
                    let _ =
                        matmul_activation(gpu, list, c, aux, a, w, Some(bias), activation, &desc);
                }
            }
        }
    }
}

/// The f32 ↔ f16 casts.
fn casts(gpu: &Gpu, list: &mut KernelList, b: &Buffers) {
    let _ = cast::to_f16(gpu, list, &b.out[0], &b.input[0], 16, 1.0);
    let _ = cast::to_f32(gpu, list, &b.out[0], &b.input[0], 16, 1.0);
}

/// The tensor-core matmul at both sizes, both outputs and every activation, with the
/// workgroup its launcher asks for on subgroups of 8 and of 32: no adapter here lists
/// 16x16 matrices (Mesa 26 lavapipe lists 8x8, Mesa 25 none), so these configurations are
/// written as the launcher would request them rather than gathered from a dry run.
pub fn cooperative() -> Vec<KernelConfig> {
    let mut configs = Vec::new();
    for shader in rezero::kernels::shaders() {
        if !shader.name().starts_with("matmul_coop") {
            continue;
        }
        for subgroup in [8.0, 32.0] {
            for activation in [0.0, 1.0, 2.0] {
                configs.push(KernelConfig {
                    shader,
                    entry: "matmul_coop",
                    constants: vec![("WG", 4.0 * subgroup), ("ACTIVATION", activation)],
                });
            }
        }
    }
    configs
}

/// Every convolution variant, each pass, over shapes with and without vec4 rows.
fn convolutions(gpu: &Gpu, list: &mut KernelList, b: &Buffers) {
    let blocks = conv::GPU_BLOCKS
        .iter()
        .chain(&GPU_BLOCKS)
        .chain(&SOFTWARE_BLOCKS);
    let blocks = blocks.copied();
    let variants = [ConvVariant::Direct, ConvVariant::Reg, ConvVariant::Auto]
        .into_iter()
        .chain(
            [ConvVariant::SIMPLE_BLOCK]
                .into_iter()
                .chain(blocks)
                .map(ConvVariant::Blocked),
        );
    let shapes = [
        Conv2d::new(2, 3, 9, 9, 5, 3).pad(1),
        Conv2d::new(2, 4, 8, 8, 8, 3).pad(1),
        Conv2d::new(2, 4, 8, 8, 8, 1).stride(2),
    ];
    let shapes = shapes.map(|s| [s, s.dtype(Dtype::F16)]).concat();
    let (out, scratch, x, w, bias) = (&b.out[0], &b.out[1], &b.input[0], &b.input[1], &b.input[2]);
    for variant in variants {
        for shape in &shapes {
            let _ = conv::conv2d_forward(gpu, list, out, x, w, Some(bias), shape, variant, false);
            let _ = conv::conv2d_backward_input(gpu, list, out, x, w, shape, variant, false);
            let _ =
                conv::conv2d_backward_weight(gpu, list, out, scratch, x, w, shape, variant, false);
        }
    }
    for shape in &shapes {
        let _ = conv::conv2d_backward_bias(gpu, list, out, x, shape, false);
    }
}

/// Every attention kernel, forward and backward, at head dimensions from 1 to the largest,
/// in both layouts, on f32 and (at three head dimensions) f16.
fn attentions(gpu: &Gpu, list: &mut KernelList, b: &Buffers) {
    let tiles = Tiles::CANDIDATES;
    let kernels = [AttentionKernel::Rows]
        .into_iter()
        .chain(tiles.map(AttentionKernel::Tiled))
        .chain(tiles.map(AttentionKernel::PerHead));
    let (o, i) = (&b.out, &b.input);
    // Every head dimension at f32; at f16 (where the device has it) three of them.
    let mut sizes: Vec<(u32, Dtype)> = [1, 4, 7, 16, 32, 64, MAX_HEAD_DIM]
        .map(|d| (d, Dtype::F32))
        .into();
    if dtypes(gpu).contains(&Dtype::F16) {
        sizes.extend([7, 64, MAX_HEAD_DIM].map(|d| (d, Dtype::F16)));
    }
    for kernel in kernels {
        for &(d, dtype) in &sizes {
            let shapes = [
                AttentionShape::heads(2, 17, d).dtype(dtype),
                AttentionShape::packed(1, 2, 17, d).unwrap().dtype(dtype),
            ];
            for s in &shapes {
                let forward = [&o[0], &o[1], &i[0], &i[1], &i[2]];
                let _ = attention_forward_with(gpu, list, kernel, forward, s);
                let grads = [&o[0], &o[1], &o[2]].map(Grad::write);
                let inputs = [&i[0], &i[1], &i[2], &i[3], &i[4], &i[5]];
                let _ = attention_backward_with(gpu, list, kernel, grads, &o[3], inputs, s);
            }
        }
    }
}

/// The launchers the contract table leaves out.
fn others(gpu: &Gpu, list: &mut dyn Recorder, b: &Buffers) {
    let (o, i) = (&b.out, &b.input);
    let n = 300;
    let grad = optim::Gradient::keep(&i[0]);
    let sgd = optim::Sgd {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.0,
    };
    optim::sgd(gpu, list, &o[0], &o[1], grad, &i[1], n, &sgd, None).unwrap();
    let adagrad = optim::Adagrad {
        lr: 0.1,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    optim::adagrad(gpu, list, &o[0], &o[1], grad, &i[1], n, &adagrad, None).unwrap();
    let lamb = optim::Lamb {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-6,
        weight_decay: 0.0,
    };
    let scratch = optim::LambScratch {
        direction: &o[3],
        w_norm_sq: &o[4],
        u_norm_sq: &o[5],
        reduce: &o[6],
    };
    optim::lamb(
        gpu, list, &o[0], &o[1], &o[2], grad, &i[1], scratch, n, &lamb, None,
    )
    .unwrap();
}

/// The launches of the families on `dtype` activations that `launches()` leaves out: the
/// other elementwise ops, the causal softmax's backward, the rezero forward of a length that
/// is not a multiple of 4, the bias gradient's two-pass path and the batch norm's.
fn typed_others(gpu: &Gpu, list: &mut dyn Recorder, b: &Buffers, dtype: Dtype) {
    let (o, i) = (&b.out, &b.input);
    let n = 300;
    ew::scale(gpu, list, &o[0], &i[0], 0.5, n, false, dtype).unwrap();
    ew::relu(gpu, list, &o[0], &i[0], n, dtype).unwrap();
    ew::relu_backward(gpu, list, &o[0], &i[0], &i[1], n, false, dtype).unwrap();
    ew::gelu(gpu, list, &o[0], &i[0], n, dtype).unwrap();
    ew::gelu_backward(gpu, list, &o[0], &i[0], &i[1], n, false, dtype).unwrap();
    ew::copy(gpu, list, &o[0], &i[0], n, dtype).unwrap();
    ew::copy_vec4(gpu, list, &o[0], &i[0], n, dtype).unwrap();
    let (rows, t, scale) = (10, 5, 0.5);
    softmax::softmax_causal_backward(gpu, list, &o[0], &i[0], &i[1], rows, t, scale, false, dtype)
        .unwrap();
    let shape = rezero::kernels::rezero::RezeroShape {
        n: n + 1,
        alpha_index: 0,
        dtype,
    };
    rezero_forward(gpu, list, &o[0], &i[0], &i[1], &i[2], shape).unwrap();
    let rows = BiasShape {
        rows: 4000,
        cols: 3,
        dtype,
    };
    let (dbias, dx) = (Grad::write(&o[0]), Grad::write(&o[2]));
    bias_backward(gpu, list, dbias, Some(&o[1]), &i[0], rows).unwrap();
    let gelu = Activation::Gelu;
    bias_activation_backward(gpu, list, dx, dbias, Some(&o[1]), &i[0], &i[1], gelu, rows).unwrap();
    split_reductions(gpu, list, b, dtype);
}

/// The two-stage paths of the batch-norm reductions, over more rows than one workgroup
/// takes, and the batch norm's evaluation forward.
fn split_reductions(gpu: &Gpu, list: &mut dyn Recorder, b: &Buffers, dtype: Dtype) {
    let (o, i) = (&b.out, &b.input);
    let shape = BatchNormShape {
        dtype,
        ..BatchNormShape::new(2, 3, 100)
    };
    let split = BatchNormConfig {
        block: Some(16),
        ..Default::default()
    };
    let (x, gamma, beta) = (&i[0], &i[1], &i[2]);
    batchnorm_train_forward(
        gpu, list, &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], x, gamma, beta, &shape, &split,
    )
    .unwrap();
    let [dx, dgamma, dbeta] = [&o[0], &o[1], &o[2]].map(Grad::write);
    let saved = NormSaved {
        x: &i[1],
        mean: &i[2],
        rstd: &i[3],
        gain: &i[4],
    };
    batchnorm_backward(
        gpu, list, dx, dgamma, dbeta, &o[3], &i[0], saved, &shape, &split,
    )
    .unwrap();
    let config = BatchNormConfig::default();
    batchnorm_eval_forward(
        gpu, list, &o[0], x, &i[3], &i[4], gamma, beta, &shape, &config,
    )
    .unwrap();
}
