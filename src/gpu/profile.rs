//! Where a step's GPU time goes: timestamp queries around every dispatch, grouped by kernel
//! entry point. Between [`Gpu::start_profile`] and [`Gpu::finish_profile`], each dispatch
//! is bracketed by two timestamps inside its compute pass where the adapter allows it
//! (`TIMESTAMP_QUERY_INSIDE_PASSES`); otherwise the passes the tape and [`Gpu::run`] open
//! carry timestamps at their start and end, one pass per recorded op, and the time of a
//! pass goes to the dispatches it holds.

use std::collections::BTreeMap;

use super::context::{Gpu, lock};
use crate::error::{Error, Result};

/// What one dispatch does, for the profile's rates: floating-point operations, bytes read
/// and written (each buffer once), or not counted.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Work {
    #[default]
    Uncounted,
    Flops(f64),
    Bytes(f64),
}

/// Queries per query set (wgpu's most).
const QUERIES_PER_SET: u32 = wgpu::QUERY_SET_MAX_QUERIES;

/// One timed interval: its first query (its end is the next one) and the dispatches in it.
struct Interval {
    start: u32,
    dispatches: Vec<(&'static str, Work)>,
}

/// The profile being recorded (held by the `Gpu` between start and finish).
pub(crate) struct Profiler {
    sets: Vec<wgpu::QuerySet>,
    used: u32,
    intervals: Vec<Interval>,
    /// Timestamps go inside passes, around each dispatch.
    inside_passes: bool,
    /// Without that: the interval of the pass being recorded, if it carries timestamps.
    open: Option<usize>,
}

impl Profiler {
    /// The query set and index of the next free pair of queries, growing the sets.
    fn next_pair(&mut self, device: &wgpu::Device) -> (wgpu::QuerySet, u32) {
        if self.used % QUERIES_PER_SET == 0 {
            self.sets
                .push(device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("profile"),
                    ty: wgpu::QueryType::Timestamp,
                    count: QUERIES_PER_SET,
                }));
        }
        let at = self.used;
        self.used += 2;
        let set = self.sets[(at / QUERIES_PER_SET) as usize].clone();
        (set, at % QUERIES_PER_SET)
    }
}

/// Begins a compute pass on `encoder` that carries, when given, the timestamps of a
/// whole-pass profile interval (from [`Gpu::profile_pass_timestamps`]).
pub(crate) fn begin_pass<'e>(
    encoder: &'e mut wgpu::CommandEncoder,
    label: Option<&str>,
    timestamps: Option<&(wgpu::QuerySet, u32)>,
) -> wgpu::ComputePass<'e> {
    encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label,
        timestamp_writes: timestamps.map(|(set, index)| wgpu::ComputePassTimestampWrites {
            query_set: set,
            beginning_of_pass_write_index: Some(*index),
            end_of_pass_write_index: Some(index + 1),
        }),
    })
}

/// The profile set aside while unprofiled work runs, put back when dropped (also when the
/// work's future is dropped before it finishes).
struct SetAside<'a> {
    gpu: &'a Gpu,
    held: Option<Profiler>,
}

impl Drop for SetAside<'_> {
    fn drop(&mut self) {
        *lock(&self.gpu.profiler) = self.held.take();
    }
}

/// One kernel entry point's share of a profiled step.
#[derive(Clone, Debug)]
pub struct ProfileRow {
    pub entry: String,
    pub calls: usize,
    pub seconds: f64,
    /// The dispatches' own count of work: FLOPs and bytes summed, `None` if any dispatch
    /// of the row did not count its work.
    pub flops: Option<f64>,
    pub bytes: Option<f64>,
}

impl ProfileRow {
    /// The rate from the row's own count: ("GFLOP/s" or "GB/s", value), if counted.
    pub fn rate(&self) -> Option<(&'static str, f64)> {
        if self.seconds <= 0.0 {
            return None;
        }
        match (self.flops, self.bytes) {
            (Some(f), _) if f > 0.0 => Some(("GFLOP/s", f / self.seconds / 1e9)),
            (_, Some(b)) if b > 0.0 => Some(("GB/s", b / self.seconds / 1e9)),
            _ => None,
        }
    }
}

/// The dispatches of a profiled stretch of work, grouped by entry point, slowest first.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    pub rows: Vec<ProfileRow>,
    /// Sum of the timed intervals.
    pub total_seconds: f64,
    /// Dispatches timed.
    pub dispatches: usize,
}

