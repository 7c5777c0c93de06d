// What the convolution shaders (conv2d.wgsl, conv2d_reg.wgsl) share: the parameters,
// the bindings of the GEMM-shaped kernels, the image gather and the forward store.
// Compiled after an element prelude (elem_*.wgsl): the GEMM's operands (and the bias) are
// `Operand`, its output `Out` (f32 for the backward-to-weight's partial sums); sums f32.

struct Params {
    batch: u32,
    c_in: u32,
    h: u32,          // input height
    w: u32,          // input width
    c_out: u32,
    kh: u32,         // kernel height
    kw: u32,         // kernel width
    stride: u32,
    pad: u32,
    oh: u32,         // output height
    ow: u32,         // output width
    has_bias: u32,   // forward: add bias[co]
    accumulate: u32, // 1: out += result, 0: out = result
    m: u32,          // GEMM rows of this MODE
    n: u32,          // GEMM columns (MODE 1: of the whole image, all phases)
    k: u32,          // GEMM reduction length (MODE 1: all taps)
    k_split: u32,    // reduction length per z-workgroup (MODE 2; k otherwise)
    splits: u32,     // z-workgroups (conv2d_weight_finish)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Bindings of the GEMM-shaped kernels, by pass:
//                              out (1)                         a (2)        b (3)    bias (4)
//   forward                    y: [batch, c_out, oh, ow]       w            x        bias: [c_out]
//   backward input             dx: [batch, c_in, h, w]         w            dy       (unused)
//   backward weight            partial: [splits, c_out, c_in·kh·kw]  dy     x        (unused)
// with w: [c_out, c_in, kh, kw], x: [batch, c_in, h, w], dy: [batch, c_out, oh, ow].
@group(0) @binding(1) var<storage, read_write> out: array<Out>;
@group(0) @binding(2) var<storage, read> a_src: array<Operand>;
@group(0) @binding(3) var<storage, read> b_src: array<Operand>;
@group(0) @binding(4) var<storage, read> bias: array<Operand>;

// x at (n, c, y, x) or 0 outside the image.
fn image_at(n: u32, c: u32, y: i32, x: i32) -> f32 {
    if (y < 0 || x < 0 || y >= i32(p.h) || x >= i32(p.w)) {
        return 0.0;
    }
    return f32(b_src[((n * p.c_in + c) * p.h + u32(y)) * p.w + u32(x)]);
}

// x at tap `tap` (of kh·kw) of the window of output pixel `pix` (of oh·ow) of image n,
// channel c: what the forward and backward-to-weight GEMMs gather.
fn window_at(n: u32, c: u32, pix: u32, tap: u32) -> f32 {
    let y = i32((pix / p.ow) * p.stride + tap / p.kw) - i32(p.pad);
    let x = i32((pix % p.ow) * p.stride + tap % p.kw) - i32(p.pad);
    return image_at(n, c, y, x);
}

// Index of y[n, co, pixel] for the forward GEMM's (row co, column n·oh·ow + pixel).
fn forward_index(co: u32, col: u32) -> u32 {
    let pixels = p.oh * p.ow;
    return ((col / pixels) * p.c_out + co) * pixels + col % pixels;
}

// y[n, co, pixel] (+)= value (+ bias[co]) for the forward GEMM's column n·oh·ow + pixel.
fn store_forward(co: u32, col: u32, value: f32) {
    let idx = forward_index(co, col);
    var v = value;
    if (p.has_bias == 1u) {
        v += f32(bias[co]);
    }
    if (p.accumulate == 1u) {
        v += f32(out[idx]);
    }
    out[idx] = Out(v);
}

