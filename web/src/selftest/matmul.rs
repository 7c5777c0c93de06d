//! Self-test cases of matmul: every fixed variant `Auto` can pick on this device (naive,
//! tiled, reg8x4, the blocked tiles), and `Auto` itself, over the four transposes, batches
//! with a broadcast operand, and the epilogues (bias, accumulate, activation).

use rezero::Gpu;
use rezero::cpu;
use rezero::kernels::autotune;
use rezero::kernels::bias::Activation;
use rezero::kernels::matmul::{self, Block, Matmul, MatmulVariant};

use super::harness::{Outcome, Runner, Tol, Verdict, seeded};

/// Layouts on awkward shapes (m, n, k, trans_a, trans_b), for the variants that read floats.
const AWKWARD: [(u32, u32, u32, bool, bool); 5] = [
    (1, 1, 1, false, false),
    (33, 17, 65, false, false),
    (7, 13, 33, true, false),
    (17, 5, 9, false, true),
    (13, 70, 6, true, true),
];

/// Layouts whose contiguous dimensions are multiples of 4 (what reg8x4 reads as vec4), the
/// others awkward; the first also takes the blocked kernel's vec4 path.
const ALIGNED: [(u32, u32, u32, bool, bool); 5] = [
    (20, 16, 24, false, false),
    (17, 36, 20, false, false),
    (20, 12, 33, true, false),
    (33, 17, 12, false, true),
    (8, 5, 36, true, true),
];

pub async fn run(run: &mut Runner<'_>) {
    let gpu = run.gpu;
    for (i, variant) in variants(gpu).into_iter().enumerate() {
        for (desc, bias, activation) in cases(variant, i) {
            let desc = desc.variant(variant);
            let case = label(&desc, bias, activation);
            run.case("matmul", case, product(gpu, desc, bias, activation))
                .await;
        }
    }
}

/// The products checked with `variant` (the `i`-th): (shape, bias, activation). The
/// transposes, the activation and the vec4 path are override constants of the reg8x4 and
/// blocked kernels, so every combination is a pipeline to compile (seconds on a CPU
/// adapter): the blocked tiles get one product of each code path (floats and vec4,
/// transposes, one activation), `Auto` and the kernels that read the transposes from the
/// uniform every layout and both activations.
fn cases(variant: MatmulVariant, i: usize) -> Vec<(Matmul, bool, Option<Activation>)> {
    let layouts: Vec<_> = match variant {
        MatmulVariant::Reg8x4 => ALIGNED.to_vec(),
        MatmulVariant::Blocked(_) => vec![AWKWARD[1], AWKWARD[4], ALIGNED[0]],
        _ => AWKWARD.iter().chain(&ALIGNED).copied().collect(),
    };
    let activations = match variant {
        MatmulVariant::Blocked(_) | MatmulVariant::Reg8x4 => {
            vec![[Activation::Relu, Activation::Gelu][i % 2]]
        }
        _ => vec![Activation::Relu, Activation::Gelu],
    };
    let plain = layouts.into_iter().map(|(m, n, k, ta, tb)| {
        let desc = Matmul::new(m, n, k).trans_a(ta).trans_b(tb);
        (desc, false, None)
    });
    let epilogues = epilogue_shapes().into_iter().map(|desc| (desc, true, None));
    let activated = activations
        .into_iter()
        .map(|act| (Matmul::new(13, 20, 12), true, Some(act)));
    plain.chain(epilogues).chain(activated).collect()
}

/// The fixed variants `Auto` may run here: the simple three, the blocked tiles it tries on
/// this kind of adapter and those of its defaults, each where it fits the device; and
/// `Auto` itself (the tuning table's choice or the default).
fn variants(gpu: &Gpu) -> Vec<MatmulVariant> {
    let mut blocks = autotune::blocks(gpu);
    let defaults = [
        Block::LARGE,
        Block::new(64, 64, 16, 8, 8),
        Block::new(64, 64, 16, 4, 4),
    ];
    for block in defaults {
        if block.check(gpu).is_ok() && !blocks.contains(&block) {
            blocks.push(block);
        }
    }
    let mut list = MatmulVariant::SIMPLE.to_vec();
    list.extend(blocks.into_iter().map(MatmulVariant::Blocked));
    list.push(MatmulVariant::Auto);
    list
}

/// Batched products with a bias, adding to C: contiguous batches, and B broadcast (stride 0).
fn epilogue_shapes() -> [Matmul; 2] {
    [
        Matmul::new(17, 12, 24).batch(3).accumulate(true),
        Matmul::new(12, 8, 16)
            .batch(2)
            .strides(12 * 16, 0, 12 * 8)
            .accumulate(true),
    ]
}

fn label(desc: &Matmul, bias: bool, activation: Option<Activation>) -> String {
    format!(
        "{} {}x{}x{} batch={} trans=({},{}) acc={} bias={bias} act={activation:?}",
        desc.variant.name(),
        desc.m,
        desc.n,
        desc.k,
        desc.batch,
        desc.trans_a,
        desc.trans_b,
        desc.accumulate,
    )
}

/// C = op(A)·op(B) (+ bias) (+ C), or with an activation out = act(pre) and pre, against
/// the reference.
async fn product(
    gpu: &Gpu,
    desc: Matmul,
    with_bias: bool,
    activation: Option<Activation>,
) -> Outcome {
    let [len_a, len_b, len_c] = desc.lengths("selftest")?.map(|l| l as usize);
    let (a, b) = (seeded(1, len_a, -1.0, 1.0), seeded(2, len_b, -1.0, 1.0));
    let bias = seeded(4, desc.n as usize, -1.0, 1.0);
    // C holds values to add to, or NaN where the product must overwrite it.
    let c0 = match desc.accumulate {
        true => seeded(3, len_c, -1.0, 1.0),
        false => vec![f32::NAN; len_c],
    };
    let (ga, gb, gbias) = (
        gpu.upload("a", &a),
        gpu.upload("b", &b),
        gpu.upload("bias", &bias),
    );
    let (gc, gpre) = (gpu.upload("c", &c0), gpu.upload("pre", &c0));
    let gbias = with_bias.then_some(&gbias);
    gpu.run(|pass| {
        let ran = match activation {
            None => matmul::matmul(gpu, pass, &gc, &ga, &gb, gbias, &desc),
            Some(act) => {
                matmul::matmul_activation(gpu, pass, &gc, &gpre, &ga, &gb, gbias, act, &desc)
            }
        };
        ran.map(drop)
    })
    .await?;
    let mut want = c0;
    cpu::matmul::matmul(&mut want, &a, &b, with_bias.then_some(&bias[..]), &desc);
    let tol = Tol::sum(desc.k as usize, 1e-4);
    let mut v = Verdict::default();
    match activation {
        None => v.expect(gpu, "c", &gc, &want, tol).await?,
        Some(act) => {
            let out: Vec<f32> = want
                .iter()
                .map(|&x| cpu::bias::activate(act, x as f64) as f32)
                .collect();
            v.expect(gpu, "pre", &gpre, &want, tol).await?;
            v.expect(gpu, "out", &gc, &out, tol).await?;
        }
    }
    Ok(v)
}
