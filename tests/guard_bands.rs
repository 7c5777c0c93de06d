//! Out-of-bounds accesses caught, not inferred. The validation layer's GPU-assisted checks
//! skip buffer bounds under the robustBufferAccess wgpu always enables, and "checked and
//! unchecked shaders give the same bits" cannot see a write nobody reads back. So every
//! public launcher, forward and backward (tests/common/launches.rs), runs on buffers each
//! exactly as long as the launcher accepts (found by bisection against its own size
//! check) followed by a guard band, twice: with a NaN pattern and with 3.0 there. After
//! each run every guard band must hold its pattern (no write past what the launcher
//! checked), and the two runs must agree bit for bit before the guards (a read past the end
//! would have brought in the pattern; the buffers are zeros, valid data for these launches).

mod common;

use common::launches::{Buffers, FULL, SLOTS, launches, takes_dtype};
use rezero::Gpu;
use rezero::gpu::{Discard, Recorder};
use rezero::kernels::Dtype;
use rezero::kernels::Grad;
use rezero::kernels::attention::{AttentionShape, attention_backward_with, attention_forward_with};
use rezero::kernels::attention_tune::{Pass, candidates};
use rezero::kernels::autotune::{GPU_BLOCKS, SOFTWARE_BLOCKS};
use rezero::kernels::conv2d::{self as conv, Conv2d, ConvVariant};
use rezero::kernels::matmul::{Matmul, MatmulVariant, matmul};

/// Floats of guard after each buffer: more than a 128-row tile's overrun of one row.
const GUARD: usize = 4096;

/// Scratch a launcher uses as much of as it is given: the weight gradient's split count is
/// the scratch's length over the weight's, so a longer scratch is written further, within
/// it. Its guard is one float short of another split (the smallest length accepted is one
/// weight), so any write past the split the launcher can afford still lands in the guard.
const SIZED_BY_THE_BUFFER: [(&str, usize); 1] = [("conv2d_backward_weight", 1)];

/// The guard bands of the two runs: a quiet NaN with a payload no kernel computes, and 3.0.
const PATTERNS: [u32; 2] = [0x7fc0_5a5a, 0x4040_0000];

/// A launch that may capture its variant.
type AnyLaunch<'a> = &'a dyn Fn(&Gpu, &mut dyn Recorder, &Buffers) -> rezero::Result<()>;

#[test]
fn no_launcher_touches_memory_past_what_it_checks() {
    let gpu = require_gpu!();
    let full = Buffers::new(gpu, None);
    // The families on f16 activations too, where the device has f16 (a launch that takes
    // no type ignores it, and runs once).
    let f16 = gpu.features().contains(wgpu::Features::SHADER_F16);
    for (family, launch) in launches() {
        check_guards(gpu, &full, family, &|g, p, b| launch(g, p, b, Dtype::F32));
        if f16 && takes_dtype(family) {
            let name = format!("{family} f16");
            check_guards(gpu, &full, &name, &|g, p, b| launch(g, p, b, Dtype::F16));
        }
    }
}

/// Every matmul, convolution and attention kernel a launcher can pick on any adapter (the
/// table above runs what `Auto` picks here): each variant and tile by name.
#[test]
fn no_kernel_variant_touches_memory_past_what_its_launcher_checks() {
    let gpu = require_gpu!();
    let full = Buffers::new(gpu, None);
    for (name, launch) in variant_launches(gpu) {
        check_guards(gpu, &full, &name, launch.as_ref());
    }
}

