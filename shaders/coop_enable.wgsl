// Cooperative matrices (wgpu's EXPERIMENTAL_COOPERATIVE_MATRIX), first of matmul_coop's
// preludes: directives must precede every declaration.
enable wgpu_cooperative_matrix;
