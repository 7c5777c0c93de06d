// Element prelude: f16 operands, f32 outputs (a weight gradient from f16 activations).
enable f16;
alias Operand = f16; // the inputs: A, B and bias
alias Out = f32;     // the outputs: C and pre
