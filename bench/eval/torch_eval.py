"""The PyTorch side of the evaluation benchmark (bench/eval/run.sh): the zero-shot requests lopper scores
(bench/eval/requests.ts: same templates, tokenization and truncation), scored the way a batched lm-evaluation-harness
loop does — one sequence per choice, sorted longest first, right-padded batches of up to BATCH_TOKENS ids — and
perplexity on non-overlapping 128-id windows of BOS + the whole text, 16 windows a batch.
usage: python3 torch_eval.py MODEL REQUESTS.jsonl float32|bfloat16 BATCH_TOKENS OUT.json [PPL_TEXT ...]
(PPL_LIMIT=N: the first N windows of each text, as the recipe's perplexity.limit)"""
import json, math, os, sys, time, torch
from tokenizers import Tokenizer
from transformers import LlamaForCausalLM

mdir, reqs, dtype, batch_tokens, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
texts = sys.argv[6:]
torch.backends.cuda.matmul.allow_tf32 = False
t0 = time.time()
model = LlamaForCausalLM.from_pretrained(mdir, dtype=getattr(torch, dtype), device_map="cuda", attn_implementation="sdpa").eval()
torch.cuda.synchronize()
res = {"dtype": dtype, "load_s": round(time.time() - t0, 2), "tasks": {}, "perplexity": {}}
questions = [json.loads(l) for l in open(reqs)]
flat = [(qi, ci, c) for qi, q in enumerate(questions) for ci, c in enumerate(q["choices"])]
scores = [[0.0] * len(q["choices"]) for q in questions]
order = sorted(range(len(flat)), key=lambda i: -len(flat[i][2]["ids"]))
torch.cuda.reset_peak_memory_stats()
t = time.time(); tokens = 0; padded = 0
with torch.no_grad():
    i = 0
    while i < len(order):
        L = len(flat[order[i]][2]["ids"])
        n = max(1, batch_tokens // L)
        batch = order[i:i + n]; i += n
        x = torch.zeros((len(batch), L), dtype=torch.long)
        for b, k in enumerate(batch):
            ids = flat[k][2]["ids"]; x[b, :len(ids)] = torch.tensor(ids); tokens += len(ids)
        padded += x.numel()
        lp = torch.log_softmax(model(x.cuda()).logits.float(), -1)
        for b, k in enumerate(batch):
            qi, ci, c = flat[k]
            pos = torch.arange(c["start"] - 1, c["start"] + c["length"] - 1, device="cuda")
            tgt = torch.tensor(c["ids"][c["start"]:c["start"] + c["length"]], device="cuda")
            scores[qi][ci] = lp[b, pos, tgt].sum().item()
torch.cuda.synchronize()
seconds = time.time() - t
predictions = []
for q, s in zip(questions, scores):
    acc = max(range(len(s)), key=lambda j: s[j])
    norm = max(range(len(s)), key=lambda j: s[j] / q["choices"][j]["chars"])
    predictions.append({"task": q["task"], "line": q["line"], "label": q["label"], "acc": acc, "acc_norm": norm, "scores": s})
for task in dict.fromkeys(q["task"] for q in questions):
    mine = [p for p in predictions if p["task"] == task]
    res["tasks"][task] = {"questions": len(mine), "acc": sum(p["acc"] == p["label"] for p in mine) / len(mine),
                          "acc_norm": sum(p["acc_norm"] == p["label"] for p in mine) / len(mine)}
res["zero_shot"] = {"seconds": round(seconds, 2), "tokens": tokens, "padded_tokens": padded, "tokens_per_second": round(tokens / seconds),
                    "peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 2**30, 1)}
tok = Tokenizer.from_file(f"{mdir}/tokenizer.json")
for path in texts:
    ids = [1] + tok.encode(open(path, encoding="utf-8").read(), add_special_tokens=False).ids
    n = min(len(ids) // 128, int(os.environ.get("PPL_LIMIT", "1000000000")))
    xw = torch.tensor(ids[: n * 128]).view(n, 128)
    t = time.time(); nll = 0.0
    with torch.no_grad():
        for i in range(0, n, 16):
            b = xw[i:i + 16].cuda(); lg = model(b).logits[:, :-1].float()
            nll -= torch.log_softmax(lg, -1).gather(-1, b[:, 1:, None]).sum().item()
    torch.cuda.synchronize()
    res["perplexity"][path.split("/")[-1]] = {"ppl": math.exp(nll / (n * 127)), "windows": n, "seconds": round(time.time() - t, 2),
                                              "tokens_per_second": round(n * 128 / (time.time() - t))}
res["predictions"] = predictions
json.dump(res, open(out, "w"))
print(json.dumps({k: v for k, v in res.items() if k != "predictions"}, indent=1))
