//! Checkpoints in the safetensors format (PyTorch users can open them): every parameter
//! by name as F32, plus string metadata describing the model. Written atomically
//! (`files::write_atomically`), so a crash never leaves half a file, and only when every
//! value is finite, so a diverged run never replaces a good checkpoint.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::gpu::{Error, Gpu, Result};
use crate::nn::{Mlp, MlpConfig, Resnet, ResnetConfig, Transformer, TransformerConfig};
use crate::optim::Optimizer;
use crate::tape::Param;

use super::core::RunPoint;

/// A checkpoint read from disk.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub metadata: HashMap<String, String>,
    /// name → (shape, values)
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

/// Reads `params` back from the GPU and writes them with `metadata` to `path` atomically.
pub async fn save(
    gpu: &Gpu,
    path: &Path,
    params: &[&Param],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let entries: Vec<Entry> = params
        .iter()
        .map(|p| (p.name.clone(), p.shape.clone(), &p.value))
        .collect();
    save_buffers(gpu, path, &entries, metadata).await
}

/// A named tensor to save: (name, shape, buffer holding at least that many f32).
pub type Entry<'a> = (String, Vec<usize>, &'a wgpu::Buffer);

/// Reads every entry back from the GPU and writes them with `metadata` to `path`
/// atomically (a temporary file, then a rename).
pub async fn save_buffers(
    gpu: &Gpu,
    path: &Path,
    entries: &[Entry<'_>],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let bytes = to_bytes(gpu, path, entries, metadata).await?;
    crate::files::write_atomically(path, &bytes).map_err(|e| Error::io(path, "write", e))
}

/// Reads every entry back from the GPU and serialises them with `metadata` and the kernel
/// choices in force: the checkpoint's bytes, for a caller that keeps them somewhere other
/// than a file (a browser's download or storage). `origin` names where they go, in errors.
/// A non-finite value is an [`Error::Diverged`]: a diverged run is never saved.
pub async fn to_bytes(
    gpu: &Gpu,
    origin: &Path,
    entries: &[Entry<'_>],
    mut metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    // The kernel choices in force, so that a resumed run repeats them exactly.
    let choices = gpu.tuning_in_force();
    metadata.insert(
        "tuning".into(),
        crate::gpu::tuning::format_choices(&choices),
    );
    let mut values = Vec::with_capacity(entries.len());
    for (name, shape, buffer) in entries {
        let data = gpu.read_f32(buffer, shape.iter().product()).await?;
        // A diverged run must never replace the last good checkpoint.
        if let Some(bad) = data.iter().find(|v| !v.is_finite()) {
            return Err(Error::Diverged {
                path: origin.to_path_buf(),
                why: format!("{name} holds {bad}"),
            });
        }
        values.push((name.clone(), shape.clone(), data));
    }
    let mut views = Vec::with_capacity(values.len());
    for (name, shape, data) in &values {
        let view = TensorView::new(Dtype::F32, shape.clone(), bytemuck::cast_slice(data))
            .map_err(|e| Error::data(origin, format!("parameter {name}: {e}")))?;
        views.push((name.clone(), view));
    }
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::data(origin, format!("cannot serialise: {e}")))
}

/// What a training loop makes of a checkpoint save: `Ok(true)` saved, `Ok(false)` not
/// saved because the model has diverged (said on stderr; the loop stops as for a non-finite
/// loss), any other error passed on.
pub fn saved_unless_diverged(result: Result<()>) -> Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(e @ Error::Diverged { .. }) => {
            eprintln!("{e}");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Most bytes a checkpoint file may hold (read whole into memory).
pub const MAX_CHECKPOINT_BYTES: u64 = 16 << 30;

/// Reads and validates a checkpoint: a safetensors file of F32 tensors.
pub fn load(path: &Path) -> Result<Checkpoint> {
    let bytes = crate::files::read_file_capped(path, MAX_CHECKPOINT_BYTES)
        .map_err(|e| Error::io(path, "read", e))?;
    from_bytes(&bytes, path)
}

/// Validates a checkpoint's bytes (a safetensors file of F32 tensors) read from anywhere;
/// `path` names where they came from, in errors.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::data(path, format!("not a valid safetensors file: {e}")))?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| Error::data(path, format!("not a valid safetensors header: {e}")))?;
    let mut tensors = HashMap::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(Error::data(
                path,
                format!("tensor {name} is {:?}, rezero reads F32", view.dtype()),
            ));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.insert(name, (view.shape().to_vec(), values));
    }
    Ok(Checkpoint {
        metadata: header.metadata().clone().unwrap_or_default(),
        tensors,
    })
}

