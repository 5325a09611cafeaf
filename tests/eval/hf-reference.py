# Independent reference for lopper's evaluate stage, the source of the numbers pinned in tests/eval/*.test.ts:
# HF transformers LlamaForCausalLM in float64 + HF tokenizers, the DESIGN.md perplexity and zero-shot protocols
# written from DESIGN.md's text. Usage (e.g. on the GPU machine, which has PyTorch): python3 hf-reference.py DIR,
# DIR holding model/ (stories260K-hf), tinystories_val_first.txt and the ../shared/data/zeroshot/*.jsonl files.
# Writes $OUT/reference.json. Results (2026-11-28): TinyStories PPL@128 over 3070 windows 5.364715149491454.
import json, math, sys, time
import torch
from transformers import AutoModelForCausalLM
from tokenizers import Tokenizer

base = sys.argv[1] if len(sys.argv) > 1 else 'tmp/eval-ref'
dev = 'cuda' if torch.cuda.is_available() else 'cpu'
model = AutoModelForCausalLM.from_pretrained(f'{base}/model', torch_dtype=torch.float64, attn_implementation='eager').to(dev).eval()
tok = Tokenizer.from_file(f'{base}/model/tokenizer.json')
enc = lambda s: tok.encode(s, add_special_tokens=False).ids
out = {'torch': torch.__version__, 'device': dev}

text = open(f'{base}/tinystories_val_first.txt', encoding='utf-8', newline='').read()
ids = [1] + enc(text)
out['n_ids'] = len(ids)
L = 128
W = len(ids) // L
x = torch.tensor(ids[: W * L], device=dev).view(W, L)
nll = []
with torch.no_grad():
    for s in range(0, W, 256):
        b = x[s:s + 256]
        lp = torch.log_softmax(model(b).logits, -1)[:, :-1].gather(-1, b[:, 1:, None])[..., 0]
        nll.append(-lp)
nll = torch.cat(nll)  # [W, L-1]
out['ppl128'] = {'windows': W, 'ppl': math.exp(nll.mean().item()), 'nll': nll.mean().item()}
for n in (8, 12, 40):
    out['ppl128'][f'first{n}'] = math.exp(nll[:n].mean().item())

def generic(q, c): return f'Question: {q}\nAnswer:', f' {c}'
tasks = {'arc_easy': ('ARC-Easy', 'g'), 'arc_challenge': ('ARC-Challenge', 'g'), 'piqa': ('piqa', 'g'), 'boolq': ('boolq', 'g'),
         'social_iqa': ('social_i_qa', 'g'), 'openbookqa': ('openbookqa', 'o'), 'winogrande': ('winogrande', 'w')}
zs = {}
for name, (file, kind) in tasks.items():
    t0 = time.time()
    recs = [json.loads(l) for l in open(f'{base}/{file}.jsonl', encoding='utf-8') if l.strip()]
    acc_hits, norm_hits, mism = [], [], 0
    for r in recs:
        pairs = []
        for c in r['choices']:
            if kind == 'g': pairs.append(generic(r['question'], c))
            elif kind == 'o': pairs.append((r['question'], f' {c}'))
            else:
                i = r['question'].index('_')
                pairs.append((r['question'][:i] + c, ' ' + r['question'][i + 1:].strip()))
        seqs, spans = [], []
        for ctx, cont in pairs:
            cids = [1] + enc(ctx)
            whole = [1] + enc(ctx + cont)
            if whole[:len(cids)] != cids: mism += 1
            k = whole[len(cids):]
            seqs.append(cids + k); spans.append((len(cids), len(k)))
        T = max(map(len, seqs))
        b = torch.tensor([s + [2] * (T - len(s)) for s in seqs], device=dev)
        with torch.no_grad():
            lp = torch.log_softmax(model(b).logits, -1)
        scores = [sum(lp[j, p - 1, seqs[j][p]].item() for p in range(st, st + n)) for j, (st, n) in enumerate(spans)]
        norm = [s / len(pairs[j][1]) for j, s in enumerate(scores)]
        acc_hits.append(int(max(range(len(scores)), key=lambda j: (scores[j], -j)) == r['label']))
        norm_hits.append(int(max(range(len(norm)), key=lambda j: (norm[j], -j)) == r['label']))
    zs[name] = {'n': len(recs), 'acc': sum(acc_hits) / len(recs), 'acc_norm': sum(norm_hits) / len(recs), 'mismatches': mism,
                'acc_hits': ''.join(map(str, acc_hits)), 'norm_hits': ''.join(map(str, norm_hits)), 'seconds': time.time() - t0}
    print(name, zs[name]['acc'], zs[name]['acc_norm'], zs[name]['seconds'], flush=True)
out['zero_shot'] = zs
import os
os.makedirs(os.environ.get('OUT', '.'), exist_ok=True)
json.dump(out, open(os.path.join(os.environ.get('OUT', '.'), 'reference.json'), 'w'), indent=1)
print(json.dumps(out['ppl128']))
