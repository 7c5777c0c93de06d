// The grid-stride loop of the elementwise kernels, included before each shader that has
// one. `kernels::grid_stride` launches a 1D grid of at most GRID_STRIDE_GROUPS workgroups
// of GRID_WG invocations; each invocation walks the elements from its global index on:
//     for (var i = grid_first(wg, lid); i < n; i += grid_step(nwg)) { ... }

const GRID_WG: u32 = 256u;

fn grid_first(wg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return wg.x * GRID_WG + lid.x;
}

fn grid_step(nwg: vec3<u32>) -> u32 {
    return nwg.x * GRID_WG;
}
