// The uniform and the memory layout of the attention shaders, included before each
// (attention.wgsl reads the layout from the uniform; attention_tiled.wgsl from override
// constants of the same names in capitals, so its address arithmetic folds).
// Position `row` of head `bh` (bh = batch × heads) lies: in q at q_at(bh, row), in k and v
// k_offset and v_offset further on, in o and d_o at o_at(bh, row); d floats each. The
// gradients of q, k and v lie as q, k and v do; lse and delta are [bh, t]. With heads 1
// and both strides d that is one [bh, t, d] tensor each; with heads H, in_stride 3·H·d and
// out_stride H·d it is a Transformer's packed projection [batch·t, 3·H·d] (q, k and v
// side by side in each row, one buffer bound three times) and its output [batch·t, H·d].

struct Params {
    bh: u32,         // batch × heads
    t: u32,          // sequence length
    d: u32,          // head dimension (the shaders' override D)
    scale: f32,      // 1 / sqrt(d)
    heads: u32,      // heads side by side in a row (1: a tensor of heads)
    in_stride: u32,  // floats from one position of q, k, v to the next
    k_offset: u32,   // first column of k (and dk) in its rows
    v_offset: u32,   // first column of v (and dv) in its rows
    out_stride: u32, // floats from one position of o, d_o to the next
    accumulate: u32, // bits 1, 2, 4: add the gradient of q, k, v to what its buffer holds
    // Bit 1: dk and dv are one buffer (the packed layout), bound once at dk's binding, since
    // WebGPU refuses a writable buffer bound twice: dv is written through dk's binding. Bit
    // 2: dq too (the one-pass kernel).
    grads_shared: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
