// Element prelude: f16 operands and outputs (f16 activations in, f16 activations out).
enable f16;
alias Operand = f16; // the inputs: A, B and bias
alias Out = f16;     // the outputs: C and pre
