//! The bias gradient of a linear layer over [rows, cols]: the column-sum kernel, alone and
//! through GELU's slope, beside what it replaced in the same run (a 1×cols×rows product
//! with a ones vector, after a separate `gelu_backward` pass).

use super::cases::memory_case;
use super::{Case, wait};
use crate::cpu;
use crate::gpu::{Error, Gpu, Result};
use crate::kernels::Dtype;
use crate::kernels::bias::{Activation, BiasShape, bias_activation_backward, bias_backward};
use crate::kernels::matmul::{Matmul, matmul};
use crate::kernels::{Grad, elementwise as ew};

/// bias_backward (reads dy) and bias_gelu_backward (reads dy and pre, writes dx), each
/// fused and as the kernels before (`ones-matmul`; `unfused`: `gelu_backward`, then the
/// ones-vector product). The element count is rows·cols.
pub fn bias_cases(gpu: &Gpu, rows: u32, cols: u32) -> Result<Vec<Case>> {
    let n = rows.checked_mul(cols).ok_or_else(|| Error::Invalid {
        what: "size".into(),
        why: format!("{rows}x{cols} has too many elements"),
    })?;
    let len = n as usize;
    let shape = BiasShape {
        rows,
        cols,
        dtype: Dtype::F32,
    };
    let dy = gpu.upload("dy", &cpu::seeded(13, len, -1.0, 1.0));
    let pre = gpu.upload("pre", &cpu::seeded(14, len, -2.0, 2.0));
    let (dx, dbias) = (
        gpu.zeroed_f32("dx", len),
        gpu.zeroed_f32("dbias", cols as usize),
    );
    let scratch = gpu.zeroed_f32("scratch", shape.scratch_len().max(1));
    let s2 = scratch.clone();
    let ones = gpu.upload("ones", &vec![1.0f32; rows as usize]);
    let ones_product = Matmul::new(1, cols, rows);
    let mut cases = Vec::new();
    let (dy1, db1, s1) = (dy.clone(), dbias.clone(), scratch);
    cases.push(memory_case(
        "bias_backward",
        "column-sum",
        n,
        4.0,
        Box::new(move |gpu| {
            wait(gpu.run(|p| bias_backward(gpu, p, Grad::write(&db1), Some(&s1), &dy1, shape)))
        }),
    ));
    let (dy1, db1, o1) = (dy.clone(), dbias.clone(), ones.clone());
    cases.push(memory_case(
        "bias_backward",
        "ones-matmul",
        n,
        4.0,
        Box::new(move |gpu| {
            wait(gpu.run(|p| matmul(gpu, p, &db1, &o1, &dy1, None, &ones_product).map(drop)))
        }),
    ));
    let (dy1, db1, dx1, pre1) = (dy.clone(), dbias.clone(), dx.clone(), pre.clone());
    cases.push(memory_case(
        "bias_gelu_backward",
        "fused",
        n,
        12.0,
        Box::new(move |gpu| {
            let (gx, gb, gelu) = (Grad::write(&dx1), Grad::write(&db1), Activation::Gelu);
            let s = Some(&s2);
            wait(gpu.run(|p| bias_activation_backward(gpu, p, gx, gb, s, &dy1, &pre1, gelu, shape)))
        }),
    ));
    cases.push(memory_case(
        "bias_gelu_backward",
        "unfused",
        n,
        12.0,
        Box::new(move |gpu| {
            wait(gpu.run(|p| {
                ew::gelu_backward(gpu, p, &dx, &dy, &pre, n, false, Dtype::F32)?;
                matmul(gpu, p, &dbias, &ones, &dx, None, &ones_product).map(drop)
            }))
        }),
    ));
    Ok(cases)
}
