//! What every case shares: the runner that times a case and turns its outcome (or its
//! launcher's error) into a [`Check`], the one comparison, and the start of a gradient.

use std::future::Future;

use rezero::Gpu;
use rezero::kernels::{Dtype, precision};
use web_time::Instant;

use super::Check;

/// The bound of a comparison: |gpu − ref| ≤ atol + rtol·|ref|.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tol {
    pub atol: f32,
    pub rtol: f32,
}

impl Tol {
    /// Bit for bit (copies, lookups, masks).
    pub const EXACT: Tol = Tol::new(0.0, 0.0);

    pub const fn new(atol: f32, rtol: f32) -> Tol {
        Tol { atol, rtol }
    }

    /// For sums of `len` O(1) terms, against a reference summed in another order: rounding
    /// errors of random sign add up like a random walk, so atol grows like √len.
    pub fn sum(len: usize, rtol: f32) -> Tol {
        Tol::new(1e-5 * (len as f32).sqrt().max(1.0), rtol)
    }

    /// This bound `factor` times as wide.
    pub fn times(self, factor: f32) -> Tol {
        Tol::new(self.atol * factor, self.rtol * factor)
    }
}

/// The first index where `got` differs from `want` by more than `tol` (a NaN in either
/// differs; equal infinities agree), said with both values; `None` when all agree.
pub fn compare(what: &str, got: &[f32], want: &[f32], tol: Tol) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!(
            "{what}: {} values, expected {}",
            got.len(),
            want.len()
        ));
    }
    got.iter().zip(want).enumerate().find_map(|(i, (&g, &w))| {
        let (diff, bound) = ((g - w).abs(), tol.atol + tol.rtol * w.abs());
        let agree = g == w || diff <= bound;
        (!agree)
            .then(|| format!("{what}[{i}]: got {g}, expected {w} (|diff| {diff:e} > {bound:e})"))
    })
}

/// A case's outcome: the first output that differed from its reference, if any.
#[derive(Debug, Default)]
pub struct Verdict(Option<String>);

impl Verdict {
    /// Compares `got` with `want` unless an earlier output already failed.
    pub fn compare(&mut self, what: &str, got: &[f32], want: &[f32], tol: Tol) {
        if self.0.is_none() {
            self.0 = compare(what, got, want, tol);
        }
    }

    /// Reads `want.len()` floats of `buffer` and compares them (unless an earlier output
    /// already failed).
    pub async fn expect(
        &mut self,
        gpu: &Gpu,
        what: &str,
        buffer: &wgpu::Buffer,
        want: &[f32],
        tol: Tol,
    ) -> rezero::Result<()> {
        self.expect_as(gpu, what, (buffer, Dtype::F32), want, tol)
            .await
    }

    /// [`Verdict::expect`] for a buffer of `dtype` elements, read as f32.
    pub async fn expect_as(
        &mut self,
        gpu: &Gpu,
        what: &str,
        (buffer, dtype): (&wgpu::Buffer, Dtype),
        want: &[f32],
        tol: Tol,
    ) -> rezero::Result<()> {
        if self.0.is_none() {
            let got = precision::read_as(gpu, buffer, want.len(), dtype).await?;
            self.compare(what, &got, want, tol);
        }
        Ok(())
    }
}

/// What a case returns: its verdict, or the error a launcher (or a read) returned.
pub type Outcome = rezero::Result<Verdict>;

/// Runs cases one after another and keeps their checks.
pub struct Runner<'a> {
    pub gpu: &'a Gpu,
    report: &'a mut dyn FnMut(&Check),
    checks: Vec<Check>,
}

impl<'a> Runner<'a> {
    pub fn new(gpu: &'a Gpu, report: &'a mut dyn FnMut(&Check)) -> Runner<'a> {
        Runner {
            gpu,
            report,
            checks: Vec::new(),
        }
    }

    /// Awaits `work` (a case, which starts when awaited), timing it, and reports its check.
    pub async fn case(
        &mut self,
        family: &'static str,
        case: String,
        work: impl Future<Output = Outcome>,
    ) {
        let start = Instant::now();
        let failure = match work.await {
            Ok(Verdict(failure)) => failure,
            Err(e) => Some(format!("launch or readback failed: {e}")),
        };
        let millis = start.elapsed().as_secs_f64() * 1e3;
        let check = Check {
            family,
            case,
            failure,
            millis,
        };
        (self.report)(&check);
        self.checks.push(check);
    }

    pub fn into_checks(self) -> Vec<Check> {
        self.checks
    }
}

/// A gradient buffer's starting values: `values` where the kernel adds to it, NaN where it
/// must overwrite it (so an element it misses shows).
pub fn start(values: Vec<f32>, accumulate: bool) -> Vec<f32> {
    if accumulate {
        values
    } else {
        vec![f32::NAN; values.len()]
    }
}

/// `len` seeded values in [lo, hi) (`rezero::cpu::seeded`).
pub fn seeded(seed: u64, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    rezero::cpu::seeded(seed, len, lo, hi)
}
