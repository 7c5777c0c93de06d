// What both pages share: loading the wasm build, opening the GPU with a clear message on
// every way that can fail, and the adapter table.
import init, { open_session } from "./pkg/rezero_web.js";

// Shows `text` in the page's error box (never only on the console).
export function showError(text) {
  const box = document.getElementById("error");
  box.textContent = text;
  box.hidden = false;
}

// Errors nobody caught still reach the page.
window.addEventListener("error", (e) => showError(`Unexpected error: ${e.message}`));
window.addEventListener("unhandledrejection", (e) =>
  showError(`Unexpected error: ${e.reason?.message ?? e.reason}`));

// The wasm module and rezero's device on the browser's adapter; throws an Error whose
// message says what to do.
export async function openSession() {
  if (!("gpu" in navigator)) {
    throw new Error("This browser has no WebGPU (navigator.gpu is missing). Use a browser " +
      "with WebGPU: Chrome or Edge 113+, Safari 26+, Firefox 141+ on Windows; on Linux " +
      "Chromium needs --enable-unsafe-webgpu. The page must be served over https or from localhost.");
  }
  await init();
  try {
    return await open_session();
  } catch (e) {
    throw new Error(`The WebGPU adapter or device was refused: ${e.message ?? e}`);
  }
}

// What the browser says of its adapter (WebGPU gives wgpu no name): vendor, architecture,
// description, and whether it is a software fallback.
async function browserAdapter() {
  try {
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    const i = adapter?.info ?? {};
    const name = [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(" ");
    const fallback = adapter?.isFallbackAdapter ?? i.isFallbackAdapter;
    return { name, fallback };
  } catch {
    return { name: "", fallback: undefined };
  }
}

// The adapter's name, features, limits and kernel choices as tables under `element`.
export async function renderAdapter(session, element) {
  const info = JSON.parse(session.adapter_json());
  const browser = await browserAdapter();
  if (!info.name) info.name = browser.name || "(the browser gives no name)";
  if (browser.fallback !== undefined) info["software fallback"] = String(browser.fallback);
  const rows = (object) => Object.entries(object)
    .map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join("");
  const plain = {
    name: info.name, "software fallback": info["software fallback"] ?? "unknown",
    backend: info.backend, "device type": info["device type"],
    driver: info.driver, "subgroup sizes": info["subgroup sizes"],
    features: info.features.join(", ") || "none",
  };
  element.innerHTML = `<div class="panels">
    <table>${rows(plain)}</table>
    <table><tr><th colspan="2">Limits</th></tr>${rows(info.limits)}</table>
    <table><tr><th colspan="2">Kernel each family runs (demo's shapes)</th></tr>${rows(info.kernels)}</table>
  </div>`;
  return info;
}

// Lets the browser render and handle input before the next step.
export const yieldToBrowser = () => new Promise((resolve) => setTimeout(resolve, 0));
