// Register-blocked convolution kernels (what software Vulkan wants: no workgroup memory,
// no barriers), compiled after conv2d_common.wgsl.
//
// ---- register-blocked kernels: 8 channels × 4 pixels (or taps) per invocation, operands
// read straight from storage (no workgroup memory, no barriers), the window walked with no
// division in the inner loop. Bindings as the MODE of the same pass. ----

const REG_ROWS: u32 = 8u;
const REG_COLS: u32 = 4u;

// Forward: invocation i computes output channels from 8·(i / col_blocks) at the 4 output
// pixels from 4·(i % col_blocks), so neighbouring invocations read neighbouring pixels.
@compute @workgroup_size(64)
fn conv2d_forward_reg(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let pixels = p.oh * p.ow;
    let i = gid.y * nwg.x * 64u + gid.x;
    let col_blocks = (p.n + REG_COLS - 1u) / REG_COLS;
    let block = vec2<u32>((i / col_blocks) * REG_ROWS, (i % col_blocks) * REG_COLS);
    let co0 = block.x;
    if (co0 >= p.c_out) {
        return;
    }
    // Per column: the image's base offset and the window's top-left corner.
    var base: array<u32, 4>;
    var y0: array<i32, 4>;
    var x0: array<i32, 4>;
    var live: array<bool, 4>;
    for (var j = 0u; j < REG_COLS; j++) {
        let col = block.y + j;
        live[j] = col < p.n;
        let c = min(col, p.n - 1u);
        let pix = c % pixels;
        base[j] = (c / pixels) * p.c_in * p.h * p.w;
        y0[j] = i32((pix / p.ow) * p.stride) - i32(p.pad);
        x0[j] = i32((pix % p.ow) * p.stride) - i32(p.pad);
    }
    var rows: array<u32, 8>;
    for (var r = 0u; r < REG_ROWS; r++) {
        rows[r] = min(co0 + r, p.c_out - 1u) * p.k;
    }
    var acc: array<vec4<f32>, 8>;
    var kk = 0u;
    for (var ci = 0u; ci < p.c_in; ci++) {
        let plane = ci * p.h * p.w;
        for (var ky = 0u; ky < p.kh; ky++) {
            for (var kx = 0u; kx < p.kw; kx++) {
                var bv = vec4<f32>(0.0);
                for (var j = 0u; j < REG_COLS; j++) {
                    let y = y0[j] + i32(ky);
                    let x = x0[j] + i32(kx);
                    if (live[j] && y >= 0 && x >= 0 && y < i32(p.h) && x < i32(p.w)) {
                        bv[j] = f32(b_src[base[j] + plane + u32(y) * p.w + u32(x)]);
                    }
                }
                for (var r = 0u; r < REG_ROWS; r++) {
                    acc[r] += f32(a_src[rows[r] + kk]) * bv;
                }
                kk++;
            }
        }
    }
    for (var r = 0u; r < REG_ROWS; r++) {
        for (var j = 0u; j < REG_COLS; j++) {
            if (co0 + r < p.c_out && live[j]) {
                store_forward(co0 + r, block.y + j, acc[r][j]);
            }
        }
    }
}

