#!/usr/bin/env bash
# The measurements BENCHMARKS.md records for a real GPU, in one go: kernel benches, conv2d
# and ResNet steps beside PyTorch on the same GPU, a Fashion-MNIST ResNet-20 comparison
# sized to the time left, and a short ResNet-110 run. Every step has its own time limit so
# that a slow one cannot starve the rest; logs go to OUT as they are written.
#
# usage: scripts/gpu-measure.sh BINARY FASHION_MNIST_DIR OUT [SECONDS_FOR_THE_COMPARISON]
# STEPS="conv2d batchnorm resnet pytorch compare r110 all lm" (the default) picks the parts.
set -u
bin=$1 data=$2 out=$3 budget=${4:-150}
steps=${STEPS:-conv2d batchnorm resnet pytorch compare r110 all lm}
mkdir -p "$out"
log() { echo "== $* ($(date +%T))" | tee -a "$out/bench.txt"; }
want() { [[ " $steps " == *" $1 "* ]]; }

log info
"$bin" info >>"$out/bench.txt" 2>&1
for family in conv2d batchnorm; do
    if want $family; then
        log bench $family
        timeout 60 "$bin" bench $family >>"$out/bench.txt" 2>&1
    fi
done
if want resnet; then
    log bench resnet
    timeout 90 "$bin" bench resnet --sizes 20x128,56x128,110x128 --runs 5 >>"$out/bench.txt" 2>&1
fi
if want pytorch; then
    log pytorch reference
    timeout 90 python3 benches/pytorch_reference.py --depths 20,56,110 --batch 128 \
        >"$out/pytorch.txt" 2>&1
fi
if want compare; then
    # Epochs for the three-variant comparison that fit the budget, from the measured rate.
    rate=$(grep -E '^resnet_step +20x128 +rezero' "$out/bench.txt" | grep -oE '[0-9]+ images/s' | grep -oE '[0-9]+')
    rate=${rate:-500}
    epoch_s=$(( 70000 / rate + 5 ))
    epochs=$(( budget / (3 * epoch_s) ))
    (( epochs < 1 )) && epochs=1
    (( epochs > 15 )) && epochs=15
    log "compare: ResNet-20 at $rate images/s, $epochs epochs"
    timeout $(( budget + 60 )) "$bin" train resnet --compare standard,rezero,rezero-nobn \
        --depth 20 --dataset fashion-mnist --data-dir "$data" --epochs "$epochs" --batch 128 \
        --lr 0.1 --target-acc 90 --augment --quiet --out /tmp/cmp >"$out/train.txt" 2>&1
fi
if want r110; then
    log "resnet-110, 200 steps"
    timeout 90 "$bin" train resnet --depth 110 --dataset fashion-mnist --data-dir "$data" \
        --steps 200 --batch 128 --test-limit 2000 --quiet --out /tmp/r110 >>"$out/train.txt" 2>&1
fi
if want all; then
    log bench all
    timeout 120 "$bin" bench all >>"$out/bench.txt" 2>&1
fi
if want lm; then
    log bench lm
    timeout 60 "$bin" bench lm --sizes 12x512x512x8,12x512x128x32 >>"$out/bench.txt" 2>&1
fi
log done
tar czf "$out/runs.tgz" --exclude='*.safetensors' -C /tmp cmp r110 2>/dev/null
true
