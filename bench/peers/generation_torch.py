# Generation peer: the same work as bench/generation.ts and bench/rollouts.ts in plain PyTorch (fp32,
# inference_mode): batched sampling at temperature 1 with a KV cache grown by torch.cat each step (as HF's
# DynamicCache does) or, with --cache static, preallocated and written in place (HF's StaticCache without compile),
# and a teacher-forced forward (logits for every position). Prints one JSON line on stdout.
# It is not a model library: random weights, no HF transformers, no tokenizer, no padding (all prompts equal).
# Threads, BLAS core type and library path come from the caller's environment; this script only calls
# torch.set_num_threads(--threads).
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--mode", choices=["generate", "forward"], required=True)
p.add_argument("--batch", type=int, default=1)
p.add_argument("--prompt", type=int, default=16, help="prompt length (generate) or sequence length (forward)")
p.add_argument("--new", type=int, default=128, help="new tokens per row (generate)")
p.add_argument("--vocab", type=int, default=2048)
p.add_argument("--hidden", type=int, default=256)
p.add_argument("--layers", type=int, default=4)
p.add_argument("--heads", type=int, default=8)
p.add_argument("--kv-heads", type=int, default=8)
p.add_argument("--ffn", type=int, default=768)
p.add_argument("--tied", action="store_true")
p.add_argument("--theta", type=float, default=10000.0)
p.add_argument("--reps", type=int, default=3)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--cache", choices=["dynamic", "static"], default="dynamic", help="KV cache: torch.cat per step, or preallocated")
args = p.parse_args()

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
EPS = 1e-5


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Attention(nn.Module):
    def __init__(self, d, nh, nkv):
        super().__init__()
        self.nh, self.nkv, self.hd = nh, nkv, d // nh
        self.q_proj = nn.Linear(d, nh * self.hd, bias=False)
        self.k_proj = nn.Linear(d, nkv * self.hd, bias=False)
        self.v_proj = nn.Linear(d, nkv * self.hd, bias=False)
        self.o_proj = nn.Linear(nh * self.hd, d, bias=False)

    def forward(self, x, cos, sin, cache, layer):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.nkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if isinstance(cache, StaticCache):
            k, v = cache.update(layer, k, v)
        elif cache is not None:
            if layer < len(cache):
                k = torch.cat((cache[layer][0], k), dim=2)  # (B, Hkv, S_past + T, Dh), like HF DynamicCache
                v = torch.cat((cache[layer][1], v), dim=2)
                cache[layer] = (k, v)
            else:
                cache.append((k, v))
        if self.nkv != self.nh:  # GQA (HF repeat_kv)
            k = k.repeat_interleave(self.nh // self.nkv, dim=1)
            v = v.repeat_interleave(self.nh // self.nkv, dim=1)
        # HF eager attention (torch 1.13 has no SDPA): scores, additive causal mask aligned to the end, fp32 softmax
        w = torch.matmul(q, k.transpose(2, 3)) * (self.hd**-0.5)
        if t > 1:  # one new query sees every cached key; several (prefill) need the causal mask
            s = k.shape[2]
            w = w + torch.full((t, s), torch.finfo(w.dtype).min).triu(s - t + 1)
        o = torch.matmul(F.softmax(w, dim=-1, dtype=torch.float32), v)
        return self.o_proj(o.transpose(1, 2).reshape(b, t, self.nh * self.hd))


class StaticCache:
    """Preallocated keys/values [B, Hkv, S_max, Dh] per layer, written in place (HF StaticCache, eager)."""

    def __init__(self, b, nkv, hd, s_max, layers):
        self.k = [torch.zeros(b, nkv, s_max, hd) for _ in range(layers)]
        self.v = [torch.zeros(b, nkv, s_max, hd) for _ in range(layers)]
        self.pos = 0

    def update(self, layer, k, v):
        t = k.shape[2]
        self.k[layer][:, :, self.pos : self.pos + t] = k
        self.v[layer][:, :, self.pos : self.pos + t] = v
        end = self.pos + t
        if layer == len(self.k) - 1:
            self.pos = end
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


class MLP(nn.Module):
    def __init__(self, d, f):
        super().__init__()
        self.gate_proj = nn.Linear(d, f, bias=False)
        self.up_proj = nn.Linear(d, f, bias=False)
        self.down_proj = nn.Linear(f, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, d, nh, nkv, f):
        super().__init__()
        self.input_layernorm = RMSNorm(d)
        self.self_attn = Attention(d, nh, nkv)
        self.post_attention_layernorm = RMSNorm(d)
        self.mlp = MLP(d, f)

    def forward(self, x, cos, sin, cache, layer):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, layer)
        return x + self.mlp(self.post_attention_layernorm(x))


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        d = args.hidden
        self.embed_tokens = nn.Embedding(args.vocab, d)
        self.layers = nn.ModuleList(Block(d, args.heads, args.kv_heads, args.ffn) for _ in range(args.layers))
        self.norm = RMSNorm(d)
        self.lm_head = nn.Linear(d, args.vocab, bias=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
        if args.tied:
            self.lm_head.weight = self.embed_tokens.weight
        hd = d // args.heads
        self.inv = 1.0 / (args.theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))

    def forward(self, ids, past, cache, last_only):
        t = ids.shape[1]
        ang = torch.outer(torch.arange(past, past + t, dtype=torch.float32), self.inv)
        emb = torch.cat((ang, ang), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        x = self.embed_tokens(ids)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, cache, i)
        x = self.norm(x)
        if last_only:
            x = x[:, -1:]
        return self.lm_head(x)


model = Decoder().eval()
gen = torch.Generator().manual_seed(args.seed)


def run_generate():
    ids = torch.randint(0, args.vocab, (args.batch, args.prompt), generator=gen)
    if args.cache == "static":
        cache = StaticCache(args.batch, args.kv_heads, args.hidden // args.heads, args.prompt + args.new, args.layers)
    else:
        cache = []
    out = []
    with torch.inference_mode():
        logits = model(ids, 0, cache, True)[:, -1]
        for step in range(args.new):
            nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=gen)  # temperature 1
            out.append(nxt)
            if step == args.new - 1:
                break
            logits = model(nxt, args.prompt + step, cache, True)[:, -1]
    return torch.cat(out, dim=1)


def run_forward():
    ids = torch.randint(0, args.vocab, (args.batch, args.prompt), generator=gen)
    with torch.inference_mode():
        return model(ids, 0, None, False)


fn = run_generate if args.mode == "generate" else run_forward
for _ in range(args.warmup):
    fn()
samples = []
for _ in range(args.reps):
    t0 = time.perf_counter()
    fn()
    samples.append(time.perf_counter() - t0)
med = statistics.median(samples)
tokens = args.batch * (args.new if args.mode == "generate" else args.prompt)
print(
    json.dumps(
        {
            "tokens_per_s": tokens / med,
            "s_median": med,
            "samples": samples,
            "params": sum(p.numel() for p in model.parameters()),
            "config": {
                "torch": torch.__version__,
                "python": sys.version.split()[0],
                "threads": torch.get_num_threads(),
                "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
                "LD_LIBRARY_PATH": os.environ.get("LD_LIBRARY_PATH"),
                "args": vars(args),
            },
        }
    )
)