// Backward to the input: 8 input channels × 4 input pixels of one row that share their
// column's remainder modulo the stride (ix = r, r + s, r + 2s, ...), so that the same
// filter taps reach all four and the taps that reach none (3 in 4 at stride 2) are skipped.
@compute @workgroup_size(64)
fn conv2d_backward_input_reg(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let s = p.stride;
    // Column blocks per image row: s remainders × chunks of 4 of the ⌈w/s⌉ columns each.
    let chunks = ((p.w + s - 1u) / s + REG_COLS - 1u) / REG_COLS;
    let row_blocks = s * chunks;
    let col_blocks = p.batch * p.h * row_blocks;
    let i = gid.y * nwg.x * 64u + gid.x;
    let ci0 = (i / col_blocks) * REG_ROWS;
    if (ci0 >= p.c_in) {
        return;
    }
    let cb = i % col_blocks;
    let image_row = cb / row_blocks;       // n · h + iy
    let n = image_row / p.h;
    let iy = image_row % p.h;
    let rem = (cb % row_blocks) / chunks;  // the columns' remainder r
    let ix0 = rem + s * REG_COLS * (cb % chunks);
    let taps = p.kh * p.kw;
    var rows: array<u32, 8>;
    for (var r = 0u; r < REG_ROWS; r++) {
        rows[r] = min(ci0 + r, p.c_in - 1u) * taps;
    }
    let dy_base = n * p.c_out * p.oh * p.ow;
    var acc: array<vec4<f32>, 8>;
    // Taps with (iy + pad − ky) and (ix + pad − kx) multiples of s.
    for (var ky = (iy + p.pad) % s; ky < p.kh; ky += s) {
        let ty = i32(iy + p.pad) - i32(ky);
        let oy = ty / i32(s);
        if (ty < 0 || oy >= i32(p.oh)) {
            continue;
        }
        for (var kx = (ix0 + p.pad) % s; kx < p.kw; kx += s) {
            // ox of column j: (ix0 + s·j + pad − kx) / s = ox0 + j (exact: kx was picked so
            // that s divides ix0 + pad − kx, which may be negative)
            let ox0 = (i32(ix0 + p.pad) - i32(kx)) / i32(s);
            let tap = ky * p.kw + kx;
            for (var co = 0u; co < p.c_out; co++) {
                let dy_row = dy_base + (co * p.oh + u32(oy)) * p.ow;
                var bv = vec4<f32>(0.0);
                for (var j = 0u; j < REG_COLS; j++) {
                    let ox = ox0 + i32(j);
                    let ix = ix0 + s * j;
                    if (ox >= 0 && ox < i32(p.ow) && ix < p.w) {
                        bv[j] = f32(b_src[dy_row + u32(ox)]);
                    }
                }
                let w_co = co * p.c_in * taps + tap;
                for (var r = 0u; r < REG_ROWS; r++) {
                    acc[r] += f32(a_src[w_co + rows[r]]) * bv;
                }
            }
        }
    }
    for (var r = 0u; r < REG_ROWS; r++) {
        let ci = ci0 + r;
        for (var j = 0u; j < REG_COLS; j++) {
            let ix = ix0 + s * j;
            if (ci < p.c_in && ix < p.w) {
                let idx = ((n * p.c_in + ci) * p.h + iy) * p.w + ix;
                var v = acc[r][j];
                if (p.accumulate == 1u) {
                    v += f32(out[idx]);
                }
                out[idx] = Out(v);
            }
        }
    }
}

// Backward to the weights, first stage: 8 output channels × 4 consecutive (ci, ky, kx)
// taps per invocation, summed over the pixels of this z-split (k_split of the
// batch·oh·ow), written as partial sums like MODE 2 (`conv2d_weight_finish` adds them).
// Bindings as MODE 2: out = partial, a = dy, b = x.
@compute @workgroup_size(64)
fn conv2d_backward_weight_reg(@builtin(global_invocation_id) gid: vec3<u32>) {
    // p.m = c_out rows, p.n = c_in·kh·kw columns; gid.x picks the 8 × 4 block, gid.y the
    // split.
    let i = gid.x;
    let col_blocks = (p.n + REG_COLS - 1u) / REG_COLS;
    let co0 = (i / col_blocks) * REG_ROWS;
    if (co0 >= p.m) {
        return;
    }
    let col0 = (i % col_blocks) * REG_COLS;
    let split = gid.y;
    let taps = p.kh * p.kw;
    // Per column: the input plane's offset within an image and the tap.
    var plane: array<u32, 4>;
    var ky: array<i32, 4>;
    var kx: array<i32, 4>;
    for (var j = 0u; j < REG_COLS; j++) {
        let c = min(col0 + j, p.n - 1u);
        plane[j] = (c / taps) * p.h * p.w;
        ky[j] = i32((c % taps) / p.kw) - i32(p.pad);
        kx[j] = i32((c % taps) % p.kw) - i32(p.pad);
    }
    let pixels = p.oh * p.ow;
    let k_begin = split * p.k_split;
    let k_end = min(p.k, k_begin + p.k_split);
    var acc: array<vec4<f32>, 8>;
    for (var kk = k_begin; kk < k_end; kk++) {
        let n = kk / pixels;
        let pix = kk % pixels;
        let oy = i32((pix / p.ow) * p.stride);
        let ox = i32((pix % p.ow) * p.stride);
        let image = n * p.c_in * p.h * p.w;
        var bv = vec4<f32>(0.0);
        for (var j = 0u; j < REG_COLS; j++) {
            let y = oy + ky[j];
            let x = ox + kx[j];
            if (y >= 0 && x >= 0 && y < i32(p.h) && x < i32(p.w)) {
                bv[j] = f32(b_src[image + plane[j] + u32(y) * p.w + u32(x)]);
            }
        }
        let dy_base = n * p.c_out * pixels + pix;
        for (var r = 0u; r < REG_ROWS; r++) {
            acc[r] += f32(a_src[dy_base + min(co0 + r, p.m - 1u) * pixels]) * bv;
        }
    }
    for (var r = 0u; r < REG_ROWS; r++) {
        for (var j = 0u; j < REG_COLS; j++) {
            if (co0 + r < p.m && col0 + j < p.n) {
                out[(split * p.m + co0 + r) * p.n + col0 + j] = Out(acc[r][j]);
            }
        }
    }
}

