//! Progress of a run on stderr: on a terminal an `indicatif` bar (with the `cli` feature;
//! lines without it) with the loss, the rate
//! and the ETA; piped or in CI, one plain line at each logged loss (no carriage returns);
//! and duration formatting.

use std::io::IsTerminal;
use std::time::Duration;
use web_time::Instant;

use bar::Bar;

/// How a run shows its progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Display {
    /// Nothing (`--quiet`).
    Off,
    /// A bar redrawn in place (stderr is a terminal).
    Bar,
    /// One line per logged loss (stderr is a pipe or a file).
    Lines,
}

impl Display {
    /// A bar on a terminal, lines otherwise, nothing when `quiet`.
    pub fn for_stderr(quiet: bool) -> Display {
        match (quiet, std::io::stderr().is_terminal()) {
            (true, _) => Display::Off,
            (false, true) => Display::Bar,
            (false, false) => Display::Lines,
        }
    }
}

pub struct Progress {
    label: String,
    /// Steps this run takes (a resumed run counts from where it resumed).
    total: u64,
    start: Instant,
    display: Display,
    bar: Option<Bar>,
    /// Examples a step and their unit ("tokens", "images"): the line shows their rate.
    items_per_step: Option<(u64, &'static str)>,
    /// The loss is in nats per byte: the line also shows bits per byte.
    bits_per_byte: bool,
}

/// A rate as a whole number ("887"), or "-" where none was measured.
pub fn format_rate(rate: Option<f64>) -> String {
    rate.map_or("-".into(), |r| format!("{r:.0}"))
}

/// ", after a first step of 12.3s" (compiling kernels), or nothing.
pub fn first_step_note(seconds: Option<f64>) -> String {
    seconds.map_or(String::new(), |s| {
        format!(
            " after a first step of {}",
            format_duration(Duration::from_secs_f64(s))
        )
    })
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
    pub fn new(label: &str, total: u64, display: Display) -> Progress {
        let bar = match display {
            Display::Bar => bar::new(label, total),
            _ => None,
        };
        // Without a bar to draw (no `cli` feature), a terminal gets lines.
        let display = match (display, &bar) {
            (Display::Bar, None) => Display::Lines,
            _ => display,
        };
        Progress {
            label: label.to_string(),
            total,
            start: Instant::now(),
            display,
            bar,
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

    /// "loss 1.2345 (1.781 bits/byte) 5120 tokens/s", the rate over the current logging
    /// window (`-` until one is measured).
    fn status(&self, loss: Option<f32>, rate: Option<f64>) -> String {
        let loss = match loss {
            None => "-".to_string(),
            Some(l) if self.bits_per_byte => {
                format!("{l:.4} ({:.3} bits/byte)", l / std::f32::consts::LN_2)
            }
            Some(l) => format!("{l:.4}"),
        };
        let unit = self.items_per_step.map_or("steps", |(_, unit)| unit);
        let speed = rate.map_or(format!("- {unit}/s"), |r| format!("{r:.0} {unit}/s"));
        format!("loss {loss} {speed}")
    }

    /// Shows that `done` steps of this run are done (`step` counts over resumed runs too);
    /// `loss` is the latest loss read, `fresh` whether it was read at this step; `rate`
    /// (items a second) and `seconds_per_step` are over the current logging window.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        done: u64,
        step: u64,
        epoch: Option<usize>,
        loss: Option<f32>,
        fresh: bool,
        rate: Option<f64>,
        seconds_per_step: Option<f64>,
    ) {
        let status = self.status(loss, rate);
        match self.display {
            Display::Off => {}
            Display::Bar => {
                let bar = self.bar.as_ref().expect("a bar display has a bar");
                bar.set_position(done);
                bar.set_message(status);
            }
            Display::Lines if fresh || done == self.total => {
                let epoch = epoch.map_or(String::new(), |e| format!(" epoch {e}"));
                let left = self.total.saturating_sub(done) as f64;
                let eta = seconds_per_step.map_or("-".into(), |per_step| {
                    format_duration(Duration::from_secs_f64(left * per_step))
                });
                eprintln!(
                    "{}{epoch} step {step} ({done}/{}) {status} ETA {eta}",
                    self.label, self.total,
                );
            }
            Display::Lines => {}
        }
    }

    /// Prints a line (an epoch's results) without breaking the bar.
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None if self.display == Display::Lines => eprintln!("{line}"),
            None => {}
        }
    }

    /// Ends the bar, leaving its last state on screen.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}

/// `--profile N`: times every dispatch of training step N (counted from 1, over resumed
/// runs too) and prints where its time went, by kernel entry point, on stderr.
#[derive(Debug, Default)]
pub struct StepProfiler {
    step: Option<u64>,
    started: Option<web_time::Instant>,
}

impl StepProfiler {
    pub fn new(step: Option<u64>) -> StepProfiler {
        StepProfiler {
            step,
            started: None,
        }
    }

    /// Call before recording step `step` (1-based).
    pub async fn before(&mut self, gpu: &crate::gpu::Gpu, step: u64) -> crate::Result<()> {
        if self.step == Some(step) {
            gpu.sync().await?;
            gpu.start_profile()?;
            self.started = Some(web_time::Instant::now());
        }
        Ok(())
    }

    /// Call after the step's work is submitted (after `Tape::reset`).
    pub async fn after(&mut self, gpu: &crate::gpu::Gpu, step: u64) -> crate::Result<()> {
        let Some(started) = self.started.take() else {
            return Ok(());
        };
        gpu.sync().await?;
        let wall = started.elapsed().as_secs_f64();
        let profile = gpu.finish_profile().await?;
        eprintln!("profile of step {step}:");
        for line in profile.lines(wall, None, false) {
            eprintln!("{line}");
        }
        Ok(())
    }
}

/// The terminal's bar: `indicatif`'s, with the `cli` feature.
#[cfg(feature = "cli")]
mod bar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

    pub type Bar = ProgressBar;

    pub fn new(label: &str, total: u64) -> Option<Bar> {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            .expect("a valid template")
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        Some(bar)
    }
}

/// Without the `cli` feature there is no bar: a type with no values, so the display's bar
/// arms can never run.
#[cfg(not(feature = "cli"))]
mod bar {
    #[derive(Debug)]
    pub enum Bar {}

    impl Bar {
        pub fn set_position(&self, _: u64) {
            match *self {}
        }
        pub fn set_message(&self, _: String) {
            match *self {}
        }
        pub fn println(&self, _: &str) {
            match *self {}
        }
        pub fn abandon(self) {
            match self {}
        }
    }

    pub fn new(_label: &str, _total: u64) -> Option<Bar> {
        None
    }
}
