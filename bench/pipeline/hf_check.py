"""transformers reads lopper's pruned output (bf16 shards + index) and gets lopper's perplexity on the same windows
(DESIGN.md protocol: the whole file tokenized once with one BOS, non-overlapping windows of 128, first 64).
usage: python3 hf_check.py MODEL_DIR TEXT METRICS_JSON"""
import json, math, sys, torch
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForCausalLM
mdir, data, metrics = sys.argv[1:4]
torch.backends.cuda.matmul.allow_tf32 = False
# transformers 5 refuses hidden_size % num_attention_heads != 0 when a config is built, although LLaMA with an explicit
# head_dim does not need it (a pruned model has 24 heads of 128 over a 4096 hidden size): build the config with the
# original head count, then set the real ones; the model is sized by head_dim × heads.
raw = json.load(open(f"{mdir}/config.json"))
heads = raw["hidden_size"] // raw["head_dim"]; rep = raw["num_attention_heads"] // raw["num_key_value_heads"]
cfg = LlamaConfig(**{**raw, "num_attention_heads": heads, "num_key_value_heads": heads // rep})
cfg.num_attention_heads, cfg.num_key_value_heads = raw["num_attention_heads"], raw["num_key_value_heads"]
model = LlamaForCausalLM.from_pretrained(mdir, config=cfg, dtype=torch.float32, device_map="cuda", attn_implementation="eager")
tok = Tokenizer.from_file(f"{mdir}/tokenizer.json")
ids = [1] + tok.encode(open(data, encoding="utf-8").read(), add_special_tokens=False).ids
n = 64; x = torch.tensor(ids[: n * 128], device="cuda").view(n, 128)
nll = 0.0
with torch.no_grad():
    for i in range(0, n, 4):
        b = x[i:i + 4]; lp = torch.log_softmax(model(b).logits[:, :-1].double(), -1)
        nll -= lp.gather(-1, b[:, 1:, None]).sum().item()
hf = math.exp(nll / (n * 127))
lop = json.load(open(metrics))["models"]["pruned"]["perplexity"]["stories"]
print(json.dumps({"hf_ppl": hf, "lopper_ppl": lop, "rel_diff": abs(hf - lop) / hf, "params": sum(p.numel() for p in model.parameters()),
                  "dtype_on_disk": json.load(open(f"{mdir}/config.json")).get("torch_dtype")}))
