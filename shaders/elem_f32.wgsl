// Element prelude: f32 operands and outputs (the default). Its twins elem_f16.wgsl and
// elem_f16_out16.wgsl make the same kernels read f16 (and write f16); arithmetic stays f32.
alias Operand = f32; // the inputs: A, B and bias
alias Out = f32;     // the outputs: C and pre
