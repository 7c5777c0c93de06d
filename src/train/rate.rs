//! The rates a run reports, evaluation and checkpoint time left out of each: items a
//! second over the
//! last logging window (progress lines, metrics rows), over the run after its first step
//! (the summary), and the first step's own time (compiling kernels, tuning), which would
//! otherwise make the early rates meaningless on a cold start.

use web_time::Instant;

/// A point of the run: when, after how many steps of this process, and how much
/// evaluation time had passed by then.
#[derive(Clone, Copy, Debug)]
struct Mark {
    at: Instant,
    steps: u64,
    eval_seconds: f64,
}

/// Clocks the steps of one process's run (a resumed run starts a new clock).
#[derive(Debug)]
pub struct RateClock {
    items_per_step: u64,
    steps: u64,
    eval_seconds: f64,
    /// When the step being taken started, while it is the first.
    first_started: Option<Instant>,
    /// The end of the first step and its length.
    first: Option<(Mark, f64)>,
    /// The start of the current logging window.
    window: Option<Mark>,
}

impl RateClock {
    pub fn new(items_per_step: u64) -> RateClock {
        RateClock {
            items_per_step,
            steps: 0,
            eval_seconds: 0.0,
            first_started: None,
            first: None,
            window: None,
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            at: Instant::now(),
            steps: self.steps,
            eval_seconds: self.eval_seconds,
        }
    }

    /// Call as a step starts.
    pub fn step_started(&mut self) {
        if self.steps == 0 && self.first_started.is_none() {
            self.first_started = Some(Instant::now());
        }
    }

    /// Call once a step's work is done (its loss read, or its work submitted). Returns the
    /// first step's length when this was the first step.
    pub fn step_done(&mut self) -> Option<f64> {
        self.steps += 1;
        let started = self.first_started.take()?;
        let mark = self.mark();
        let seconds = mark.at.duration_since(started).as_secs_f64();
        self.first = Some((mark, seconds));
        self.window = Some(mark);
        Some(seconds)
    }

    /// Time that is not training (evaluations, checkpoints), left out of every rate.
    pub fn exclude(&mut self, seconds: f64) {
        self.eval_seconds += seconds;
    }

    /// Items a second from `since` to now; `None` without a step in between.
    fn rate_since(&self, since: Option<Mark>) -> Option<f64> {
        let since = since?;
        let steps = self.steps - since.steps;
        let eval = self.eval_seconds - since.eval_seconds;
        let seconds = since.at.elapsed().as_secs_f64() - eval;
        (steps > 0).then(|| (steps * self.items_per_step) as f64 / seconds.max(1e-9))
    }

    /// The rate over the current logging window (since the last [`RateClock::restart_window`],
    /// or since the first step ended): `None` until a step after the first is done.
    pub fn window_rate(&self) -> Option<f64> {
        self.rate_since(self.window)
    }

    /// Starts a new logging window now.
    pub fn restart_window(&mut self) {
        if self.first.is_some() {
            self.window = Some(self.mark());
        }
    }

    /// The rate over every step after the first (`None` with one step or none).
    pub fn steady_rate(&self) -> Option<f64> {
        self.rate_since(self.first.map(|(mark, _)| mark))
    }

    /// The first step's length (compiling kernels, tuning, running it).
    pub fn first_step_seconds(&self) -> Option<f64> {
        self.first.map(|(_, seconds)| seconds)
    }

    /// Seconds a step over the current window, for an estimate of the time left.
    pub fn seconds_per_step(&self) -> Option<f64> {
        self.window_rate()
            .map(|rate| self.items_per_step as f64 / rate.max(1e-9))
    }
}
