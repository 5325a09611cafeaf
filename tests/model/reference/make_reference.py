# Builds tiny random LLaMA-family models with transformers and records float64 reference logits, loss and
# gradients for lopper's model tests (tests/model/variants.test.ts). Run where torch + transformers are installed:
#   python tests/model/reference/make_reference.py OUT_DIR
# Variants: LLaMA with attention/MLP biases, untied LM head and llama3 rope scaling; Qwen2 (q/k/v biases, tied).
import json, os, sys
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

out = sys.argv[1]
common = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              vocab_size=64, max_position_embeddings=128, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2)
variants = {
    'llama-bias-llama3rope': (LlamaForCausalLM, LlamaConfig(**common, attention_bias=True, mlp_bias=True, tie_word_embeddings=False,
        rope_theta=500000.0, rope_scaling={'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
        'original_max_position_embeddings': 16})),
    'qwen2': (Qwen2ForCausalLM, Qwen2Config(**common, tie_word_embeddings=True, rope_theta=1000000.0, use_sliding_window=False)),
    'llama-linear-rope': (LlamaForCausalLM, LlamaConfig(**common, tie_word_embeddings=True, rope_scaling={'rope_type': 'linear', 'factor': 4.0})),
}
for name, (cls, cfg) in variants.items():
    torch.manual_seed(0)
    cfg._attn_implementation = 'eager'
    model = cls(cfg).float().eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if 'norm' in n:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.2 * torch.randn_like(p))
    d = os.path.join(out, name)
    model.save_pretrained(d, safe_serialization=True)
    model = model.double()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 64, (2, 40), generator=g)
    ids[:, 0] = 1
    res = model(input_ids=ids, labels=ids)
    res.loss.backward()
    t = {'input_ids': ids.to(torch.int32).contiguous(), 'logits': res.logits.detach().float().contiguous()}
    for n, p in model.named_parameters():
        t['grad.' + n] = p.grad.float().contiguous()
    save_file(t, os.path.join(d, 'reference.safetensors'))
    with open(os.path.join(d, 'reference.json'), 'w') as f:
        json.dump({'loss': res.loss.item(), 'max_abs_logit': res.logits.abs().max().item()}, f)
    print(name, res.loss.item())