impl Profile {
    fn from_intervals(intervals: &[Interval], ticks: &[u64], period_ns: f64) -> Profile {
        let mut by_entry: BTreeMap<String, ProfileRow> = BTreeMap::new();
        let (mut total, mut dispatches) = (0.0, 0);
        for interval in intervals {
            let i = interval.start as usize;
            let seconds = ticks[i + 1].saturating_sub(ticks[i]) as f64 * period_ns * 1e-9;
            total += seconds;
            dispatches += interval.dispatches.len();
            // A pass that holds several dispatches is one row named after all of them.
            let names: Vec<&str> = interval.dispatches.iter().map(|d| d.0).collect();
            let entry = names.join("+");
            let row = by_entry.entry(entry.clone()).or_insert(ProfileRow {
                entry,
                calls: 0,
                seconds: 0.0,
                flops: Some(0.0),
                bytes: Some(0.0),
            });
            row.calls += 1;
            row.seconds += seconds;
            for (_, work) in &interval.dispatches {
                let (f, b) = match work {
                    Work::Flops(f) => (Some(*f), Some(0.0)),
                    Work::Bytes(b) => (Some(0.0), Some(*b)),
                    Work::Uncounted => (None, None),
                };
                row.flops = row.flops.zip(f).map(|(x, y)| x + y);
                row.bytes = row.bytes.zip(b).map(|(x, y)| x + y);
            }
        }
        let mut rows: Vec<ProfileRow> = by_entry.into_values().collect();
        rows.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        Profile {
            rows,
            total_seconds: total,
            dispatches,
        }
    }
}

impl Profile {
    /// The profile as table lines (or JSON lines): each entry point's calls, milliseconds,
    /// share of the timed total and rate from its own count, then the total beside the
    /// profiled step's wall time (and its unprofiled median, when known).
    pub fn lines(&self, wall_seconds: f64, median_seconds: Option<f64>, json: bool) -> Vec<String> {
        let total = self.total_seconds.max(1e-30);
        let mut lines = Vec::new();
        if !json {
            lines.push(format!(
                "  {:<52} {:>6} {:>10} {:>7} {:>16}",
                "entry point", "calls", "ms", "share", "rate"
            ));
        }
        for row in &self.rows {
            let rate = row.rate();
            if json {
                let (rate, unit) =
                    rate.map_or(("null".to_string(), ""), |(u, r)| (format!("{r:.3}"), u));
                lines.push(format!(
                    "{{\"profile_entry\":\"{}\",\"calls\":{},\"ms\":{:.4},\"share\":{:.4},\"rate\":{rate},\"unit\":\"{unit}\"}}",
                    row.entry,
                    row.calls,
                    row.seconds * 1e3,
                    row.seconds / total
                ));
            } else {
                let rate = rate.map_or("-".to_string(), |(u, r)| format!("{r:.1} {u}"));
                lines.push(format!(
                    "  {:<52} {:>6} {:>10.3} {:>6.1}% {:>16}",
                    row.entry,
                    row.calls,
                    row.seconds * 1e3,
                    100.0 * row.seconds / total,
                    rate
                ));
            }
        }
        let median_ms = median_seconds.map(|m| m * 1e3);
        if json {
            lines.push(format!(
                "{{\"profile_total_ms\":{:.4},\"dispatches\":{},\"step_profiled_ms\":{:.4},\"step_median_ms\":{}}}",
                self.total_seconds * 1e3,
                self.dispatches,
                wall_seconds * 1e3,
                median_ms.map_or("null".to_string(), |m| format!("{m:.4}"))
            ));
        } else {
            let against = match median_ms {
                Some(m) => format!(
                    "; the step: {:.3} ms profiled (timed / that = {:.2}), {m:.3} ms median \
                     unprofiled (timed / that = {:.2})",
                    wall_seconds * 1e3,
                    self.total_seconds / wall_seconds,
                    self.total_seconds * 1e3 / m
                ),
                None => format!(
                    "; the step took {:.3} ms (timed / step = {:.2})",
                    wall_seconds * 1e3,
                    self.total_seconds / wall_seconds
                ),
            };
            lines.push(format!(
                "  profile: {} dispatches, {:.3} ms timed on the GPU{against}",
                self.dispatches,
                self.total_seconds * 1e3
            ));
        }
        lines
    }
}

