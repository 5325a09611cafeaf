#!/usr/bin/env bash
# Everything the GPU machine runs in one device call, each part under its own time limit; results under $OUT.
# Needs .device (../shared/device/prepare.sh), dist (npx tsc -p .) and .devdata (stories260K model, data, recipes).
#   usage: bash bench/device-run.sh PARTS   (comma list: tests,probe,7b-mixed,7b-mixed-unfused,7b-float32,stability,recipe-mixed,recipe-float32)
set -u
parts=",${1:-tests,7b-mixed,7b-float32,stability,recipe-mixed},"
log=$OUT/log.txt
has() { [[ $parts == *",$1,"* ]]; }
step() { echo "=== $(date +%T) $*" | tee -a "$log"; }
source .device/gpu-env.sh >>"$log" 2>&1
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv >>"$log" 2>&1
B="node --import tsx bench/gpu-bench.ts --backend webgpu"
if has tests; then
  step tests
  timeout 90 node --import tsx --test tests/backend/webgpu.test.ts tests/backend/fused-ops.test.ts tests/backend/tensor-core-emulated.test.ts >"$OUT/tests.log" 2>&1; echo "tests rc=$?" | tee -a "$log"
  grep -E '^# (pass|fail|skip)|^not ok' "$OUT/tests.log" | tee -a "$log"
fi
if has probe; then
  step matmul probe
  timeout "${TPROBE:-150}" node --import tsx bench/matmul-probe.ts --reps "${REPS:-20}" --out "$OUT/matmul-probe.json" >>"$log" 2>&1; echo "rc=$?" | tee -a "$log"
fi
if has 7b-mixed; then
  step 7b mixed
  timeout "${T7M:-170}" $B --precision mixed --model llama7b --matmul --runs 3 --out "$OUT/llama7b-mixed.json" >>"$log" 2>&1; echo "rc=$?" | tee -a "$log"
fi
if has 7b-mixed-unfused; then
  step 7b mixed without fused ops
  LOPPER_FUSED_OPS=0 timeout "${T7U:-150}" $B --precision mixed --model llama7b --runs 3 --out "$OUT/llama7b-mixed-unfused.json" >>"$log" 2>&1; echo "rc=$?" | tee -a "$log"
fi
if has stability; then
  step stories260k mixed + stability
  timeout "${TST:-90}" $B --precision mixed --model stories260k --stories .devdata/models/stories260K-hf --runs 5 --stability "${STEPS:-1000}" \
    --out "$OUT/stories260k-mixed.json" >>"$log" 2>&1; echo "rc=$?" | tee -a "$log"
fi
for p in mixed float32; do
  if has recipe-$p; then
    step recipe $p
    (cd .devdata && timeout "${RECIPE_S:-120}" node ../dist/cli/main.js run stories260k-$p.yaml --backend webgpu --set runtime.precision=$p >"$OUT/recipe-$p.log" 2>&1; echo "rc=$?") | tee -a "$log"
    tail -8 "$OUT/recipe-$p.log" | tee -a "$log"
  fi
done
if has 7b-float32; then
  step 7b float32
  timeout "${T7F:-130}" $B --precision float32 --model llama7b --runs 3 --out "$OUT/llama7b-float32.json" >>"$log" 2>&1; echo "rc=$?" | tee -a "$log"
fi
if [ -d .devdata/.lopper ]; then
  (cd .devdata/.lopper && tar czf "$OUT/stores.tgz" runs $(ls out/*/plan.json out/*/metrics.json out/*/.lopper-meta.json 2>/dev/null)) 2>>"$log"
fi
step done
