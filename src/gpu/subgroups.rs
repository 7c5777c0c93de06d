//! Whether the device cuts subgroups from consecutive local invocation indices, which the
//! subgroup attention forward assumes (`shaders/attention_tiled_subgroups.wgsl`) and which
//! neither WebGPU nor Vulkan promises: probed on the device (`Gpu::new` does it; a device
//! from `Gpu::from_device` is probed when its program awaits [`Gpu::probe_subgroups`]).
//! Until a probe has passed, the plain forward runs.

use std::sync::atomic::Ordering;

use super::context::Gpu;
use super::pipeline::{Kernel, Shader};
use crate::error::Result;

/// The probe: each invocation writes its subgroup lane, the subgroup size and three
/// shuffled local indices (a [`ProbeRecord`]).
pub const SUBGROUP_PROBE: Shader = Shader {
    name: "probe_subgroups",
    wgsl: include_str!("../../shaders/probe_subgroups.wgsl"),
    uniform_bytes: std::mem::size_of::<Params>(),
};

/// The probe's workgroup size (the attention forward's) and workgroups run.
const WORKGROUP: u32 = 64;
const WORKGROUPS: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    invocations: u32,
    _pad: [u32; 3],
}

/// What the probe wrote for one invocation: its subgroup lane, the subgroup size, and
/// the local index that `subgroupShuffleXor` brought it from lanes 1, 2 and 4 away.
pub type ProbeRecord = [u32; 5];

/// Whether `records` (the probe's, workgroup after workgroup of `workgroup` invocations)
/// show one subgroup size, a power of two, every invocation's lane equal to its local
/// index modulo that size (subgroups are consecutive runs of local invocations, each
/// starting at a multiple of the size), and every shuffle by x < size bringing the value
/// of local index `index ^ x`, as the subgroup attention forward's shuffles need.
pub fn consecutive(records: &[ProbeRecord], workgroup: u32) -> bool {
    let Some(&[_, size, ..]) = records.first() else {
        return false;
    };
    let good = |(i, r): (usize, &ProbeRecord)| {
        let local = i as u32 % workgroup;
        let shuffles = [1u32, 2, 4].iter().zip(&r[2..]);
        r[1] == size
            && r[0] == local % size
            && shuffles
                .filter(|&(&x, _)| x < size)
                .all(|(&x, &from)| from == local ^ x)
    };
    size.is_power_of_two() && records.iter().enumerate().all(good)
}

impl Gpu {
    /// Runs the subgroup probe (one small dispatch and a read of 8 KiB) and remembers its
    /// answer: whether subgroups here are consecutive runs of local invocations. False,
    /// without running anything, on a device without `wgpu::Features::SUBGROUP`.
    pub async fn probe_subgroups(&self) -> Result<bool> {
        let mut consecutive_here = false;
        if self.features().contains(wgpu::Features::SUBGROUP) {
            let invocations = WORKGROUP * WORKGROUPS;
            let words = 8 * invocations as usize;
            let out = self.zeroed_f32("subgroup probe", words);
            let params = Params {
                invocations,
                _pad: [0; 3],
            };
            let kernel = Kernel::new(SUBGROUP_PROBE, "probe_subgroups");
            self.run(|pass| self.dispatch(pass, &kernel, &params, &[&out], [WORKGROUPS, 1, 1]))
                .await?;
            let flat: Vec<u32> = self.read(&out, words).await?;
            let records: Vec<ProbeRecord> = flat
                .chunks_exact(8)
                .map(|c| [c[0], c[1], c[2], c[3], c[4]])
                .collect();
            consecutive_here = consecutive(&records, WORKGROUP);
        }
        self.subgroups_consecutive
            .store(consecutive_here, Ordering::Relaxed);
        Ok(consecutive_here)
    }

    /// Whether a probe on this device found subgroups cut from consecutive local
    /// invocations (false until one has run: see [`Gpu::probe_subgroups`]).
    pub fn subgroups_consecutive(&self) -> bool {
        self.subgroups_consecutive.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::{ProbeRecord, consecutive};

    /// 128 invocations (two workgroups of 64) in subgroups of `size`, lane `lane(i)` for
    /// local index i, shuffles honest for that layout unless `shuffle` says otherwise.
    fn layout(
        size: u32,
        lane: impl Fn(u32) -> u32,
        shuffle: impl Fn(u32, u32) -> u32,
    ) -> Vec<ProbeRecord> {
        (0..128u32)
            .map(|i| {
                let local = i % 64;
                [
                    lane(local),
                    size,
                    shuffle(local, 1),
                    shuffle(local, 2),
                    shuffle(local, 4),
                ]
            })
            .collect()
    }

    #[test]
    fn consecutive_runs_pass_and_any_other_layout_fails() {
        let honest = |local: u32, x: u32| local ^ x;
        assert!(consecutive(&layout(8, |i| i % 8, honest), 64));
        assert!(consecutive(&layout(32, |i| i % 32, honest), 64));
        assert!(consecutive(&layout(64, |i| i, honest), 64));
        // Shuffles past the subgroup are not checked: subgroups of 4 and 2.
        assert!(consecutive(
            &layout(4, |i| i % 4, |l, x| if x < 4 { l ^ x } else { 999 }),
            64
        ));
        assert!(consecutive(
            &layout(2, |i| i % 2, |l, x| if x < 2 { l ^ x } else { 999 }),
            64
        ));
        // Interleaved: invocation i in subgroup i % 8, as no promise forbids.
        assert!(!consecutive(&layout(8, |i| i / 8 % 8, honest), 64));
        // Runs that do not start at a multiple of the size.
        assert!(!consecutive(&layout(8, |i| (i + 1) % 8, honest), 64));
        // Lanes that look right but shuffles that bring another invocation's value.
        assert!(!consecutive(
            &layout(8, |i| i % 8, |l, x| l ^ (x * 2 % 8)),
            64
        ));
        // A size not a power of two, mixed sizes, nothing read.
        assert!(!consecutive(&layout(12, |i| i % 12, honest), 64));
        let mut mixed = layout(8, |i| i % 8, honest);
        mixed[5][1] = 16;
        assert!(!consecutive(&mixed, 64));
        assert!(!consecutive(&[], 64));
    }
}
