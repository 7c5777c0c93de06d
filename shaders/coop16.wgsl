// Tile prelude of matmul_coop.wgsl: 16x16x16 cooperative matrices, f16 A and B, f32 C
// (NVIDIA's and AMD's tensor cores through VK_KHR_cooperative_matrix).
alias TileA = coop_mat16x16<f16, A>;
alias TileB = coop_mat16x16<f16, B>;
alias TileC = coop_mat16x16<f32, C>;
const S: u32 = 16u;
