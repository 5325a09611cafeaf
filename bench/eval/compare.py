"""Per task, how many questions lopper (its evaluate stage's samples.jsonl) and the PyTorch loop (torch_eval.py's
output) predict alike, and both accuracies.  usage: python3 compare.py SAMPLES.jsonl TORCH.json MODEL"""
import json, sys
samples = [json.loads(l) for l in open(sys.argv[1])]
torch = json.load(open(sys.argv[2]))["predictions"]
model = sys.argv[3]
mine = {(s["task"], s["line"]): s for s in samples if s["model"] == model}
out = {}
for task in dict.fromkeys(p["task"] for p in torch):
    theirs = [p for p in torch if p["task"] == task]
    pairs = [(mine[(task, p["line"])], p) for p in theirs]
    metric = "acc_norm" if "acc_norm" in pairs[0][0] else "acc"
    same = sum(a[metric] == b[metric] for a, b in pairs)
    worst = max(abs(x - y) / max(1.0, abs(y)) for a, b in pairs for x, y in zip(a["scores"], b["scores"]))
    out[task] = {"questions": len(pairs), "metric": metric, "same_predictions": same, "agreement": round(same / len(pairs), 5),
                 "lopper": sum(a[metric] == a["label"] for a, _ in pairs) / len(pairs),
                 "torch": sum(b[metric] == b["label"] for _, b in pairs) / len(pairs), "max_rel_score_diff": worst}
total = sum(v["questions"] for v in out.values()); same = sum(v["same_predictions"] for v in out.values())
out["all"] = {"questions": total, "same_predictions": same, "agreement": round(same / total, 5)}
print(json.dumps(out, indent=1))