impl Checkpoint {
    /// A metadata value, or an error naming the file and the key.
    pub fn meta(&self, path: &Path, key: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| Error::data(path, format!("metadata has no '{key}'")))
    }

    /// Errors unless the checkpoint holds a model of this kind ("mlp", "transformer").
    pub fn expect_model(&self, path: &Path, kind: &str) -> Result<()> {
        match self.meta(path, "model")? {
            found if found == kind => Ok(()),
            found => Err(Error::data(
                path,
                format!("holds a {found} model, not a {kind}"),
            )),
        }
    }

    /// A metadata value parsed as a number (or any `FromStr`).
    pub fn meta_parse<T: std::str::FromStr>(&self, path: &Path, key: &str) -> Result<T> {
        let text = self.meta(path, key)?;
        text.parse()
            .map_err(|_| Error::data(path, format!("metadata '{key}' = '{text}' is not valid")))
    }

    /// Copies the stored values into `params`, matching names and shapes.
    pub fn restore(&self, gpu: &Gpu, path: &Path, params: &[&Param]) -> Result<()> {
        for p in params {
            let (shape, values) = self
                .tensors
                .get(&p.name)
                .ok_or_else(|| Error::data(path, format!("no tensor named {}", p.name)))?;
            if shape != &p.shape {
                return Err(Error::data(
                    path,
                    format!(
                        "tensor {} has shape {shape:?}, the model wants {:?}",
                        p.name, p.shape
                    ),
                ));
            }
            gpu.write(&p.value, values);
        }
        Ok(())
    }
}

/// Errors, naming the file, unless the model its metadata describes (its footprint, every
/// size multiplied with overflow checks) fits the device and this machine: checked before
/// anything is allocated, so a corrupt or hostile checkpoint cannot abort the process.
pub fn fits(
    gpu: &Gpu,
    path: &Path,
    footprint: Result<crate::nn::footprint::Footprint>,
) -> Result<()> {
    footprint.and_then(|f| f.check(gpu, 0)).map_err(|e| {
        Error::data(
            path,
            format!("its metadata describes a model that cannot be built here: {e}"),
        )
    })
}

/// String metadata from (key, value) pairs.
fn metadata_map<const N: usize>(pairs: [(&str, String); N]) -> HashMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Saves an MLP: its parameters and its configuration as metadata.
pub async fn save_mlp(gpu: &Gpu, model: &Mlp, path: &Path) -> Result<()> {
    save(gpu, path, &model.params(), mlp_metadata(model)).await
}

fn mlp_metadata(model: &Mlp) -> HashMap<String, String> {
    let c = &model.config;
    let metadata = [
        ("model", "mlp".to_string()),
        ("variant", c.variant.name().to_string()),
        ("depth", c.depth.to_string()),
        ("width", c.width.to_string()),
        ("inputs", c.inputs.to_string()),
        ("classes", c.classes.to_string()),
        ("alpha_init", c.alpha_init.to_string()),
        ("seed", c.seed.to_string()),
    ];
    metadata_map(metadata)
}

/// Loads an MLP saved by [`save_mlp`] or [`save_mlp_run`].
pub fn load_mlp(gpu: &Gpu, path: &Path) -> Result<Mlp> {
    mlp_from(gpu, path, &load(path)?)
}

/// The MLP a loaded checkpoint describes, with its weights.
pub fn mlp_from(gpu: &Gpu, path: &Path, checkpoint: &Checkpoint) -> Result<Mlp> {
    let config = mlp_config(path, checkpoint)?;
    fits(gpu, path, config.footprint(1, crate::kernels::Dtype::F32))?;
    let model = Mlp::new(gpu, config)?;
    checkpoint.restore(gpu, path, &model.params())?;
    Ok(model)
}

/// The configuration of the MLP a loaded checkpoint describes.
pub fn mlp_config(path: &Path, checkpoint: &Checkpoint) -> Result<MlpConfig> {
    checkpoint.expect_model(path, "mlp")?;
    Ok(MlpConfig {
        variant: checkpoint.meta_parse(path, "variant")?,
        depth: checkpoint.meta_parse(path, "depth")?,
        width: checkpoint.meta_parse(path, "width")?,
        inputs: checkpoint.meta_parse(path, "inputs")?,
        classes: checkpoint.meta_parse(path, "classes")?,
        alpha_init: checkpoint.meta_parse(path, "alpha_init")?,
        seed: checkpoint.meta_parse(path, "seed")?,
    })
}

/// Saves a Transformer: its parameters and its configuration as metadata.
pub async fn save_transformer(gpu: &Gpu, model: &Transformer, path: &Path) -> Result<()> {
    save(gpu, path, &model.params(), transformer_metadata(model)).await
}

