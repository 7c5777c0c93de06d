// Tile prelude of matmul_coop.wgsl: 8x8x8 cooperative matrices, f16 A and B, f32 C
// (Apple's simdgroup matrices; Mesa 26 lavapipe).
alias TileA = coop_mat8x8<f16, A>;
alias TileB = coop_mat8x8<f16, B>;
alias TileC = coop_mat8x8<f32, C>;
const S: u32 = 8u;
