// The subgroup probe (src/gpu/subgroups.rs): each invocation writes its subgroup lane, the
// subgroup size, and the local indices that subgroupShuffleXor brings it from lanes 1, 2
// and 4 away, for the host to check that subgroups are cut from consecutive local
// invocation indices and that shuffles pair the neighbours attention_tiled_subgroups.wgsl
// pairs.

struct Params {
    invocations: u32, // workgroups × 64
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// out: [workgroups × 64, 8]: lane, size, the shuffled index from lanes 1, 2, 4 away, 0, 0, 0
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(64)
fn probe_subgroups(@builtin(local_invocation_index) lid: u32,
                   @builtin(workgroup_id) wg: vec3<u32>,
                   @builtin(subgroup_invocation_id) lane: u32,
                   @builtin(subgroup_size) size: u32) {
    let at = wg.x * 64u + lid;
    // Every invocation shuffles (a shuffle in non-uniform control flow is undefined).
    let from1 = subgroupShuffleXor(lid, 1u);
    let from2 = subgroupShuffleXor(lid, 2u);
    let from4 = subgroupShuffleXor(lid, 4u);
    if (at < p.invocations) {
        let base = at * 8u;
        out[base] = lane;
        out[base + 1u] = size;
        out[base + 2u] = from1;
        out[base + 3u] = from2;
        out[base + 4u] = from4;
    }
}