/// Saves a Transformer with its optimizer's state, the step reached and the run's flags,
/// so that `rezero train lm --resume` can continue the run.
pub async fn save_transformer_run(
    gpu: &Gpu,
    model: &Transformer,
    optimizer: &Optimizer,
    at: RunPoint<'_>,
    path: &Path,
) -> Result<()> {
    let metadata = transformer_metadata(model);
    save_run(
        gpu,
        path,
        &model.params(),
        Vec::new(),
        metadata,
        optimizer,
        at,
    )
    .await
}

/// Saves an MLP run: parameters, optimizer state, epoch, step and flags.
pub async fn save_mlp_run(
    gpu: &Gpu,
    model: &Mlp,
    optimizer: &Optimizer,
    at: RunPoint<'_>,
    path: &Path,
) -> Result<()> {
    let metadata = mlp_metadata(model);
    save_run(
        gpu,
        path,
        &model.params(),
        Vec::new(),
        metadata,
        optimizer,
        at,
    )
    .await
}

/// Writes a resumable checkpoint: `params`, `extra` tensors, the optimizer's state, and
/// `metadata` with the epoch, step, optimizer steps and the run's flags added.
async fn save_run(
    gpu: &Gpu,
    path: &Path,
    params: &[&Param],
    extra: Vec<Entry<'_>>,
    mut metadata: HashMap<String, String>,
    optimizer: &Optimizer,
    at: RunPoint<'_>,
) -> Result<()> {
    let mut entries: Vec<Entry> = params
        .iter()
        .map(|p| (p.name.clone(), p.shape.clone(), &p.value))
        .collect();
    entries.extend(extra);
    entries.extend(optimizer.state_entries(params));
    metadata.insert("epoch".into(), at.epoch.to_string());
    metadata.insert("step".into(), at.step.to_string());
    metadata.insert("optimizer_steps".into(), optimizer.steps().to_string());
    metadata.insert("flags".into(), format_flags(at.flags));
    save_buffers(gpu, path, &entries, metadata).await
}

