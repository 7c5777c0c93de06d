//! Criterion benches of every kernel family, each group holding its same-run reference:
//! CPU sgemm (matrixmultiply) for matmul, the plain copy kernel for memory-bound kernels,
//! the matmul of the equivalent GEMM shape for conv2d.
//! Throughput is in elements = FLOPs for matmul (so "Gelem/s" reads GFLOP/s) and bytes
//! for the rest. The cases are the ones `rezero bench` runs (`rezero::bench`).

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rezero::bench::{self, Case, Work};
use rezero::kernels::matmul::MatmulVariant;
use rezero::{Gpu, GpuOptions};

fn throughput(work: Work) -> Throughput {
    match work {
        Work::Flops(f) => Throughput::Elements(f as u64),
        Work::Bytes(b) => Throughput::Bytes(b as u64),
    }
}

fn gpu() -> Gpu {
    pollster::block_on(Gpu::new(&GpuOptions::default()))
        .unwrap_or_else(|e| panic!("benches need a GPU adapter: {e}"))
}

fn bench_cases(c: &mut Criterion, gpu: &Gpu, group: &str, cases: Vec<Case>) {
    let mut g = c.benchmark_group(group);
    for case in cases {
        g.throughput(throughput(case.work));
        g.bench_function(
            format!("{} {} {}", case.kernel, case.shape, case.variant),
            |b| b.iter(|| case.run(gpu).unwrap()),
        );
    }
    g.finish();
}

fn matmul(c: &mut Criterion) {
    let gpu = gpu();
    for size in [256u32, 512] {
        let mut g = c.benchmark_group(format!("matmul {size}^3"));
        g.throughput(Throughput::Elements(2 * (size as u64).pow(3)));
        let n = size as usize;
        g.bench_function("cpu-sgemm (reference)", |b| {
            b.iter(|| bench::cpu_sgemm_seconds(n, n, n, 1).unwrap())
        });
        for variant in [
            MatmulVariant::Tiled,
            MatmulVariant::Reg8x4,
            MatmulVariant::Blocked(rezero::kernels::matmul::Block::LARGE),
        ] {
            let case = bench::matmul_case(&gpu, size, size, size, variant).unwrap();
            g.bench_function(case.variant.clone(), |b| b.iter(|| case.run(&gpu).unwrap()));
        }
        g.finish();
    }
}

fn memory_bound(c: &mut Criterion) {
    let gpu = gpu();
    let n = 1 << 20;
    let mut cases = vec![bench::copy_case(&gpu, n), bench::copy_vec4_case(&gpu, n)];
    cases.extend(bench::rezero_cases(&gpu, n));
    cases.extend(bench::elementwise_cases(&gpu, n));
    cases.extend(bench::reduce_cases(&gpu, n));
    cases.extend(bench::optim_cases(&gpu, n));
    bench_cases(c, &gpu, "memory-bound 1M", cases);
    let (rows, cols) = (4096, 256);
    let mut cases = vec![bench::copy_case(&gpu, rows * cols)];
    cases.extend(bench::softmax_cases(&gpu, rows, cols));
    cases.extend(bench::layernorm_cases(&gpu, rows, cols));
    cases.extend(bench::cross_entropy_cases(&gpu, rows, cols));
    cases.extend(bench::embedding_cases(&gpu, rows, cols, 256).unwrap());
    cases.extend(bench::bias_cases(&gpu, rows, cols).unwrap());
    bench_cases(c, &gpu, "rows 4096x256", cases);
}

fn attention(c: &mut Criterion) {
    let gpu = gpu();
    let shape = rezero::kernels::attention::AttentionShape::heads(8, 128, 64);
    let (materialised, fused) = bench::attention_cases(&gpu, shape, false).unwrap();
    let cases = std::iter::once(materialised).chain(fused).collect();
    bench_cases(c, &gpu, "attention 8x128x64", cases);
}

/// conv2d at a small ResNet layer (batch 8, 16 → 16 channels, 3×3, 16×16), every pass and
/// variant beside the matmul of the forward's GEMM shape; batchnorm and pooling beside the
/// plain copy.
fn conv(c: &mut Criterion) {
    let gpu = gpu();
    let shape = rezero::kernels::conv2d::Conv2d::new(8, 16, 16, 16, 16, 3).pad(1);
    let convs = bench::conv_cases(&gpu, shape).unwrap();
    let reference = bench::gemm_case(&gpu, shape.forward_gemm()).unwrap();
    let mut cases = vec![reference];
    cases.extend(convs.into_iter().map(|c| c.case));
    bench_cases(c, &gpu, "conv2d 8x16x16x16x3x1", cases);
    let bn = rezero::kernels::batchnorm::BatchNormShape::new(8, 16, 256);
    let mut cases = vec![bench::copy_case(&gpu, 8 * 16 * 256)];
    cases.extend(bench::batchnorm_cases(&gpu, bn));
    bench_cases(c, &gpu, "batchnorm 8x16x256", cases);
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = matmul, memory_bound, attention, conv }
criterion_main!(benches);
