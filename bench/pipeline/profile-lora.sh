#!/usr/bin/env bash
# Where a LoRA step's time goes on the GPU machine: lora7b.yaml through `lopper run` under node --cpu-prof, with
# nvidia-smi sampling GPU utilization and SM clock every 200 ms; prints the profile's top functions and the GPU
# samples taken during the training steps. Needs the checkpoint at /tmp/m7b (bench/pipeline/run.sh makes it).
set -u
source .device/gpu-env.sh >/dev/null 2>&1
export TOKENIZER_FROM=.devdata/stories260K-hf
[ -f /tmp/m7b/config.json ] || python3 .devdata/baselines/make_model.py /tmp/m7b >/dev/null 2>&1
rm -rf /tmp/lora-prof bench/pipeline/.lopper && mkdir -p /tmp/lora-prof
nvidia-smi --query-gpu=timestamp,utilization.gpu,clocks.sm,power.draw --format=csv,noheader -lms 200 >"$OUT/smi.csv" 2>/dev/null &
smi=$!
node --cpu-prof --cpu-prof-dir=/tmp/lora-prof dist/cli/main.js run bench/pipeline/lora7b.yaml --set vars.model=/tmp/m7b --set vars.steps="${STEPS:-12}" \
  --json >"$OUT/lora-prof.json" 2>"$OUT/lora-prof.err"; echo "rc=$?"
kill $smi 2>/dev/null
python3 bench/cpu-profile-summary.py /tmp/lora-prof/*.cpuprofile 40 >"$OUT/lora-prof-summary.txt"
head -45 "$OUT/lora-prof-summary.txt"
find bench/pipeline/.lopper -name train.jsonl -exec cat {} \; | tail -4
awk -F', ' '{print $2, $3, $4}' "$OUT/smi.csv" | sort | uniq -c | sort -rn | head -12