/// Flags as metadata text: one `--name=value` a line.
fn format_flags(flags: &[(String, String)]) -> String {
    flags.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

impl Checkpoint {
    /// Errors, naming the first flag that differs, unless `flags` (what a resumed run was
    /// given) match the flags saved with the run. A checkpoint saved without its flags is
    /// compared on its model's configuration only (by the caller).
    pub fn check_flags(&self, path: &Path, flags: &[(String, String)]) -> Result<()> {
        let Some(saved) = self.metadata.get("flags") else {
            return Ok(());
        };
        let saved: HashMap<&str, &str> = saved.lines().filter_map(|l| l.split_once('=')).collect();
        for (name, value) in flags {
            match saved.get(name.as_str()) {
                Some(old) if old == value => {}
                old => {
                    return Err(Error::Invalid {
                        what: "--resume".into(),
                        why: format!(
                            "{name} is {value} here, but the run in {} was started with {}: \
                             give the run's own flags to resume it, or start a new run with \
                             another --out",
                            path.parent().unwrap_or(path).display(),
                            old.map_or("no such flag".to_string(), |v| format!("{name} {v}"))
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Restores the optimizer state over `params` and returns the step a run checkpoint
/// reached.
pub fn restore_run(
    gpu: &Gpu,
    path: &Path,
    checkpoint: &Checkpoint,
    params: &[&Param],
    optimizer: &mut Optimizer,
) -> Result<u64> {
    let step: u64 = checkpoint.meta_parse(path, "step")?;
    let optimizer_steps: u64 = checkpoint.meta_parse(path, "optimizer_steps")?;
    // The kernels the run was trained with (a checkpoint from before they were recorded
    // has none): the rest of the run uses them too, so it ends as an unbroken run would.
    if let Some(text) = checkpoint.metadata.get("tuning") {
        let choices = crate::gpu::tuning::parse_choices(text)
            .map_err(|why| Error::data(path, format!("metadata 'tuning': {why}")))?;
        gpu.pin_tuning(&choices);
    }
    let lookup = |name: &str| checkpoint.tensors.get(name).map(|(_, v)| v.clone());
    optimizer
        .restore(gpu, params, optimizer_steps, &lookup)
        .map_err(|e| Error::data(path, e.to_string()))?;
    Ok(step)
}

fn transformer_metadata(model: &Transformer) -> HashMap<String, String> {
    let c = &model.config;
    let metadata = [
        ("model", "transformer".to_string()),
        ("variant", c.variant.name().to_string()),
        ("layers", c.layers.to_string()),
        ("d_model", c.d_model.to_string()),
        ("heads", c.heads.to_string()),
        ("d_ff", c.d_ff.to_string()),
        ("seq", c.seq.to_string()),
        ("gelu", c.gelu.to_string()),
        ("alpha_per_sublayer", c.alpha_per_sublayer.to_string()),
        ("alpha_init", c.alpha_init.to_string()),
        ("seed", c.seed.to_string()),
    ];
    metadata_map(metadata)
}

/// Loads a Transformer saved by [`save_transformer`] or [`save_transformer_run`].
pub fn load_transformer(gpu: &Gpu, path: &Path) -> Result<Transformer> {
    transformer_from(gpu, path, &load(path)?)
}

/// The Transformer a loaded checkpoint describes, with its weights.
pub fn transformer_from(gpu: &Gpu, path: &Path, checkpoint: &Checkpoint) -> Result<Transformer> {
    let config = transformer_config(path, checkpoint)?;
    fits(gpu, path, config.footprint(1, crate::kernels::Dtype::F32))?;
    let model = Transformer::new(gpu, config)?;
    checkpoint.restore(gpu, path, &model.params())?;
    Ok(model)
}

/// The configuration of the Transformer a loaded checkpoint describes.
pub fn transformer_config(path: &Path, checkpoint: &Checkpoint) -> Result<TransformerConfig> {
    checkpoint.expect_model(path, "transformer")?;
    Ok(TransformerConfig {
        variant: checkpoint.meta_parse(path, "variant")?,
        layers: checkpoint.meta_parse(path, "layers")?,
        d_model: checkpoint.meta_parse(path, "d_model")?,
        heads: checkpoint.meta_parse(path, "heads")?,
        d_ff: checkpoint.meta_parse(path, "d_ff")?,
        seq: checkpoint.meta_parse(path, "seq")?,
        gelu: checkpoint.meta_parse(path, "gelu")?,
        alpha_per_sublayer: checkpoint.meta_parse(path, "alpha_per_sublayer")?,
        alpha_init: checkpoint.meta_parse(path, "alpha_init")?,
        seed: checkpoint.meta_parse(path, "seed")?,
    })
}

/// Saves a ResNet run: parameters, BatchNorm running statistics, the optimizer's state,
/// the epoch and step reached and the flags (`rezero train resnet --resume` continues it).
pub async fn save_resnet_run(
    gpu: &Gpu,
    model: &Resnet,
    optimizer: &Optimizer,
    at: RunPoint<'_>,
    path: &Path,
) -> Result<()> {
    let running = model
        .batchnorms()
        .into_iter()
        .flat_map(|bn| bn.running_entries())
        .collect();
    let c = &model.config;
    let metadata = [
        ("model", "resnet".to_string()),
        ("variant", c.variant.name().to_string()),
        ("depth", c.depth.to_string()),
        ("in_channels", c.in_channels.to_string()),
        ("classes", c.classes.to_string()),
        ("shortcut", c.shortcut.name().to_string()),
        ("alpha_init", c.alpha_init.to_string()),
        ("seed", c.seed.to_string()),
    ];
    let metadata = metadata_map(metadata);
    save_run(gpu, path, &model.params(), running, metadata, optimizer, at).await
}

/// The ResNet a loaded checkpoint describes, with its weights and running statistics.
pub fn resnet_from(gpu: &Gpu, path: &Path, checkpoint: &Checkpoint) -> Result<Resnet> {
    checkpoint.expect_model(path, "resnet")?;
    let config = ResnetConfig {
        variant: checkpoint.meta_parse(path, "variant")?,
        depth: checkpoint.meta_parse(path, "depth")?,
        in_channels: checkpoint.meta_parse(path, "in_channels")?,
        classes: checkpoint.meta_parse(path, "classes")?,
        shortcut: checkpoint.meta_parse(path, "shortcut")?,
        alpha_init: checkpoint.meta_parse(path, "alpha_init")?,
        seed: checkpoint.meta_parse(path, "seed")?,
    };
    fits(
        gpu,
        path,
        config.footprint(1, 1, crate::kernels::Dtype::F32),
    )?;
    let model = Resnet::new(gpu, config)?;
    checkpoint.restore(gpu, path, &model.params())?;
    for bn in model.batchnorms() {
        for (name, shape, buffer) in bn.running_entries() {
            match checkpoint.tensors.get(&name) {
                Some((s, values)) if *s == shape => gpu.write(buffer, values),
                _ => {
                    return Err(Error::data(
                        path,
                        format!("no tensor {name} of shape {shape:?}"),
                    ));
                }
            }
        }
    }
    Ok(model)
}