/// Runs `launch` twice on guarded buffers of its smallest accepted lengths (see the top).
fn check_guards(gpu: &Gpu, full: &Buffers, family: &str, launch: AnyLaunch) {
    let lengths: Vec<usize> = (0..SLOTS)
        .map(|slot| smallest_accepted(gpu, full, family, launch, slot))
        .collect();
    let launcher = family.split(' ').next().expect("a name");
    let guards: Vec<usize> = (0..SLOTS)
        .map(
            |slot| match SIZED_BY_THE_BUFFER.contains(&(launcher, slot)) {
                true => lengths[slot] - 1,
                false => GUARD,
            },
        )
        .collect();
    let [first, second] = PATTERNS.map(|pattern| {
        let after = guarded_run(gpu, family, launch, (&lengths, &guards), pattern);
        for (slot, data) in after.iter().enumerate() {
            let guard = &data[lengths[slot]..];
            if let Some(i) = guard.iter().position(|v| v.to_bits() != pattern) {
                panic!(
                    "{family} wrote {} at element {} of slot {slot}, {i} past the {} it checks",
                    guard[i],
                    lengths[slot] + i,
                    lengths[slot]
                );
            }
        }
        after
    });
    for slot in 0..SLOTS {
        let (a, b) = (
            &first[slot][..lengths[slot]],
            &second[slot][..lengths[slot]],
        );
        if let Some(i) = (0..a.len()).find(|&i| a[i].to_bits() != b[i].to_bits()) {
            panic!(
                "{family}: element {i} of slot {slot} is {} or {} as the guard bands change: \
                 it read past the end of a buffer",
                a[i], b[i]
            );
        }
    }
}

/// Runs `launch` on zero-filled buffers of `lengths` floats each followed by `guards`
/// floats of `pattern`; every buffer's contents afterwards.
fn guarded_run(
    gpu: &Gpu,
    family: &str,
    launch: AnyLaunch,
    (lengths, guards): (&[usize], &[usize]),
    pattern: u32,
) -> Vec<Vec<f32>> {
    let guarded = Buffers::from_fn(|slot| {
        let mut data = vec![0f32; lengths[slot] + guards[slot]];
        data[lengths[slot]..].fill(f32::from_bits(pattern));
        gpu.upload(&format!("{family} slot {slot}"), &data)
    });
    pollster::block_on(gpu.run(|p| launch(gpu, p, &guarded)))
        .unwrap_or_else(|e| panic!("{family} at its smallest accepted sizes: {e}"));
    let total = |slot: usize| lengths[slot] + guards[slot];
    (0..SLOTS)
        .zip(guarded.slots())
        .map(|(slot, buffer)| pollster::block_on(gpu.read_f32(buffer, total(slot))).unwrap())
        .collect()
}

/// The fewest floats slot `slot` may hold for `launch` to accept it (the others full),
/// by bisection: the launcher's size check is monotone in each buffer's length.
fn smallest_accepted(
    gpu: &Gpu,
    full: &Buffers,
    family: &str,
    launch: AnyLaunch,
    slot: usize,
) -> usize {
    let accepts = |len: usize| {
        let small = gpu.zeroed_f32("probe", len);
        let buffers = Buffers::from_fn(|s| match s == slot {
            true => small.clone(),
            false => full.slots().nth(s).expect("a slot").clone(),
        });
        launch(gpu, &mut Discard, &buffers).is_ok()
    };
    let refusal = launch(gpu, &mut Discard, full).err();
    assert!(
        refusal.is_none(),
        "{family}: refused at full lengths: {refusal:?}"
    );
    let (mut refused, mut accepted) = (0, FULL);
    while accepted - refused > 1 {
        let mid = (refused + accepted) / 2;
        match mid > 0 && accepts(mid) {
            true => accepted = mid,
            false => refused = mid,
        }
    }
    accepted
}

type Named = (
    String,
    Box<dyn Fn(&Gpu, &mut dyn Recorder, &Buffers) -> rezero::Result<()>>,
);

/// Each matmul variant in each transposition (with a bias), each convolution variant in each
/// pass, each attention kernel forward and backward, on shapes that end mid-tile.
fn variant_launches(gpu: &Gpu) -> Vec<Named> {
    let mut all: Vec<Named> = Vec::new();
    matmul_launches(gpu, &mut all);
    conv_launches(gpu, &mut all);
    attention_launches(gpu, &mut all);
    all
}

