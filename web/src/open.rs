//! Opening the browser's WebGPU adapter and rezero's device on it, and watching for the
//! device being lost (the page asks [`LostFlag::reason`] between steps).

use std::sync::{Arc, Mutex};

use rezero::{Error, Gpu, GpuOptions, Result};

/// Set (with wgpu's reason and message) when the browser loses the device.
#[derive(Clone, Default)]
pub struct LostFlag(Arc<Mutex<Option<String>>>);

impl LostFlag {
    pub fn reason(&self) -> Option<String> {
        self.0.lock().map_or(None, |r| r.clone())
    }

    fn set(&self, reason: String) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(reason);
        }
    }
}

/// The browser's adapter (high performance preferred) and rezero's device on it, with the
/// adapter's limits and whichever of subgroups, f16 and timestamps it offers.
pub async fn open_browser_device() -> Result<(Gpu, LostFlag)> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::BROWSER_WEBGPU;
    let instance = wgpu::Instance::new(desc);
    let options = wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    };
    let adapter = instance
        .request_adapter(&options)
        .await
        .map_err(|e| Error::NoAdapter {
            hint: format!(
                "the browser gave no WebGPU adapter ({e}); it may be turned off (chrome://gpu \
                 tells), or this GPU is on the browser's block list"
            ),
        })?;
    let gpu = Gpu::from_adapter(&adapter, &GpuOptions::default()).await?;
    let lost = LostFlag::default();
    let flag = lost.clone();
    gpu.device.set_device_lost_callback(move |reason, message| {
        flag.set(format!("{reason:?}: {message}"))
    });
    Ok((gpu, lost))
}
