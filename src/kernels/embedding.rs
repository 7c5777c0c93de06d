//! Launchers for `shaders/embedding.wgsl`: row lookup and its deterministic scatter-add backward.
//! The looked-up rows and their gradient are f32 or f16 (`EmbeddingShape::dtype`); the
//! table and its gradient are f32.

use crate::gpu::{Error, Gpu, Kernel, Recorder, Result};

use super::precision::{check_len_of, require};
use super::{Dtype, Grad, Typed, check_len, check_nonempty, elements, grid_stride};

pub(crate) const SHADERS: Typed = super::typed!("embedding", Params, "grid.wgsl", "embedding.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    tokens: u32,
    dim: u32,
    vocab: u32,
    accumulate: u32,
}

/// Token positions grouped by id, computed on the host from the ids the data loader made:
/// `order` lists positions sorted by id (stable), `offsets[v]..offsets[v + 1]` are id v's.
///
/// ```
/// use rezero::kernels::embedding::IdGroups;
/// let groups = IdGroups::new(&[2, 0, 2, 1], 3).unwrap();
/// assert_eq!(groups.order, vec![1, 3, 0, 2]); // id 0 at position 1, id 1 at 3, id 2 at 0 and 2
/// assert_eq!(groups.offsets, vec![0, 1, 2, 4]);
/// assert!(IdGroups::new(&[3], 3).is_err()); // ids must be below the vocabulary size
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdGroups {
    pub order: Vec<u32>,
    pub offsets: Vec<u32>,
}

impl IdGroups {
    /// Groups `ids` by value; every id must be below `vocab`.
    pub fn new(ids: &[u32], vocab: u32) -> Result<IdGroups> {
        let mut counts = vec![0u32; vocab as usize + 1];
        for (t, &id) in ids.iter().enumerate() {
            if id >= vocab {
                return Err(Error::Invalid {
                    what: "embedding id".into(),
                    why: format!("ids[{t}] = {id} is not below the vocabulary size {vocab}"),
                });
            }
            counts[id as usize + 1] += 1;
        }
        for v in 0..vocab as usize {
            counts[v + 1] += counts[v];
        }
        let offsets = counts.clone();
        let mut next = counts;
        let mut order = vec![0u32; ids.len()];
        for (t, &id) in ids.iter().enumerate() {
            order[next[id as usize] as usize] = t as u32;
            next[id as usize] += 1;
        }
        Ok(IdGroups { order, offsets })
    }
}

/// out[t, :] (+)= table[ids[t], :]; out: [tokens, dim] of `shape.dtype`; table:
/// [vocab, dim] (f32); ids: [tokens] (u32). An id at or past `vocab` reads as a zero row.
pub fn embedding_forward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    out: &wgpu::Buffer,
    table: &wgpu::Buffer,
    ids: &wgpu::Buffer,
    shape: EmbeddingShape,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "embedding_forward";
    shape.check(OP, gpu, ("out", out), ("table", table))?;
    check_len(OP, "ids [tokens]", ids, shape.tokens as u64)?;
    gpu.dispatch(
        pass,
        &Kernel::new(SHADERS.get(shape.dtype), OP),
        &shape.params(accumulate),
        &[out, table, ids],
        grid_stride(shape.tokens as u64 * shape.dim as u64),
    )
}

/// Sizes of an embedding lookup, and the type of the rows it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmbeddingShape {
    /// Ids looked up.
    pub tokens: u32,
    /// Width of a row.
    pub dim: u32,
    /// Rows of the table.
    pub vocab: u32,
    /// The type of out and dout (the table and its gradient are f32).
    pub dtype: Dtype,
}

impl EmbeddingShape {
    /// `tokens` rows of `dim` f32 looked up in a table of `vocab` rows.
    pub fn new(tokens: u32, dim: u32, vocab: u32) -> EmbeddingShape {
        let dtype = Dtype::F32;
        EmbeddingShape {
            tokens,
            dim,
            vocab,
            dtype,
        }
    }

    /// Errors unless the device takes `dtype`, no size is 0, and the rows (or their
    /// gradient, of `dtype`) and the table (or its gradient, f32) are long enough.
    fn check(
        &self,
        op: &'static str,
        gpu: &Gpu,
        (rows_name, rows): (&str, &wgpu::Buffer),
        (table_name, table): (&str, &wgpu::Buffer),
    ) -> Result<()> {
        let EmbeddingShape {
            tokens,
            dim,
            vocab,
            dtype,
        } = *self;
        require(gpu, op, dtype)?;
        check_nonempty(op, &[("tokens", tokens), ("dim", dim), ("vocab", vocab)])?;
        let rows_len = elements(op, &[tokens, dim])?;
        check_len_of(
            op,
            &format!("{rows_name} [tokens, dim]"),
            rows,
            rows_len,
            dtype,
        )?;
        let table_len = elements(op, &[vocab, dim])?;
        check_len(op, &format!("{table_name} [vocab, dim]"), table, table_len)
    }

    fn params(&self, accumulate: bool) -> Params {
        Params {
            tokens: self.tokens,
            dim: self.dim,
            vocab: self.vocab,
            accumulate: accumulate as u32,
        }
    }
}

/// dtable[v, :] (+)= Σ_{t: ids[t] = v} dout[t, :], summed in a fixed order (deterministic);
/// rows no id names get 0 (or keep their value when `dtable` adds).
/// dtable: [vocab, dim] (f32); dout: [tokens, dim] of `shape.dtype`; order: [tokens];
/// offsets: [vocab + 1]
/// (both from [`IdGroups`], uploaded as u32).
pub fn embedding_backward(
    gpu: &Gpu,
    pass: &mut dyn Recorder,
    dtable: Grad,
    dout: &wgpu::Buffer,
    order: &wgpu::Buffer,
    offsets: &wgpu::Buffer,
    shape: EmbeddingShape,
) -> Result<()> {
    const OP: &str = "embedding_backward";
    shape.check(OP, gpu, ("dout", dout), ("dtable", dtable.buffer))?;
    let EmbeddingShape {
        tokens, dim, vocab, ..
    } = shape;
    check_len(OP, "order [tokens]", order, tokens as u64)?;
    check_len(OP, "offsets [vocab + 1]", offsets, vocab as u64 + 1)?;
    gpu.dispatch(
        pass,
        &Kernel::new(SHADERS.get(shape.dtype), OP),
        &shape.params(dtable.accumulate),
        &[dtable.buffer, dout, order, offsets],
        grid_stride(vocab as u64 * dim as u64),
    )
}
