#!/usr/bin/env bash
# The evaluation benchmark on the GPU machine, in one device call: the 7B-shaped checkpoint (make_model.py), the
# zero-shot requests as ids (requests.ts), `lopper run bench/eval/eval7b.yaml` at PRECISION, torch_eval.py at DTYPE
# over the same requests and windows, and compare.py's per-question agreement; results under $OUT.
#   usage: bash bench/eval/run.sh PRECISION DTYPE LIMIT PPL_LIMIT   (e.g. float32 float32 100 64; mixed bfloat16 100000 100000)
set -u
precision=$1 dtype=$2 limit=$3 ppl_limit=$4
log=$OUT/eval-log.txt
step() { echo "=== $(date +%T) $*" | tee -a "$log"; }
source .device/gpu-env.sh >>"$log" 2>&1
export TOKENIZER_FROM=.devdata/stories260K-hf
M=/tmp/m7b
[ -f $M/config.json ] || { step make_model; python3 .devdata/baselines/make_model.py $M >>"$log" 2>&1; }
Z=.devdata/zeroshot
tasks="arc_easy=$Z/ARC-Easy.jsonl:$limit arc_challenge=$Z/ARC-Challenge.jsonl:$limit piqa=$Z/piqa.jsonl:$limit boolq=$Z/boolq.jsonl:$limit openbookqa=$Z/openbookqa.jsonl:$limit winogrande=$Z/winogrande.jsonl:$limit social_iqa=$Z/social_i_qa.jsonl:$limit"
step requests
node --import tsx bench/eval/requests.ts $M /tmp/requests.jsonl $tasks 2>>"$log"
step "lopper eval $precision"
/usr/bin/time -v node dist/cli/main.js run bench/eval/eval7b.yaml --set vars.model=$M --set vars.limit=$limit --set vars.ppl_limit=$ppl_limit \
  --set runtime.precision=$precision --json >"$OUT/lopper-eval-$precision.json" 2>"$OUT/lopper-eval-$precision.err"; echo "rc=$?" | tee -a "$log"
grep -E "Maximum resident|Elapsed" "$OUT/lopper-eval-$precision.err" | tee -a "$log"
rep=$(python3 -c "import json;print(json.loads(open('$OUT/lopper-eval-$precision.json').read().strip().splitlines()[-1])['stages']['report']['output'])")
cp "$rep/metrics.json" "$OUT/lopper-metrics-$precision.json"; cp "$rep/samples.jsonl" /tmp/samples.jsonl
step "torch eval $dtype"
PPL_LIMIT=$ppl_limit python3 bench/eval/torch_eval.py $M /tmp/requests.jsonl $dtype 16384 "$OUT/torch-eval-$dtype.json" .devdata/wikitext2/wiki.test.raw .devdata/ptb/ptb.test.txt \
  >"$OUT/torch-eval-$dtype.out" 2>"$OUT/torch-eval-$dtype.err"; echo "rc=$?" | tee -a "$log"
python3 bench/eval/compare.py /tmp/samples.jsonl "$OUT/torch-eval-$dtype.json" base >"$OUT/compare-$precision-$dtype.json" 2>>"$log"
tail -4 "$OUT/compare-$precision-$dtype.json" | tee -a "$log"
# Predictions are large: keep them out of what comes back.
python3 -c "import json;d=json.load(open('$OUT/torch-eval-$dtype.json'));d.pop('predictions');json.dump(d,open('$OUT/torch-eval-$dtype.json','w'),indent=1)"
step done
