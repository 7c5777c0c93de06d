//! `Tensor` (a GPU buffer with a shape and an id on its tape) and `Param` (a trainable
//! tensor with its gradient buffer).

use crate::gpu::{Error, Gpu, Result};
use crate::kernels::Dtype;

/// A tensor on the GPU: row-major `shape`, a buffer holding at least that many elements of
/// `dtype` (f32; f16 for the activations of a mixed-precision tape), and the id of its
/// slot on the tape that made it. Cloning is cheap (the buffer is shared).
#[derive(Clone, Debug)]
pub struct Tensor {
    pub(crate) id: usize,
    pub(crate) shape: Vec<usize>,
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) dtype: Dtype,
}

impl Tensor {
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The type of its elements.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size of the last dimension (1 for a scalar).
    pub fn cols(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// Product of all dimensions but the last.
    pub fn rows(&self) -> usize {
        self.len() / self.cols().max(1)
    }

    /// The buffer holding the values (it may be longer than `len`).
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

/// A trainable parameter: its values, the gradient that `Tape::backward` accumulates into
/// (zero it between steps), and whether weight decay applies to it (not to α, biases or
/// norm gains).
#[derive(Debug)]
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    /// [shape]
    pub value: wgpu::Buffer,
    /// [shape]: ∂loss/∂value, accumulated (read it after `Tape::flush` has submitted the
    /// backward pass).
    pub grad: wgpu::Buffer,
    pub decay: bool,
}

impl Param {
    /// A parameter holding `init` (whose length must match `shape`, at least one element),
    /// gradient zeroed.
    pub fn new(gpu: &Gpu, name: &str, shape: &[usize], init: &[f32], decay: bool) -> Result<Param> {
        let len = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|&len| len == init.len() && len > 0);
        let Some(len) = len else {
            return Err(Error::Shape {
                op: "parameter",
                expected: format!("{name}: at least one value, as many as shape {shape:?} holds"),
                got: format!("{} initial values", init.len()),
            });
        };
        Ok(Param {
            name: name.to_string(),
            shape: shape.to_vec(),
            value: gpu.upload(name, init),
            grad: gpu.zeroed_f32(name, len),
            decay,
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Errors unless `len` values fill `shape` exactly (at least one value; a shape whose size
/// overflows is refused too).
pub(crate) fn check_data_len(op: &'static str, len: usize, shape: &[usize]) -> Result<()> {
    let want = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if want != Some(len) || len == 0 {
        return Err(Error::Shape {
            op,
            expected: match want {
                Some(want) => format!("{want} elements for shape {shape:?} (at least 1)"),
                None => format!("a shape whose size fits in memory, not {shape:?}"),
            },
            got: format!("{len}"),
        });
    }
    Ok(())
}