fn matmul_launches(gpu: &Gpu, all: &mut Vec<Named>) {
    // The simple variants in every transposition; the tiles (each once: the software
    // list repeats two GPU tiles) in turn through the three, to bound cold compiles.
    let mut tiles = Vec::new();
    for &tile in GPU_BLOCKS.iter().chain(&SOFTWARE_BLOCKS) {
        if !tiles.contains(&tile) && tile.check(gpu).is_ok() {
            tiles.push(tile);
        }
    }
    let transposes = [(false, false), (true, false), (false, true)];
    let simple = MatmulVariant::SIMPLE
        .into_iter()
        .flat_map(|v| transposes.map(|t| (v, t)));
    let blocked = tiles.iter().enumerate();
    let blocked = blocked.map(|(i, &t)| (MatmulVariant::Blocked(t), transposes[i % 3]));
    for (variant, (ta, tb)) in simple.chain(blocked) {
        // reg8x4 needs every contiguous dimension a multiple of 4
        let (m, n, k) = match variant {
            MatmulVariant::Reg8x4 => (36, 28, 24),
            _ => (37, 29, 23),
        };
        let desc = Matmul::new(m, n, k)
            .trans_a(ta)
            .trans_b(tb)
            .variant(variant);
        all.push((
            format!("matmul {} ta {ta} tb {tb}", variant.name()),
            Box::new(move |g, p, b| {
                let (a, w, bias) = (&b.input[0], &b.input[1], Some(&b.input[2]));
                matmul(g, p, &b.out[0], a, w, bias, &desc).map(drop)
            }),
        ));
    }
}

fn conv_launches(gpu: &Gpu, all: &mut Vec<Named>) {
    let tiles = [ConvVariant::SIMPLE_BLOCK]
        .into_iter()
        .chain(conv::GPU_BLOCKS);
    let tiles = tiles
        .filter(|b| b.check(gpu).is_ok())
        .map(ConvVariant::Blocked);
    let s = Conv2d::new(2, 3, 9, 9, 5, 3).pad(1);
    for variant in [ConvVariant::Direct, ConvVariant::Reg]
        .into_iter()
        .chain(tiles)
    {
        let name = |launcher: &str| format!("{launcher} {}", variant.name());
        all.push((
            name("conv2d_forward"),
            Box::new(move |g, p, b| {
                let (x, w, bias) = (&b.input[0], &b.input[1], Some(&b.input[2]));
                conv::conv2d_forward(g, p, &b.out[0], x, w, bias, &s, variant, false)
            }),
        ));
        all.push((
            name("conv2d_backward_input"),
            Box::new(move |g, p, b| {
                let (dy, w) = (&b.input[0], &b.input[1]);
                conv::conv2d_backward_input(g, p, &b.out[0], dy, w, &s, variant, false)
            }),
        ));
        all.push((
            name("conv2d_backward_weight"),
            Box::new(move |g, p, b| {
                let (dw, scratch, dy, x) = (&b.out[0], &b.out[1], &b.input[0], &b.input[1]);
                conv::conv2d_backward_weight(g, p, dw, scratch, dy, x, &s, variant, false)
            }),
        ));
    }
}

fn attention_launches(gpu: &Gpu, all: &mut Vec<Named>) {
    let s = AttentionShape::heads(2, 17, 8);
    for kernel in candidates(gpu, Pass::Forward, s.d) {
        all.push((
            format!("attention_forward {kernel:?}"),
            Box::new(move |g, p, b| {
                let i = &b.input;
                attention_forward_with(
                    g,
                    p,
                    kernel,
                    [&b.out[0], &b.out[1], &i[0], &i[1], &i[2]],
                    &s,
                )
            }),
        ));
    }
    for kernel in candidates(gpu, Pass::Backward, s.d) {
        all.push((
            format!("attention_backward {kernel:?}"),
            Box::new(move |g, p, b| {
                let grads = [&b.out[0], &b.out[1], &b.out[2]].map(Grad::write);
                let i = &b.input;
                let inputs = [&i[0], &i[1], &i[2], &i[3], &i[4], &i[5]];
                attention_backward_with(g, p, kernel, grads, &b.out[3], inputs, &s)
            }),
        ));
    }
}
