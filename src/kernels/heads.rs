//! Launchers for `shaders/heads.wgsl`: attention heads between the row layout of a linear
//! layer ([batch·t, stride], columns offset .. offset + heads·d) and the head layout of
//! the attention kernels ([batch·heads, t, d]).

use crate::gpu::{Error, Gpu, Kernel, Recorder, Result, Shader};

use super::{check_len, check_nonempty, elements, grid_stride};

pub(crate) const SHADER: Shader = Shader {
    name: "heads",
    wgsl: super::wgsl!("grid.wgsl", "heads.wgsl"),
    uniform_bytes: std::mem::size_of::<Params>(),
};

/// Where the heads sit in the row layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLayout {
    pub batch: u32,
    pub t: u32,
    pub heads: u32,
    pub d: u32,
    /// Elements per row of the row-layout tensor (heads·d, or 3·heads·d for a fused qkv).
    pub stride: u32,
    /// First column of these heads in a row.
    pub offset: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    t: u32,
    heads: u32,
    d: u32,
    stride: u32,
    offset: u32,
    accumulate: u32,
    _pad: u32,
}

fn launch(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    entry: &'static str,
    out: &wgpu::Buffer,
    x: &wgpu::Buffer,
    l: &HeadLayout,
    accumulate: bool,
) -> Result<()> {
    check_nonempty(
        entry,
        &[
            ("batch", l.batch),
            ("t", l.t),
            ("heads", l.heads),
            ("d", l.d),
        ],
    )?;
    let width = l.heads as u64 * l.d as u64;
    if l.offset as u64 + width > l.stride as u64 {
        return Err(Error::Shape {
            op: entry,
            expected: format!(
                "columns {}..{} inside rows of {}",
                l.offset,
                l.offset as u64 + width,
                l.stride
            ),
            got: format!("{l:?}"),
        });
    }
    let heads_len = elements(entry, &[l.batch, l.heads, l.t, l.d])?;
    let rows_len = elements(entry, &[l.batch, l.t, l.stride])?;
    let (out_len, x_len) = if entry == "rows_to_heads" {
        (heads_len, rows_len)
    } else {
        (rows_len, heads_len)
    };
    check_len(entry, "out", out, out_len)?;
    check_len(entry, "x", x, x_len)?;
    let params = Params {
        batch: l.batch,
        t: l.t,
        heads: l.heads,
        d: l.d,
        stride: l.stride,
        offset: l.offset,
        accumulate: accumulate as u32,
        _pad: 0,
    };
    gpu.dispatch(
        pass,
        &Kernel::new(SHADER, entry),
        &params,
        &[out, x],
        grid_stride(heads_len),
    )
}

/// out [batch·heads, t, d] = the heads of x [batch·t, stride].
pub fn rows_to_heads(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    out: &wgpu::Buffer,
    x: &wgpu::Buffer,
    layout: &HeadLayout,
) -> Result<()> {
    launch(gpu, pass, "rows_to_heads", out, x, layout, false)
}

/// The heads of out [batch·t, stride] (+)= x [batch·heads, t, d]; other columns untouched.
pub fn heads_to_rows(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    out: &wgpu::Buffer,
    x: &wgpu::Buffer,
    layout: &HeadLayout,
    accumulate: bool,
) -> Result<()> {
    launch(gpu, pass, "heads_to_rows", out, x, layout, accumulate)
}
