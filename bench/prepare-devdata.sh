#!/usr/bin/env bash
# Fills .devdata/ (git-ignored; carried to the GPU machine) with what the device benchmarks read: copies of
# ../shared's TinyStories text, zero-shot sets, WikiText-2 and PTB test files, stories260K-hf (make_model.py takes
# its tokenizer from it) and the PyTorch baselines, plus alpaca-like.jsonl: 200 instructions whose outputs are
# 1,400 characters of TinyStories, long enough that every LoRA micro-batch of bench/pipeline/lora7b.yaml is [4, 256].
#   usage: bash bench/prepare-devdata.sh   (from the project root, beside ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
S=../shared
[ -d "$S/data" ] || { echo "prepare-devdata: $S/data is missing (the checkout-side shared folder)" >&2; exit 1; }
D=.devdata
mkdir -p $D/zeroshot $D/wikitext2 $D/ptb $D/baselines
cp $S/data/tinystories/tinystories_val_first.txt $D/
cp $S/data/zeroshot/*.jsonl $D/zeroshot/
cp $S/data/zeroshot/ARC-Easy.jsonl $D/
cp $S/data/wikitext2/wiki.test.raw $D/wikitext2/
cp $S/data/ptb/ptb.test.txt $D/ptb/
cp -r $S/models/stories260K-hf $D/
cp $S/device/baselines/*.py $D/baselines/
node -e '
const fs = require("fs");
const text = fs.readFileSync(process.argv[1], "utf8").replace(/\s+/g, " ");
const lines = [];
for (let i = 0; i < 200; i++) {
  const at = (i * 1409) % (text.length - 1400);
  lines.push(JSON.stringify({ instruction: "Continue the story.", input: "", output: text.slice(at, at + 1400) }));
}
fs.writeFileSync(process.argv[2], lines.join("\n") + "\n");
' $D/tinystories_val_first.txt $D/alpaca-like.jsonl
du -sh $D
