#!/usr/bin/env bash
# The pipeline benchmark on the GPU machine, in one device call: make the 7B-shaped bf16 checkpoint, run
# ../shared/device/baselines/torch_pipeline.py, then the same work through `lopper run` (float32, then mixed as a
# second recipe instance), a cached rerun, and the LoRA recipe; results and logs under $OUT.
# Needs .device (../shared/device/prepare.sh), dist and .devdata (see bench/README.md).
#   usage: bash bench/pipeline/run.sh PARTS   (comma list: torch,probe,float32,cached,mixed,lora,uniform)
set -u
parts=",${1:-torch,float32,cached,lora},"
has() { [[ $parts == *",$1,"* ]]; }
log=$OUT/log.txt
step() { echo "=== $(date +%T) $*" | tee -a "$log"; }
source .device/gpu-env.sh >>"$log" 2>&1
export TOKENIZER_FROM=.devdata/stories260K-hf
M=/tmp/m7b
if [[ $parts != ",profile," ]]; then
  step make_model
  python3 .devdata/baselines/make_model.py $M >>"$log" 2>&1; echo "rc=$?" | tee -a "$log"
  du -sh $M >>"$log"
fi
if has torch; then
  step torch_pipeline
  /usr/bin/time -v python3 .devdata/baselines/torch_pipeline.py $M .devdata/tinystories_val_first.txt .devdata/ARC-Easy.jsonl /tmp/torch-pruned \
    >"$OUT/torch_pipeline.json" 2>"$OUT/torch_pipeline.err"; echo "rc=$?" | tee -a "$log"
  grep -E "Maximum resident|Elapsed" "$OUT/torch_pipeline.err" | tee -a "$log"
  rm -rf /tmp/torch-pruned
fi
if has profile; then
  for p in float32 mixed; do
    step "forward profile $p"
    timeout 120 node --import tsx bench/forward-profile.ts $p >"$OUT/profile-$p.json" 2>"$OUT/profile-$p.err"; echo "rc=$?" | tee -a "$log"
  done
  step "forward profile float32, tfjs's matmul"
  LOPPER_F32_MATMUL=tfjs timeout 120 node --import tsx bench/forward-profile.ts float32 >"$OUT/profile-float32-tfjs.json" 2>"$OUT/profile-float32-tfjs.err"; echo "rc=$?" | tee -a "$log"
fi
if has probe; then
  for p in float32 mixed; do
    step "load/forward probe $p"
    timeout 150 node --import tsx bench/load-probe.ts $M $p >"$OUT/probe-$p.json" 2>"$OUT/probe-$p.err"; echo "rc=$?" | tee -a "$log"
  done
fi
lopper() {  # name, then lopper arguments
  local name=$1; shift
  step "lopper $name"
  timeout "${LIMIT:-240}" /usr/bin/time -v node dist/cli/main.js run "$@" --set vars.model=$M --json >"$OUT/$name.json" 2>"$OUT/$name.err"; echo "rc=$?" | tee -a "$log"
  grep -E "Maximum resident|Elapsed" "$OUT/$name.err" | tee -a "$log"
  tail -5 "$OUT/$name.err" >>"$log"
}
R=bench/pipeline/recipe7b.yaml
has float32 && lopper float32 $R
has cached && LIMIT=60 lopper cached $R
has mixed && lopper mixed $R --set runtime.precision=mixed
has lora && LIMIT=150 lopper lora bench/pipeline/lora7b.yaml
if has uniform; then
  lopper uniform bench/pipeline/uniform7b.yaml
  out=$(python3 -c "import json;print(json.load(open('$OUT/uniform.json'))['stages']['pruned']['output'])")
  rep=$(python3 -c "import json;print(json.load(open('$OUT/uniform.json'))['stages']['report']['output'])")
  step hf_check
  python3 bench/pipeline/hf_check.py "$out/model" .devdata/tinystories_val_first.txt "$rep/metrics.json" 2>"$OUT/hf_check.err" | tee -a "$log"
fi
mkdir -p "$OUT/store" && for d in bench/pipeline/.lopper/runs; do [ -d $d ] && cp -r $d "$OUT/store/"; done
find bench/pipeline/.lopper -name train.jsonl -exec cp {} "$OUT/" \; 2>/dev/null
find bench/pipeline/.lopper -name metrics.json -exec sh -c 'cp "$1" "$OUT/metrics-$(basename $(dirname "$1")).json"' _ {} \; 2>/dev/null
ls -la bench/pipeline/.lopper/*/*/model 2>/dev/null | head -20 >>"$log"
step done
# The device tool brings back a few files only: everything but the log in one archive.
(cd "$OUT" && tar -czf /tmp/results.tar.gz --exclude=log.txt . && find . -mindepth 1 ! -name log.txt -delete && mv /tmp/results.tar.gz .)
