// The self-test page: every kernel check, then a short training whose loss must fall.
// It ends by writing the verdict line and `window.rezeroReport`, which scripts/web.sh
// reads through chromedriver.
import { openSession, renderAdapter, showError, yieldToBrowser } from "./common.js";

const TRAIN_STEPS = 30;
const $ = (id) => document.getElementById(id);

function addRow(check) {
  const row = $("checks").insertRow();
  const result = check.passed ? "passed" : `FAILED: ${check.failure}`;
  row.innerHTML = `<td>${check.family}</td><td>${check.case}</td>` +
    `<td class="${check.passed ? "pass" : "fail"}"></td><td>${check.millis.toFixed(1)}</td>`;
  row.cells[2].textContent = result;
}

// 30 steps of the demo model at its own size: the loss of the last five must be finite
// and below that of the first five.
async function training(session) {
  const run = session.demo("rezero", 0.002, 8);
  const losses = [];
  const started = performance.now();
  try {
    for (let i = 0; i < TRAIN_STEPS; i++) {
      losses.push(await run.step());
      $("progress").textContent = `training step ${i + 1}/${TRAIN_STEPS}: loss ${losses.at(-1).toFixed(4)}`;
      await yieldToBrowser();
    }
    const seconds = (performance.now() - started) / 1000;
    const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = mean(losses.slice(0, 5)), last = mean(losses.slice(-5));
    const passed = Number.isFinite(last) && last < first;
    return {
      family: "training", case: `demo model, ${TRAIN_STEPS} steps: mean loss of the first five ` +
        `${first.toFixed(4)}, of the last five ${last.toFixed(4)} nats/byte`,
      passed, failure: passed ? null : "the loss did not fall", millis: seconds * 1000,
      tokensPerSecond: TRAIN_STEPS * run.tokens_per_step() / seconds,
    };
  } finally {
    run.free();
  }
}

async function main() {
  const report = { done: false, passed: 0, failed: 0, failures: [], families: {}, verdict: "" };
  window.rezeroReport = report;
  const finish = (checks) => {
    for (const c of checks) {
      if (c.passed) report.passed++; else { report.failed++; report.failures.push(`${c.family}: ${c.case}: ${c.failure}`); }
      report.families[c.family] = (report.families[c.family] ?? 0) + c.millis;
    }
    report.verdict = `web: ${report.passed} passed, ${report.failed} failed`;
    $("verdict").textContent = report.verdict;
    $("verdict").className = report.failed ? "fail" : "pass";
    report.done = true;
  };
  let session;
  try {
    session = await openSession();
  } catch (e) {
    showError(e.message);
    report.error = e.message;
    finish([{ family: "adapter", case: "open WebGPU", passed: false, failure: e.message, millis: 0 }]);
    return;
  }
  const info = await renderAdapter(session, $("adapter"));
  report.adapter = info;
  const started = performance.now();
  const checks = JSON.parse(await session.self_test((json) => {
    const check = JSON.parse(json);
    addRow(check);
    $("progress").textContent = `${check.family}: ${check.case}`;
  }));
  report.selfTestSeconds = (performance.now() - started) / 1000;
  try {
    const trained = await training(session);
    addRow(trained);
    report.tokensPerSecond = trained.tokensPerSecond;
    checks.push(trained);
  } catch (e) {
    const failed = { family: "training", case: "demo model", passed: false, failure: e.message ?? String(e), millis: 0 };
    addRow(failed);
    checks.push(failed);
  }
  const lost = session.lost_reason();
  if (lost) checks.push({ family: "device", case: "still there at the end", passed: false, failure: `device lost: ${lost}`, millis: 0 });
  $("progress").textContent = "";
  finish(checks);
}

main().catch((e) => {
  showError(e.message ?? String(e));
  window.rezeroReport = { done: true, passed: 0, failed: 1, failures: [String(e.message ?? e)], verdict: "web: 0 passed, 1 failed" };
  document.getElementById("verdict").textContent = window.rezeroReport.verdict;
});
