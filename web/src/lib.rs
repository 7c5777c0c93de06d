//! rezero in the browser: what the page (`www/`) calls, built for wasm32 with wgpu's
//! WebGPU backend. The kernels, tape, optimizer and model are the library's own; this
//! crate adds only what a page needs: opening the browser's adapter ([`open`]), the demo
//! trainer ([`demo`]), the adapter's description ([`report`]) and the self-test of every
//! kernel family against its CPU reference ([`selftest`]). The bindings below are thin:
//! each turns a library error into a JavaScript error whose message the page shows.

pub mod demo;
pub mod open;
pub mod report;
pub mod selftest;

use wasm_bindgen::prelude::*;

use demo::{Demo, DemoConfig};
use rezero::Gpu;

/// The page's device: opened once, kept for the page's life (a run borrows it).
#[wasm_bindgen]
pub struct Session {
    gpu: &'static Gpu,
    lost: open::LostFlag,
}

/// Opens the browser's WebGPU adapter and rezero's device on it.
#[wasm_bindgen]
pub async fn open_session() -> Result<Session, JsError> {
    let (gpu, lost) = open::open_browser_device().await.map_err(js_error)?;
    // The page keeps one device for its whole life; a run's tape borrows it.
    let gpu: &'static Gpu = Box::leak(Box::new(gpu));
    Ok(Session { gpu, lost })
}

#[wasm_bindgen]
impl Session {
    /// The adapter, its limits and features, and the kernel each family runs, as JSON.
    pub fn adapter_json(&self) -> String {
        report::adapter_json(self.gpu)
    }

    /// Why the device was lost, once it was (the page stops and says so).
    pub fn lost_reason(&self) -> Option<String> {
        self.lost.reason()
    }

    /// Runs every kernel family against its CPU reference; calls `progress(json)` with
    /// each check as it finishes and returns them all as a JSON array.
    pub async fn self_test(&self, progress: js_sys::Function) -> String {
        let checks = selftest::run_all(self.gpu, |check| {
            let _ = progress.call1(&JsValue::NULL, &report::check_json(check).into());
        })
        .await;
        report::checks_json(&checks)
    }

    /// A new demo run of `variant` (`rezero`, `prenorm`, `postnorm`) at learning rate
    /// `lr`, with `batch` windows a step.
    pub fn demo(&self, variant: &str, lr: f32, batch: u32) -> Result<DemoRun, JsError> {
        let variant = variant.parse().map_err(js_error)?;
        let mut config = DemoConfig::new(variant, lr);
        config.batch = batch as usize;
        let demo = Demo::new(self.gpu, config).map_err(js_error)?;
        Ok(DemoRun { demo })
    }
}

/// A demo run the page steps.
#[wasm_bindgen]
pub struct DemoRun {
    demo: Demo<'static>,
}

#[wasm_bindgen]
impl DemoRun {
    /// One training step; the loss in nats per byte.
    pub async fn step(&mut self) -> Result<f32, JsError> {
        self.demo.step().await.map_err(js_error)
    }

    /// Validation bits per byte.
    pub async fn validation_bpb(&mut self) -> Result<f32, JsError> {
        self.demo.validation_bpb().await.map_err(js_error)
    }

    /// Every block's α (empty without ReZero).
    pub async fn alphas(&self) -> Result<Vec<f32>, JsError> {
        self.demo.alphas().await.map_err(js_error)
    }

    /// `len` sampled bytes after `prompt`.
    pub async fn sample(&self, prompt: String, len: u32) -> Result<String, JsError> {
        self.demo
            .sample(&prompt, len as usize)
            .await
            .map_err(js_error)
    }

    pub fn steps(&self) -> f64 {
        self.demo.steps() as f64
    }

    pub fn tokens_per_step(&self) -> u32 {
        self.demo.tokens_per_step() as u32
    }

    pub fn variant(&self) -> String {
        self.demo.config().variant.name().to_string()
    }
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}
