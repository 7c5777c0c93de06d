// The workgroup reductions the row and reduction kernels share (softmax, layernorm,
// cross-entropy, batchnorm, reduce, rezero), included before each of them.

// Invocations per workgroup, a power of two; Rust sets it per device where a kernel's
// rows are reduced (`Gpu::row_workgroup_size`), otherwise it stays 256. Declared here,
// first, as naga wants every override declared before its first use.
override WG: u32 = 256u;

var<workgroup> red: array<f32, WG>;

// The sum (or, with `take_max`, the maximum) of every invocation's `v`, returned to all of
// them; `red` is free again when it returns. Every invocation of the workgroup must call
// it (it holds barriers), with `l` its local index.
fn workgroup_reduce(l: u32, v: f32, take_max: bool) -> f32 {
    red[l] = v;
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if (l < s) {
            red[l] = select(red[l] + red[l + s], max(red[l], red[l + s]), take_max);
        }
    }
    workgroupBarrier();
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn workgroup_sum(l: u32, v: f32) -> f32 {
    return workgroup_reduce(l, v, false);
}

fn workgroup_max(l: u32, v: f32) -> f32 {
    return workgroup_reduce(l, v, true);
}

// Whether a backward kernel adds to gradient `bit` (`+=`) instead of writing it (`=`):
// `flags` holds one bit per gradient it writes, in the order of the launcher's `Grad`s
// (bit 1 the first, 2 the second, 4 the third); the tape's rule decides each.
fn accumulates(flags: u32, bit: u32) -> bool {
    return (flags & bit) != 0u;
}
