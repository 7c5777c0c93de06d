#!/usr/bin/env bash
# The GPU measurements BENCHMARKS.md records, in one call of at most about 8 minutes on a
# lent GPU: the adapter, the tuned kernel table (saved to commit as the device's defaults),
# matmul and conv2d beside PyTorch (FP32, TF32 off) in the same command, f16 matmul (blocked,
# auto and the tensor-core kernel) beside torch.mm in f16 and bf16, ResNet-20/56 steps
# beside PyTorch, the causal attention kernels beside the materialised path and PyTorch's
# SDPA, the 12-layer d_model 512 Transformer step beside the same model in PyTorch (eager,
# torch.autocast f16 with a GradScaler, and torch.compile), the ReZero MLP step at depth 64
# and 1,000 (bound by dispatches) and the
# bias gradient kernel beside what it replaced, and the per-kernel profiles of the
# ResNet-56, Transformer and MLP steps. Every figure is a JSON line in OUT/results.jsonl (rezero) or
# OUT/pytorch.jsonl; OUT/summary.md sets them side by side; OUT/log.txt has everything
# printed. Each step has its own time limit (580 s in all), so a slow one cannot starve the rest.
#
# usage: scripts/gpu-measure.sh [--smoke] BINARY OUT
#   --smoke   tiny sizes, no PyTorch, fails on any error: the dry run on software Vulkan
#             that CI makes, so the script works the first time it meets a GPU.
#
# On a lent machine (see DEVICE.md in the shared project folder; build here, carry .gl and
# .devbin), one `run` call with a timeout of about 590 s:
#   for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
#   export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
#   export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
#   scripts/gpu-measure.sh .devbin/rezero $OUT
# then append $OUT/tuned.tuning to tuning/devices.tuning (the device's committed defaults)
# and copy the figures of $OUT/summary.md to BENCHMARKS.md.
set -u
smoke=0
if [[ "${1:-}" == "--smoke" ]]; then
    smoke=1
    shift