impl Gpu {
    /// Starts timing every dispatch (see the module docs). Errors if the adapter has no
    /// timestamp queries or a profile is already running.
    pub fn start_profile(&self) -> Result<()> {
        let inside = self
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES);
        self.start_profile_with(inside)
    }

    /// As [`Gpu::start_profile`], timing whole passes (one per tape op) even where the
    /// adapter could time each dispatch inside a pass.
    pub fn start_profile_per_pass(&self) -> Result<()> {
        self.start_profile_with(false)
    }

    fn start_profile_with(&self, inside_passes: bool) -> Result<()> {
        if !self.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            return Err(Error::Unsupported {
                op: "profile",
                variant: "timestamp queries".into(),
                why: format!(
                    "the adapter '{}' has no timestamp queries",
                    self.info().name
                ),
            });
        }
        let mut slot = lock(&self.profiler);
        if slot.is_some() {
            return Err(Error::Invalid {
                what: "profile".into(),
                why: "a profile is already being recorded".into(),
            });
        }
        *slot = Some(Profiler {
            sets: Vec::new(),
            used: 0,
            intervals: Vec::new(),
            inside_passes,
            open: None,
        });
        Ok(())
    }

    /// Runs `work` with the profile (if any) set aside: what it dispatches is not timed
    /// (kernel tuning measurements made while a profile is recorded).
    pub(crate) async fn unprofiled<T>(&self, work: impl Future<Output = T>) -> T {
        let _aside = SetAside {
            gpu: self,
            held: lock(&self.profiler).take(),
        };
        work.await
    }

    /// Records `dispatch` into `pass`, bracketed by timestamps when profiling inside passes,
    /// and notes it in the profile.
    pub(crate) fn profiled(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        entry: &'static str,
        work: Work,
        dispatch: impl FnOnce(&mut wgpu::ComputePass<'_>),
    ) {
        let mut slot = lock(&self.profiler);
        let Some(profiler) = slot.as_mut() else {
            drop(slot);
            return dispatch(pass);
        };
        if profiler.inside_passes {
            let (set, index) = profiler.next_pair(&self.device);
            profiler.intervals.push(Interval {
                start: profiler.used - 2,
                dispatches: vec![(entry, work)],
            });
            pass.write_timestamp(&set, index);
            dispatch(pass);
            pass.write_timestamp(&set, index + 1);
        } else {
            if let Some(open) = profiler.open {
                profiler.intervals[open].dispatches.push((entry, work));
            }
            dispatch(pass);
        }
    }

    /// When profiling on an adapter that times only whole passes: the timestamp writes for
    /// a new pass, whose time then goes to the dispatches recorded into it. `None` when not
    /// profiling or when timestamps go inside passes.
    pub fn profile_pass_timestamps(&self) -> Option<(wgpu::QuerySet, u32)> {
        let mut slot = lock(&self.profiler);
        let profiler = slot.as_mut().filter(|p| !p.inside_passes)?;
        let (set, index) = profiler.next_pair(&self.device);
        profiler.intervals.push(Interval {
            start: profiler.used - 2,
            dispatches: Vec::new(),
        });
        profiler.open = Some(profiler.intervals.len() - 1);
        Some((set, index))
    }

    /// Ends the profile: resolves the timestamps of work submitted since
    /// [`Gpu::start_profile`] (submit it first) and groups them by entry point.
    pub async fn finish_profile(&self) -> Result<Profile> {
        let Some(profiler) = lock(&self.profiler).take() else {
            return Err(Error::Invalid {
                what: "profile".into(),
                why: "no profile is being recorded".into(),
            });
        };
        let mut ticks = Vec::with_capacity(profiler.used as usize);
        for (i, set) in profiler.sets.iter().enumerate() {
            let count = (profiler.used - i as u32 * QUERIES_PER_SET).min(QUERIES_PER_SET);
            let bytes = count as u64 * 8;
            let resolved = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profile ticks"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let mut encoder = self.device.create_command_encoder(&Default::default());
            encoder.resolve_query_set(set, 0..count, &resolved, 0);
            self.queue.submit([encoder.finish()]);
            ticks.extend(
                self.read::<u32>(&resolved, count as usize * 2)
                    .await?
                    .chunks(2)
                    .map(|pair| pair[0] as u64 | (pair[1] as u64) << 32),
            );
        }
        let period = self.queue.get_timestamp_period() as f64;
        let intervals: Vec<Interval> = profiler
            .intervals
            .into_iter()
            .filter(|i| !i.dispatches.is_empty())
            .collect();
        Ok(Profile::from_intervals(&intervals, &ticks, period))
    }
}
