//! Dropout: the kernel against its CPU reference (the same counter-based draw) on awkward
//! sizes at f32 and f16, the fraction it drops, masks that change with the step and the site but not from
//! forward to backward, and the tape's dropout (off in evaluation, its gradient the mask).

mod common;

use common::assert_close;
use common::precision::{dtypes, exact, read_as_f32, upload_as, widen};
use rezero::cpu;
use rezero::kernels::dropout::{Mask, dropout_backward, dropout_forward};
use rezero::kernels::{Dtype, Grad};
use rezero::tape::{DropoutStep, Tape};

#[test]
fn dropout_matches_its_reference_forward_and_backward() {
    let gpu = require_gpu!();
    for dtype in dtypes(gpu) {
        for n in [1u32, 3, 17, 1000, 70_000] {
            for (p, step) in [(0.1f32, 0u64), (0.5, 7), (0.0, 3)] {
                let mask = Mask {
                    p,
                    site: Mask::site_key(11, 2),
                };
                dropout_case(gpu, n, mask, step, dtype);
            }
        }
    }
}

/// One mask on `n` elements of `dtype` (inputs f16-rounded; the product and the sum taken
/// in f32 and rounded once, so the f16 tolerance widens by one rounding).
fn dropout_case(gpu: &rezero::Gpu, n: u32, mask: Mask, step: u64, dtype: Dtype) {
    let len = n as usize;
    let key = Mask::step_key(step);
    let (x, dy, dx0) = (
        exact(&cpu::seeded(1, len, -1.0, 1.0), dtype),
        exact(&cpu::seeded(2, len, -1.0, 1.0), dtype),
        exact(&cpu::seeded(3, len, -1.0, 1.0), dtype),
    );
    let (gx, gdy, gstep) = (
        upload_as(gpu, "x", &x, dtype),
        upload_as(gpu, "dy", &dy, dtype),
        gpu.upload("step", &[key]),
    );
    for accumulate in [false, true] {
        let start = if accumulate {
            dx0.clone()
        } else {
            vec![f32::NAN; len]
        };
        let (gy, gdx) = (
            gpu.zeroed_f32("y", len),
            upload_as(gpu, "dx", &start, dtype),
        );
        pollster::block_on(gpu.run(|pass| {
            dropout_forward(gpu, pass, &gy, &gx, &gstep, n, mask, dtype)?;
            let dx = Grad::new(&gdx, accumulate);
            dropout_backward(gpu, pass, dx, &gdy, &gstep, n, mask, dtype)
        }))
        .unwrap();
        let (mut want_y, mut want_dx) = (vec![0.0; len], start.clone());
        cpu::dropout::dropout_forward(&mut want_y, &x, mask, key);
        cpu::dropout::dropout_backward(&mut want_dx, &dy, mask, key, accumulate);
        let what = format!(
            "dropout {dtype} n={n} p={} step={step} accumulate={accumulate}",
            mask.p
        );
        let (atol, rtol) = widen((1e-6, 1e-6), dtype);
        let y = read_as_f32(gpu, &gy, len, dtype);
        assert_close(&format!("{what} y"), &y, &want_y, atol, rtol);
        let dx = read_as_f32(gpu, &gdx, len, dtype);
        assert_close(&format!("{what} dx"), &dx, &want_dx, atol, rtol);
    }
}

#[test]
fn the_mask_drops_about_p_and_changes_with_the_step_and_the_site() {
    let n = 100_000u32;
    let dropped = |mask: Mask, step: u64| -> Vec<bool> {
        let key = Mask::step_key(step);
        (0..n)
            .map(|i| cpu::dropout::factor(mask, key, i) == 0.0)
            .collect()
    };
    let mask = Mask {
        p: 0.3,
        site: Mask::site_key(5, 0),
    };
    let a = dropped(mask, 1);
    let fraction = a.iter().filter(|&&d| d).count() as f64 / n as f64;
    assert!((fraction - 0.3).abs() < 0.01, "dropped {fraction}");
    let agree = |b: &[bool]| a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / n as f64;
    // Independent masks of p = 0.3 agree on 0.3² + 0.7² = 58% of the elements.
    let other_step = dropped(mask, 2);
    let other_site = dropped(
        Mask {
            site: Mask::site_key(5, 1),
            ..mask
        },
        1,
    );
    let other_seed = dropped(
        Mask {
            site: Mask::site_key(6, 0),
            ..mask
        },
        1,
    );
    for (what, b) in [
        ("step", other_step),
        ("site", other_site),
        ("seed", other_seed),
    ] {
        let same = agree(&b);
        assert!((same - 0.58).abs() < 0.02, "another {what}: {same} agree");
    }
    assert_eq!(dropped(mask, 1), a, "the same keys draw the same mask");
}

#[test]
fn the_tapes_dropout_is_the_mask_and_off_in_evaluation() {
    let gpu = require_gpu!();
    let mut tape = Tape::new(gpu);
    let values = cpu::seeded(9, 500, -1.0, 1.0);
    let x = tape.variable(&values, &[500]).unwrap();
    let y = tape.dropout(&x).unwrap();
    assert_eq!(
        pollster::block_on(tape.read(&y)).unwrap(),
        values,
        "off until a step turns it on"
    );
    tape.set_dropout(Some(DropoutStep { p: 0.25, seed: 4 }), 12);
    let y = tape.dropout(&x).unwrap();
    let loss = tape.sum(&y).unwrap();
    tape.backward(&loss).unwrap();
    let mask = Mask {
        p: 0.25,
        site: Mask::site_key(4, 0),
    };
    let key = Mask::step_key(12);
    let want: Vec<f32> = (0..500)
        .map(|i| cpu::dropout::factor(mask, key, i))
        .collect();
    let got = pollster::block_on(tape.read(&y)).unwrap();
    let want_y: Vec<f32> = values.iter().zip(&want).map(|(v, f)| v * f).collect();
    assert_close("y", &got, &want_y, 1e-6, 1e-6);
    assert_close(
        "dx",
        &pollster::block_on(tape.grad(&x)).unwrap().unwrap(),
        &want,
        1e-6,
        1e-6,
    );
    tape.reset();
    tape.set_grad_enabled(false);
    let x = tape.input(&values, &[500]).unwrap();
    tape.set_dropout(Some(DropoutStep { p: 0.25, seed: 4 }), 13);
    let y = tape.dropout(&x).unwrap();
    assert_eq!(
        pollster::block_on(tape.read(&y)).unwrap(),
        values,
        "off in evaluation"
    );
}
