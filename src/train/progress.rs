//! A one-line progress display on stderr (step, loss, steps/s, ETA), redrawn at most ten
//! times a second, and duration formatting.

use std::io::Write;
use std::time::{Duration, Instant};

pub struct Progress {
    label: String,
    total: u64,
    start: Instant,
    last_draw: Option<Instant>,
    enabled: bool,
    /// Examples a step and their unit ("tokens", "images"): the line shows their rate.
    items_per_step: Option<(u64, &'static str)>,
    /// The loss is in nats per byte: the line also shows bits per byte.
    bits_per_byte: bool,
}

/// "1h02m", "3m05s" or "12.3s".
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 3600.0 {
        format!("{}h{:02}m", (s / 3600.0) as u64, (s % 3600.0 / 60.0) as u64)
    } else if s >= 60.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{s:.1}s")
    }
}

impl Progress {
    pub fn new(label: &str, total: u64, enabled: bool) -> Progress {
        Progress {
            label: label.to_string(),
            total,
            start: Instant::now(),
            last_draw: None,
            enabled,
            items_per_step: None,
            bits_per_byte: false,
        }
    }

    /// For language models: the loss is in nats per byte and a step reads this many bytes.
    pub fn with_tokens(mut self, tokens_per_step: u64) -> Progress {
        self.items_per_step = Some((tokens_per_step, "tokens"));
        self.bits_per_byte = true;
        self
    }

    /// For image models: a step reads this many images.
    pub fn with_images(mut self, images_per_step: u64) -> Progress {
        self.items_per_step = Some((images_per_step, "images"));
        self
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Redraws the line for `step` (1-based) if a tenth of a second has passed; `epoch` 0
    /// leaves the epoch out.
    pub fn update(&mut self, step: u64, epoch: usize, loss: Option<f32>) {
        if !self.enabled
            || self
                .last_draw
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
                && step < self.total
        {
            return;
        }
        self.last_draw = Some(Instant::now());
        let elapsed = self.start.elapsed().as_secs_f64();
        let rate = step as f64 / elapsed.max(1e-9);
        let eta =
            Duration::from_secs_f64((self.total.saturating_sub(step)) as f64 / rate.max(1e-9));
        let loss = match loss {
            None => "-".to_string(),
            Some(l) if self.bits_per_byte => {
                format!("{l:.4} ({:.3} bits/byte)", l / std::f32::consts::LN_2)
            }
            Some(l) => format!("{l:.4}"),
        };
        let speed = match self.items_per_step {
            Some((items, unit)) => format!("{:.0} {unit}/s", rate * items as f64),
            None => format!("{rate:.1} steps/s"),
        };
        let epoch = if epoch > 0 {
            format!(" epoch {epoch}")
        } else {
            String::new()
        };
        eprint!(
            "\r{}{epoch} step {step}/{} loss {loss} {speed} ETA {}   ",
            self.label,
            self.total,
            format_duration(eta)
        );
        let _ = std::io::stderr().flush();
    }

    /// Ends the progress line.
    pub fn finish(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            eprintln!();
        }
    }
}

/// `--profile N`: times every dispatch of training step N (counted from 1, over resumed
/// runs too) and prints where its time went, by kernel entry point, on stderr.
#[derive(Debug, Default)]
pub struct StepProfiler {
    step: Option<u64>,
    started: Option<std::time::Instant>,
}

impl StepProfiler {
    pub fn new(step: Option<u64>) -> StepProfiler {
        StepProfiler {
            step,
            started: None,
        }
    }

    /// Call before recording step `step` (1-based).
    pub fn before(&mut self, gpu: &crate::gpu::Gpu, step: u64) -> crate::Result<()> {
        if self.step == Some(step) {
            gpu.sync()?;
            gpu.start_profile()?;
            self.started = Some(std::time::Instant::now());
        }
        Ok(())
    }

    /// Call after the step's work is submitted (after `Tape::reset`).
    pub fn after(&mut self, gpu: &crate::gpu::Gpu, step: u64) -> crate::Result<()> {
        let Some(started) = self.started.take() else {
            return Ok(());
        };
        gpu.sync()?;
        let wall = started.elapsed().as_secs_f64();
        let profile = gpu.finish_profile()?;
        eprintln!("profile of step {step}:");
        for line in profile.lines(wall, None, false) {
            eprintln!("{line}");
        }
        Ok(())
    }
}
