//! Opening a device: the graphics API, the best adapter for the options, and the device
//! with the limits and optional features rezero uses where the adapter has them.

use super::context::GpuOptions;
use crate::error::{Error, Result};

/// Which graphics API to open the device with (`--backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

impl BackendChoice {
    fn backends(self) -> wgpu::Backends {
        match self {
            BackendChoice::Vulkan => wgpu::Backends::VULKAN,
            BackendChoice::Metal => wgpu::Backends::METAL,
            BackendChoice::Dx12 => wgpu::Backends::DX12,
            BackendChoice::Gl => wgpu::Backends::GL,
        }
    }
}

impl std::str::FromStr for BackendChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "vulkan" | "vk" => Ok(BackendChoice::Vulkan),
            "metal" => Ok(BackendChoice::Metal),
            "dx12" | "d3d12" => Ok(BackendChoice::Dx12),
            "gl" | "gles" | "opengl" => Ok(BackendChoice::Gl),
            _ => Err(Error::Invalid {
                what: "backend".into(),
                why: format!("'{s}' is not one of vulkan, metal, dx12, gl"),
            }),
        }
    }
}

/// Optional device features rezero asks for when the adapter has them.
const WANTED_FEATURES: wgpu::Features = wgpu::Features::TIMESTAMP_QUERY
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)
    .union(wgpu::Features::SHADER_F16)
    .union(wgpu::Features::SUBGROUP);

fn no_adapter_hint() -> String {
    "install a GPU driver with Vulkan (Linux, Windows), Metal (macOS) or DX12 (Windows) support; \
     on a machine without a GPU install Mesa's software Vulkan driver \
     (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers`, Mesa 25 or newer is ten times faster)"
        .to_string()
}

/// Lower is better: discrete GPUs first, software last; native APIs before GL.
fn adapter_rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let api = if info.backend == wgpu::Backend::Gl {
        1
    } else {
        0
    };
    (kind, api)
}

/// The best adapter that matches `options`: discrete, then integrated, then software,
/// native APIs before GL.
pub(crate) async fn choose_adapter(options: &GpuOptions) -> Result<wgpu::Adapter> {
    let backends = options
        .backend
        .map(BackendChoice::backends)
        .unwrap_or(wgpu::Backends::all());
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    let adapters = instance.enumerate_adapters(backends).await;
    let found: Vec<String> = adapters
        .iter()
        .map(|a| {
            let i = a.get_info();
            format!("'{}' ({:?})", i.name, i.backend)
        })
        .collect();
    let mut candidates: Vec<wgpu::Adapter> = adapters
        .into_iter()
        .filter(|a| match &options.adapter {
            Some(want) => a
                .get_info()
                .name
                .to_lowercase()
                .contains(&want.to_lowercase()),
            None => true,
        })
        .collect();
    candidates.sort_by_key(|a| adapter_rank(&a.get_info()));
    let Some(adapter) = candidates.into_iter().next() else {
        let hint = match (&options.adapter, found.is_empty()) {
            (_, true) => no_adapter_hint(),
            (Some(name), false) => format!(
                "no adapter name contains '{name}'; found {}",
                found.join(", ")
            ),
            (None, false) => no_adapter_hint(),
        };
        return Err(Error::NoAdapter { hint });
    };
    Ok(adapter)
}

/// Whether a listed cooperative-matrix configuration is one rezero's tensor-core matmul
/// runs: S×S×S with S 8 or 16, f16 A and B, f32 accumulators.
pub fn usable_cooperative(c: &wgpu::CooperativeMatrixProperties, s: u32) -> bool {
    matches!(s, 8 | 16)
        && (c.m_size, c.n_size, c.k_size) == (s, s, s)
        && c.ab_type == wgpu::CooperativeScalarType::F16
        && c.cr_type == wgpu::CooperativeScalarType::F32
}

/// The device and queue on `adapter` with its own limits and the optional features
/// rezero uses, and the cooperative-matrix configurations it may use: asked for only
/// where the adapter lists one the tensor-core matmul runs, and given up (the device
/// opened without them) if the driver refuses the experimental feature.
pub(crate) async fn open_device(
    adapter: &wgpu::Adapter,
) -> Result<(
    wgpu::Device,
    wgpu::Queue,
    Vec<wgpu::CooperativeMatrixProperties>,
)> {
    let info = adapter.get_info();
    let features = adapter.features() & WANTED_FEATURES;
    let cooperative = adapter.cooperative_matrix_properties();
    let coop = wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
    let usable = cooperative
        .iter()
        .any(|c| usable_cooperative(c, 8) || usable_cooperative(c, 16));
    if adapter.features().contains(coop) && usable {
        if let Ok((device, queue)) = request(adapter, features | coop).await {
            return Ok((device, queue, cooperative));
        }
    }
    let (device, queue) = request(adapter, features)
        .await
        .map_err(|e| Error::Device {
            adapter: info.name.clone(),
            why: e.to_string(),
        })?;
    Ok((device, queue, Vec::new()))
}

/// `adapter`'s device with `features` and the adapter's own limits.
async fn request(
    adapter: &wgpu::Adapter,
    features: wgpu::Features,
) -> std::result::Result<(wgpu::Device, wgpu::Queue), wgpu::RequestDeviceError> {
    let experimental = features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
    let device_desc = wgpu::DeviceDescriptor {
        label: Some("rezero"),
        required_features: features,
        required_limits: adapter.limits(),
        // SAFETY: wgpu asks for this token before it opens a device with an EXPERIMENTAL
        // feature, whose implementation may still have bugs. The only one rezero asks for
        // is cooperative matrices, used by one kernel (`matmul_coop`, picked only where the
        // adapter lists its configuration), whose launcher checks every size like the
        // others; tests/coop.rs checks it against the CPU.
        experimental_features: match experimental {
            true => unsafe { wgpu::ExperimentalFeatures::enabled() },
            false => wgpu::ExperimentalFeatures::disabled(),
        },
        ..Default::default()
    };
    adapter.request_device(&device_desc).await
}
