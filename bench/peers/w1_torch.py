# W1 peer: the W1 training step (Llama-style decoder, fp32, forward + mean token cross-entropy + backward + AdamW)
# written plainly with torch.nn, timed the same way as bench/w1.ts, printing one JSON line on stdout.
# It is not a model library: no HF transformers (not in Debian), no checkpoint I/O, no sampling.
# Threads, BLAS core type and library path are set by the caller (bench/run.ts) through the environment;
# this script only calls torch.set_num_threads(--threads) and reports what it actually ran with.
import argparse
import ctypes
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=5)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--batch", type=int, default=8)
p.add_argument("--seq", type=int, default=256)
p.add_argument("--vocab", type=int, default=2048)
p.add_argument("--hidden", type=int, default=256)
p.add_argument("--layers", type=int, default=4)
p.add_argument("--heads", type=int, default=8)
p.add_argument("--kv-heads", type=int, default=8)
p.add_argument("--ffn", type=int, default=768)
p.add_argument("--bf16", action="store_true", help="bf16 autocast (information only; W1 itself is fp32)")
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)

EPS = 1e-5
THETA = 10000.0
LR, BETAS, ADAM_EPS, WD = 1e-3, (0.9, 0.999), 1e-8, 0.01


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + EPS))


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

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.nkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if self.nkv != self.nh:  # GQA: repeat kv heads (HF repeat_kv)
            rep = self.nh // self.nkv
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        # HF eager attention: scores, additive causal mask, fp32 softmax, weighted sum
        w = torch.matmul(q, k.transpose(2, 3)) * (1.0 / math.sqrt(self.hd)) + mask
        w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        o = torch.matmul(w, v).transpose(1, 2).reshape(b, t, self.nh * self.hd)
        return self.o_proj(o)


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

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        d = args.hidden
        self.embed_tokens = nn.Embedding(args.vocab, d)
        self.layers = nn.ModuleList(Block(d, args.heads, args.kv_heads, args.ffn) for _ in range(args.layers))
        self.norm = RMSNorm(d)
        self.lm_head = nn.Linear(d, args.vocab, bias=False)  # untied
        for m in self.modules():  # HF Llama init: normal(0, 0.02), norms at 1
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
        hd = d // args.heads
        inv = 1.0 / (THETA ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        ang = torch.outer(torch.arange(args.seq, dtype=torch.float32), inv)
        emb = torch.cat((ang, ang), dim=-1)
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)
        mask = torch.full((args.seq, args.seq), torch.finfo(torch.float32).min).triu(1)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, ids):
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin, self.mask)
        return self.lm_head(self.norm(x))


def w1_tokens(b, t, v):
    """The same deterministic token stream as bench/w1.ts (xorshift32), [b, t + 1]."""
    x = 2463534242
    out = []
    for _ in range(b * (t + 1)):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out.append(x % v)
    return torch.tensor(out, dtype=torch.long).view(b, t + 1)


def blas_library():
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "blas" in line.split()[-1]}
        return sorted(libs)
    except OSError:
        return []


def blas_corename():
    for lib in blas_library():
        if "openblas" in lib:
            try:
                f = ctypes.CDLL(lib).openblas_get_corename
                f.restype = ctypes.c_char_p
                return f().decode()
            except (OSError, AttributeError):
                pass
    return None


model = Decoder()
opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=BETAS, eps=ADAM_EPS, weight_decay=WD)
seq = w1_tokens(args.batch, args.seq, args.vocab)
inputs, targets = seq[:, :-1].contiguous(), seq[:, 1:].contiguous()


def step():
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
        logits = model(inputs)
        loss = F.cross_entropy(logits.float().view(-1, args.vocab), targets.view(-1))
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    opt.zero_grad(set_to_none=True)
    t3 = time.perf_counter()
    return loss.item(), t1 - t0, t2 - t1, t3 - t2


losses, fwd, bwd, upd = [], [], [], []
for i in range(args.warmup + args.steps):
    loss, a, b, c = step()
    losses.append(loss)
    if i >= args.warmup:
        fwd.append(a)
        bwd.append(b)
        upd.append(c)
totals = [a + b + c for a, b, c in zip(fwd, bwd, upd)]
med = statistics.median(totals)
n_params = sum(p.numel() for p in model.parameters())
print(
    json.dumps(
        {
            "tokens_per_s": args.batch * args.seq / med,
            "step_s_median": med,
            "step_s_min": min(totals),
            "step_s_samples": totals,
            "forward_s_median": statistics.median(fwd),
            "backward_s_median": statistics.median(bwd),
            "optimizer_s_median": statistics.median(upd),
            "losses": losses,
            "params": n_params,
            "config": {
                "torch": torch.__version__,
                "python": sys.version.split()[0],
                "threads": torch.get_num_threads(),
                "dtype": "bf16 autocast" if args.bf16 else "fp32",
                "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
                "LD_LIBRARY_PATH": os.environ.get("LD_LIBRARY_PATH"),
                "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                "blas_loaded": blas_library(),
                "blas_corename": blas_corename(),
                "shape": {
                    "batch": args.batch,
                    "seq": args.seq,
                    "vocab": args.vocab,
                    "hidden": args.hidden,
                    "layers": args.layers,
                    "heads": args.heads,
                    "kv_heads": args.kv_heads,
                    "ffn": args.ffn,
                },
                "optimizer": {"lr": LR, "betas": BETAS, "eps": ADAM_EPS, "weight_decay": WD, "foreach": "default"},
                "warmup": args.warmup,
                "steps": args.steps,
            },
        }
    )
)
