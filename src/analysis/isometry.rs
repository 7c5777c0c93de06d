//! The input-output Jacobian of a network at one input and its singular values: how close
//! the network is to dynamical isometry (all singular values 1). A ReZero stack with every
//! α = 0 is the identity, so its Jacobian is exactly I.

use crate::gpu::{Error, Gpu, Result};
use crate::tape::{Tape, Tensor};

/// Rows of the Jacobian computed per backward pass: the input is repeated this many times
/// along the batch, and each copy's output gets a one-hot seed.
pub const ROWS_PER_PASS: usize = 256;

/// Most inputs (or outputs) a Jacobian may have: J is side² floats on the host, its SVD
/// holds several side² f64 matrices and takes O(side³) time (8192: about 2 GiB, minutes).
pub const MAX_JACOBIAN_SIDE: usize = 8192;

/// Errors, naming `what` (the flags the side comes from), unless a Jacobian of `side`
/// inputs and outputs is one [`singular_values`] can take: checked before anything is
/// allocated.
pub fn check_side(what: &str, side: Option<usize>) -> Result<()> {
    match side {
        Some(n) if n <= MAX_JACOBIAN_SIDE => Ok(()),
        _ => Err(Error::Invalid {
            what: what.to_string(),
            why: format!(
                "the Jacobian would be {} values a side: isometry takes at most \
                 {MAX_JACOBIAN_SIDE} (its SVD holds several such matrices in f64 and takes \
                 the cube of the side in time)",
                side.map_or("more than 2^64".to_string(), |n| n.to_string())
            ),
        }),
    }
}

/// J[out, in] = ∂forward(x)[out] / ∂x[in] at `x`, computed through the tape: `forward`
/// maps a batch of inputs [batch, in] to outputs [batch, out], each row depending on its
/// own input row only (true of MLPs, and of a Transformer whose batch rows are whole
/// sequences flattened). Row-major [out, in].
pub async fn jacobian(
    gpu: &Gpu,
    x: &[f32],
    forward: impl Fn(&mut Tape, &Tensor) -> Result<Tensor>,
) -> Result<(usize, Vec<f32>)> {
    let inputs = x.len();
    if inputs == 0 {
        return Err(Error::Empty {
            op: "jacobian",
            what: "the input".into(),
        });
    }
    check_side("jacobian inputs", Some(inputs))?;
    let mut tape = Tape::new(gpu);
    let mut rows: Vec<f32> = Vec::new();
    let mut outputs: Option<usize> = None;
    let mut done = 0;
    loop {
        let batch = match outputs {
            Some(out) => (out - done).min(ROWS_PER_PASS),
            None => 1,
        };
        let repeated: Vec<f32> = (0..batch).flat_map(|_| x.iter().copied()).collect();
        let xt = tape.variable(&repeated, &[batch, inputs])?;
        let y = forward(&mut tape, &xt)?;
        if y.shape().first() != Some(&batch) || y.shape().len() != 2 {
            return Err(Error::Shape {
                op: "jacobian",
                expected: format!("outputs [{batch}, out]"),
                got: format!("{:?}", y.shape()),
            });
        }
        let out = y.shape()[1];
        if outputs.is_none() {
            check_side("jacobian outputs", Some(out))?;
            // The first pass only learns the output size.
            outputs = Some(out);
            tape.reset();
            continue;
        }
        let mut seed = vec![0.0f32; batch * out];
        for b in 0..batch {
            seed[b * out + done + b] = 1.0;
        }
        tape.backward_with(&y, &seed)?;
        let grad = tape.grad(&xt).await?.ok_or_else(|| Error::Invalid {
            what: "jacobian".into(),
            why: "the output does not depend on the input".into(),
        })?;
        rows.extend_from_slice(&grad);
        tape.reset();
        done += batch;
        if done == out {
            return Ok((out, rows));
        }
    }
}

/// Singular values of the row-major [rows, cols] matrix, largest first (SVD in f64 on the
/// CPU). A matrix holding NaN or infinite values (from weights or inputs that hold them) is
/// an error: the SVD cannot handle them.
pub fn singular_values(rows: usize, cols: usize, values: &[f32]) -> Result<Vec<f64>> {
    if values.len() != rows * cols {
        return Err(Error::Shape {
            op: "singular values",
            expected: format!("{rows}×{cols} values"),
            got: values.len().to_string(),
        });
    }
    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
        return Err(Error::Invalid {
            what: "jacobian".into(),
            why: format!(
                "it holds {bad}: the network's weights or inputs hold NaN or infinite values"
            ),
        });
    }
    let m = nalgebra::DMatrix::from_row_iterator(rows, cols, values.iter().map(|&v| v as f64));
    let mut s: Vec<f64> = m.singular_values().iter().copied().collect();
    s.sort_by(|a, b| b.total_cmp(a));
    Ok(s)
}

/// Summary of a spectrum: mean of σ², min, max.
#[derive(Clone, Debug)]
pub struct Spectrum {
    pub singular_values: Vec<f64>,
    pub mean_squared: f64,
    pub min: f64,
    pub max: f64,
}

impl Spectrum {
    pub fn new(singular_values: Vec<f64>) -> Spectrum {
        let n = singular_values.len().max(1) as f64;
        let mean_squared = singular_values.iter().map(|s| s * s).sum::<f64>() / n;
        let min = singular_values
            .iter()
            .cloned()
            .fold(f64::INFINITY, f64::min);
        let max = singular_values.iter().cloned().fold(0.0, f64::max);
        Spectrum {
            singular_values,
            mean_squared,
            min,
            max,
        }
    }

    /// A text histogram with `bins` equal-width bins between min and max.
    pub fn histogram(&self, bins: usize) -> String {
        let (lo, hi) = (self.min, self.max);
        let width = ((hi - lo) / bins as f64).max(1e-12);
        let mut counts = vec![0usize; bins];
        for &s in &self.singular_values {
            counts[(((s - lo) / width) as usize).min(bins - 1)] += 1;
        }
        let most = counts.iter().copied().max().unwrap_or(1).max(1);
        let mut text = String::new();
        for (i, &c) in counts.iter().enumerate() {
            let bar = "#".repeat((c * 50).div_ceil(most));
            text += &format!(
                "{:>10.4} - {:<10.4} {:>6} {bar}\n",
                lo + i as f64 * width,
                lo + (i + 1) as f64 * width,
                c
            );
        }
        text
    }
}