fi
if [[ $# -ne 2 ]]; then
    echo "usage: scripts/gpu-measure.sh [--smoke] BINARY OUT" >&2
    exit 2
fi
bin=$1 out=$2
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out/tuning"
: >"$out/results.jsonl"
: >"$out/log.txt"
failed=()

log() { echo "== $* ($(date +%T))" | tee -a "$out/log.txt"; }

# The dry run's limits are eight times the GPU's: on software Vulkan with a cold shader cache
# LLVM compiles every pipeline, which a GPU driver does in a fraction of the time. With
# Mesa's cache off, the first lm step (it tunes a dozen attention kernels) took 111 s there
# and the attention step 337 s.
limit_scale=1
[[ $smoke -eq 1 ]] && limit_scale=8

# step NAME SECONDS COMMAND...: runs the command with a time limit (SECONDS on a GPU); its
# stdout's JSON lines go to results.jsonl (tagged with the step), everything to log.txt.
step() {
    local name=$1 seconds=$(($2 * limit_scale))
    shift 2
    log "$name: $*"
    timeout "$seconds" "$@" 2>>"$out/log.txt" | tee -a "$out/log.txt" \
        | sed -n "s/^{\(.*\)}$/{\"step\":\"$name\",\1}/p" >>"$out/results.jsonl"
    local code=${PIPESTATUS[0]}
    if [[ $code -ne 0 ]]; then
        log "$name: exit $code"
        failed+=("$name")
    fi
}

# rezero with this run's tuning table (tuned in the first step, used by every later one).
rz=("$bin" --tuning-dir "$out/tuning")

if [[ $smoke -eq 1 ]]; then
    tune_sizes=64,48x40x36:nt,40x36x48:tn
    tune_convs=2x8x8x8x3x1,2x8x8x16x3x2
    matmul_sizes=64,96x80x72
    matmul_f16_sizes=$matmul_sizes
    conv_sizes=2x8x8x8x3x1,2x8x8x16x3x2
    resnet_sizes=8x4
    lm_sizes=2x64x16x2
    attention_sizes=2x64x16,1x33x32
    mlp_sizes=4x16x8
    bias_sizes=64x32,1100x8
else
    tune_sizes=1024,2048,4096,4096x1536x512:nt,4096x2048x512:nt,4096x512x2048:nt,4096x512x2048,512x2048x4096:tn,2048x512x4096:tn
    tune_convs=128x16x32x16x3x1,128x16x32x32x3x2,128x32x16x32x3x1,128x32x16x64x3x2,128x64x8x64x3x1,128x16x32x32x1x2
    matmul_sizes=1024,2048,4096,4096x1536x512,4096x2048x512,4096x512x2048
    matmul_f16_sizes=4096,4096x2048x512
    conv_sizes=$tune_convs
    resnet_sizes=20x128,56x128
    lm_sizes=12x512x512x8,12x512x512x32
    attention_sizes=8x512x64,8x2048x64,32x512x64,8x512x128
    mlp_sizes=64x256x100,1000x256x100
    bias_sizes=4096x2048,16384x2048
fi

log "info"
"${rz[@]}" info >"$out/info.txt" 2>&1 || failed+=(info)
cat "$out/info.txt" >>"$out/log.txt"

step tune 60 "${rz[@]}" tune --sizes "$tune_sizes" --convs "$tune_convs" --json --save "$out/tuned.tuning"
step matmul 45 "${rz[@]}" bench matmul --sizes "$matmul_sizes" --variants reg8x4,blocked,auto --runs 7 --json
# f16 operands, f32 sums: the blocked kernel, auto, and the tensor-core kernel at each size
# the adapter lists (a size it does not list prints "skipped" and no row).
step matmul-f16 25 "${rz[@]}" bench matmul --sizes "$matmul_f16_sizes" --variants blocked,auto,coop8,coop16 \
    --precision f16 --runs 7 --json
if [[ $smoke -eq 0 ]]; then
    log "pytorch"
    timeout 95 python3 "$here/benches/pytorch_reference.py" --matmul "$matmul_sizes" --half \
        --depths 20,56 --batch 128 >"$out/pytorch.jsonl" 2>>"$out/log.txt" \
        || failed+=(pytorch)
fi
step conv2d 45 "${rz[@]}" bench conv2d --sizes "$conv_sizes" --runs 5 --json
step resnet 65 "${rz[@]}" bench resnet --sizes "$resnet_sizes" --runs 5 --profile --json
step lm 65 "${rz[@]}" bench lm --sizes "$lm_sizes" --runs 3 --profile --json
step attention 40 "${rz[@]}" bench attention --sizes "$attention_sizes" --runs 5 --json
step mlp 20 "${rz[@]}" bench mlp --sizes "$mlp_sizes" --runs 5 --profile --json
step bias 15 "${rz[@]}" bench bias --sizes "$bias_sizes" --runs 5 --json
if [[ $smoke -eq 0 ]]; then
    # Eager rows print first, so a torch.compile that runs out of time still leaves them.
    log "pytorch lm and attention"
    timeout 105 python3 "$here/benches/pytorch_reference.py" --skip-conv --skip-resnet \
        --attention "$attention_sizes" --lm "$lm_sizes" --compile --half >>"$out/pytorch.jsonl" \
        2>>"$out/log.txt" || failed+=(pytorch-lm)
fi

log "summary"
python3 - "$out" <<'PY' | tee "$out/summary.md"
# Sets rezero's figures beside PyTorch's from the same run, then the issue's targets.
import json, sys
out = sys.argv[1]
def lines(name):
    try:
        return [json.loads(l) for l in open(f"{out}/{name}") if l.startswith("{")]
    except FileNotFoundError:
        return []
ours, torch = lines("results.jsonl"), lines("pytorch.jsonl")
ref = {(t.get("kernel"), t.get("shape"), t.get("variant")): t for t in torch}
def rate(r):
    """(value, unit, PyTorch's value) of a bench line."""
    kernel, shape = r.get("kernel", ""), r.get("shape")
    if kernel in ("matmul", "attention_fwd", "attention_fwd_bwd") or kernel.startswith("conv2d_"):
        # f16 rows beside torch.mm in f16, the rest beside FP32
        half = r.get("variant", "").startswith("f16:")
        t = ref.get((kernel, shape, "f16" if half else None))
        return r.get("gflops"), "GFLOP/s", t and t.get("gflops")
    if kernel == "mlp_step":
        return r.get("gflops"), "GFLOP/s", None  # no PyTorch counterpart
    if kernel in ("resnet_step", "lm_step"):
        t = ref.get((kernel, shape, r.get("variant")))
        per_s = float(r.get("note", "0").split()[0])
        unit = "images/s" if kernel == "resnet_step" else "tokens/s"
        return per_s, unit, t and (t.get("images_per_s") or t.get("tokens_per_s"))
    return None, None, None
print("| kernel | shape | variant | ms | rezero | PyTorch | ratio |")
print("|---|---|---|---:|---:|---:|---:|")
best = {}
for r in ours:
    if r.get("step") == "tune" or "profile_entry" in r or "profile_total_ms" in r:
        continue
    value, unit, theirs = rate(r)
    if value is None:
        continue
    ratio = value / theirs if theirs else None
    key = (r["kernel"], r["shape"])
    if ratio is not None and r.get("variant", "").startswith(("auto", "f16:")) or r["kernel"].endswith("_step"):
        best[key + (r.get("variant"),)] = ratio
    # the tiled kernels, the backward's one pass a head among them: the best of each shape
    if ratio is not None and r.get("variant", "").startswith(("fused-tiled", "fused-per-head")):
        best[key + ("fused-tiled",)] = max(ratio, best.get(key + ("fused-tiled",), 0))
    print(f"| {r['kernel']} | {r['shape']} | {r.get('variant')} | {r.get('ms', 0):.3f} | "
          f"{value:.1f} {unit} | {f'{theirs:.1f}' if theirs else '-'} | "
          f"{f'{ratio:.2f}' if ratio else '-'} |")
print("\nTuned choices (rezero tune):")
for r in ours:
    if r.get("step") == "tune" and r.get("best"):
        print(f"- {r['class']}: {r['candidate']}")
print("\nTargets (ratio to PyTorch, auto variants and whole steps):")
def target(name, keys, floor):
    found = [best[k] for k in best if keys(k) and best[k] is not None]
    if not found:
        print(f"- {name}: not measured")
    else:
        worst = min(found)
        print(f"- {name}: {worst:.2f} (target {floor}) {'met' if worst >= floor else 'NOT met'}")
f32 = lambda k: not (k[2] or "").startswith("f16:")
target("matmul 4096³", lambda k: k[:2] == ("matmul", "4096x4096x4096") and f32(k), 0.5)
target("matmul 1024³", lambda k: k[:2] == ("matmul", "1024x1024x1024") and f32(k), 0.4)
target("coop matmul 4096³ vs torch.mm f16",
       lambda k: k[:2] == ("matmul", "4096x4096x4096") and (k[2] or "").startswith("f16:coop"), 0.5)
target("conv2d forward, ResNet shapes", lambda k: k[0] == "conv2d_fwd", 0.4)
target("ResNet-56 step", lambda k: k[0] == "resnet_step" and k[1].startswith("56x"), 0.6)
target("attention forward (best tiled kernel) vs SDPA", lambda k: k[0] == "attention_fwd" and k[2] == "fused-tiled", 0.5)
target("attention forward+backward (best tiled kernel) vs SDPA", lambda k: k[0] == "attention_fwd_bwd" and k[2] == "fused-tiled", 0.5)
target("12-layer Transformer step, batch 32 x 512", lambda k: k[:2] == ("lm_step", "12x512x512x32"), 0.5)
print("\nPyTorch rows without a rezero row (torch.compile, errors):")
for t in torch:
    if t.get("kernel") == "lm_step" and t.get("variant") != "rezero":
        print(f"- {t}")
totals = [r for r in ours if "profile_total_ms" in r]
print(f"\nProfiles ({sum('profile_entry' in r for r in ours)} rows in results.jsonl):")
for t in totals:
    print(f"- {t['step']}: {t['dispatches']} dispatches, {t['profile_total_ms']:.3f} ms timed, "
          f"step median {t['step_median_ms']:.3f} ms")
PY
[[ ${PIPESTATUS[0]} -eq 0 ]] || failed+=(summary)

if [[ ${#failed[@]} -gt 0 ]]; then
    log "failed: ${failed[*]}"
    [[ $smoke -eq 1 ]] && exit 1
fi
log "done: $(wc -l <"$out/results.jsonl") result lines; tuned table in $out/tuned.tuning"
exit 0
