// The training page: steps one or two demo runs, yielding to the browser between steps,
// and draws the loss curves, tokens/s, the α heatmap and samples as they come.
import { openSession, renderAdapter, showError, yieldToBrowser } from "./common.js";

const EVAL_EVERY = 25;
const SAMPLE_EVERY = 100;
const COLORS = { rezero: "#1f77b4", postnorm: "#d62728", prenorm: "#2ca02c" };
const $ = (id) => document.getElementById(id);

let session = null;
let runs = [];        // { run, name, losses: [[step, bpb]], evals: [[step, bpb]], alphas: [[...]], seconds }
let running = false;
let loop = null;      // the training loop's promise while it runs

function newRuns() {
  for (const r of runs) r.run.free();
  runs = [];
  const variants = $("compare").checked ? ["rezero", "postnorm"] : [$("variant").value];
  const lr = Number($("lr").value), batch = Number($("batch").value);
  if (!(lr > 0 && lr <= 1)) throw new Error(`learning rate ${$("lr").value} is not in (0, 1]`);
  if (!(Number.isInteger(batch) && batch >= 1)) throw new Error(`batch ${$("batch").value} is not a whole number of windows >= 1`);
  for (const name of variants) {
    // The footprint check runs before anything is allocated: a batch too large for this
    // adapter's limits is refused here, with the limit named.
    const run = session.demo(name, lr, batch);
    runs.push({ run, name, losses: [], evals: [], alphas: [], seconds: 0, steps: 0 });
  }
  draw();
}

async function trainLoop() {
  while (running) {
    for (const r of runs) {
      const started = performance.now();
      const loss = await r.run.step();
      r.seconds += (performance.now() - started) / 1000;
      r.steps += 1;
      if (!Number.isFinite(loss)) throw new Error(`${r.name} diverged: its loss is ${loss}`);
      r.losses.push([r.steps, loss / Math.LN2]);
      if (r.steps % EVAL_EVERY === 0) {
        r.evals.push([r.steps, await r.run.validation_bpb()]);
        const alphas = await r.run.alphas();
        if (alphas.length) r.alphas.push(Array.from(alphas));
      }
      if (r.steps % SAMPLE_EVERY === 0) {
        $("sample").textContent = `${r.name}, step ${r.steps}:\n` + await r.run.sample("\n", 160);
      }
    }
    const lost = session.lost_reason();
    if (lost) throw new Error(`The GPU device was lost mid-run (${lost}). Reload the page to start again.`);
    draw();
    await yieldToBrowser();
  }
}

function draw() {
  const parts = runs.map((r) => {
    const rate = r.seconds > 0 ? (r.steps * r.run.tokens_per_step() / r.seconds).toFixed(0) : "–";
    const last = r.losses.at(-1)?.[1]?.toFixed(3) ?? "–";
    const val = r.evals.at(-1)?.[1]?.toFixed(3) ?? "–";
    return `${r.name}: step ${r.steps}, loss ${last} bits/byte, validation ${val}, ${rate} tokens/s`;
  });
  $("status").textContent = (running ? "Training. " : "Paused. ") + parts.join(" | ");
  drawCurves();
  drawAlphas();
}

function drawCurves() {
  const canvas = $("curve"), g = canvas.getContext("2d");
  const { width, height } = canvas, pad = 36;
  g.clearRect(0, 0, width, height);
  const all = runs.flatMap((r) => r.losses.concat(r.evals));
  const maxStep = Math.max(10, ...all.map((p) => p[0]));
  const top = Math.max(1, ...all.map((p) => p[1]).filter(Number.isFinite));
  const x = (s) => pad + (width - pad - 8) * s / maxStep;
  const y = (v) => height - pad + (-(height - pad - 8)) * Math.min(v, top) / top;
  g.strokeStyle = "#888"; g.fillStyle = "#444"; g.font = "11px sans-serif";
  g.beginPath(); g.moveTo(pad, 8); g.lineTo(pad, height - pad); g.lineTo(width - 8, height - pad); g.stroke();
  for (let i = 0; i <= 4; i++) {
    const v = top * i / 4;
    g.fillText(v.toFixed(1), 4, y(v) + 4);
  }
  g.fillText(`step ${maxStep}`, width - 70, height - pad + 16);
  for (const r of runs) {
    g.strokeStyle = COLORS[r.name]; g.lineWidth = 1; g.beginPath();
    r.losses.forEach(([s, v], i) => (i ? g.lineTo(x(s), y(v)) : g.moveTo(x(s), y(v))));
    g.stroke();
    g.fillStyle = COLORS[r.name];
    for (const [s, v] of r.evals) g.fillRect(x(s) - 3, y(v) - 3, 6, 6);
  }
  $("legend").innerHTML = runs.map((r) =>
    `<span style="color:${COLORS[r.name]}">■ ${r.name} (line: training, squares: validation)</span>`).join("");
}

function drawAlphas() {
  const canvas = $("alphas"), g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const withAlpha = runs.filter((r) => r.alphas.length);
  if (!withAlpha.length) {
    g.fillStyle = "#666"; g.font = "12px sans-serif";
    g.fillText(runs.length ? "no α yet (every 25 steps; ReZero only)" : "", 8, 20);
    return;
  }
  const history = withAlpha[0].alphas, blocks = history[0].length;
  const scale = Math.max(1e-3, ...history.flat().map(Math.abs));
  const cw = canvas.width / Math.max(history.length, 20), ch = (canvas.height - 16) / blocks;
  history.forEach((alphas, t) => alphas.forEach((a, b) => {
    const u = Math.round(255 * (1 - Math.min(1, Math.abs(a) / scale)));
    g.fillStyle = a >= 0 ? `rgb(255,${u},${u})` : `rgb(${u},${u},255)`;
    g.fillRect(t * cw, b * ch, Math.ceil(cw), Math.ceil(ch));
  }));
  g.fillStyle = "#444"; g.font = "11px sans-serif";
  const latest = history.at(-1).map((a) => a.toFixed(3)).join(", ");
  g.fillText(`|α| up to ${scale.toFixed(3)}; now ${latest}`, 4, canvas.height - 4);
}

async function toggle() {
  if (running) { running = false; $("start").textContent = "Start"; draw(); return; }
  try {
    if (!runs.length) newRuns();
    running = true;
    $("start").textContent = "Pause";
    loop = trainLoop();
    await loop;
  } catch (e) {
    running = false;
    $("start").textContent = "Start";
    showError(e.message ?? String(e));
  }
}

async function main() {
  try {
    session = await openSession();
  } catch (e) {
    $("status").textContent = "No GPU.";
    showError(e.message);
    return;
  }
  await renderAdapter(session, $("adapter"));
  $("status").textContent = "Ready: press Start.";
  $("start").disabled = false;
  $("reset").disabled = false;
  $("start").onclick = toggle;
  $("reset").onclick = async () => {
    running = false;
    $("start").textContent = "Start";
    await loop?.catch(() => {});  // the step in flight finishes before its run is freed
    try { newRuns(); } catch (e) { showError(e.message ?? String(e)); }
  };
  // For scripts/web.sh screenshot and anyone automating the page.
  window.rezeroDemo = { start: toggle, steps: () => runs.map((r) => r.steps) };
  // The address may preset the controls: ?compare&lr=0.002&batch=4&variant=prenorm&autostart
  const query = new URLSearchParams(location.search);
  if (query.has("compare")) $("compare").checked = true;
  for (const name of ["lr", "batch", "variant"]) if (query.has(name)) $(name).value = query.get(name);
  if (query.has("autostart")) toggle();
}

main();
