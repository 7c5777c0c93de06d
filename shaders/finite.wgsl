// is_finite, for the shaders that test for overflow (included before them).

// Whether v is neither inf nor NaN, by its exponent bits: compilers may fold v != v away,
// and WGSL has no isinf or isnan.
fn is_finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}
