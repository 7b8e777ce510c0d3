# GPU peer of `npm run bench -- --only gpu`: W2 (SmolLM2-135M shape: vocab 49152, d 576, 30 layers, 9 heads / 3 KV heads,
# ffn 1536, tied embeddings, random weights) as transformers' LlamaForCausalLM with sdpa attention, trained the way a
# PyTorch user does mixed precision: fp32 master weights, torch.autocast(bfloat16), fused AdamW. Measures an SFT step
# (B x T tokens, mean token cross-entropy) and a DPO step (pairs x T, sigmoid loss beta 0.1, a frozen reference
# forward under no_grad) eagerly and with torch.compile, plus peak CUDA memory of each. Prints one JSON line.
# Not a correctness check (random weights): the losses are printed only to show both sides do the same work.
import argparse
import copy
import json
import statistics
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=10)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--batch", type=int, default=8)
p.add_argument("--seq", type=int, default=512)
p.add_argument("--pairs", type=int, default=8)
p.add_argument("--prompt", type=int, default=128)
p.add_argument("--modes", default="eager,compiled", help="SFT modes: comma list of eager, compiled")
p.add_argument("--dpo-modes", default="eager", help="DPO modes (compiling the policy and the reference again costs minutes)")
args = p.parse_args()

try:
    import torch
    import torch.nn.functional as F
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM
except Exception as e:  # the caller reports why the peer could not run
    print(json.dumps({"error": f"import failed: {e}"}))
    sys.exit(0)

if not torch.cuda.is_available():
    print(json.dumps({"error": "torch.cuda.is_available() is False"}))
    sys.exit(0)

dev = torch.device("cuda")
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
W2 = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
          num_key_value_heads=3, max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
          initializer_range=0.02)
LR, BETAS, EPS, WD, BETA = 1e-4, (0.9, 0.999), 1e-8, 0.0, 0.1


def tokens(rows, t, v, seed=2463534242):
    # xorshift32, the stream bench/gpu.ts uses
    out, x = [], seed
    for _ in range(rows * t):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out.append(x % v)
    return torch.tensor(out, dtype=torch.long).view(rows, t)


def build(mode):
    torch.manual_seed(0)
    cfg = LlamaConfig(**W2, attn_implementation="sdpa")
    model = LlamaForCausalLM(cfg).to(dev)  # fp32 master weights
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=BETAS, eps=EPS, weight_decay=WD, fused=True)
    fwd = torch.compile(model) if mode == "compiled" else model
    return model, fwd, opt


def seq_logps(fwd, ids):
    logits = fwd(input_ids=ids).logits[:, :-1].float()
    lp = torch.gather(F.log_softmax(logits, -1), 2, ids[:, 1:, None]).squeeze(-1)
    return lp


def time_steps(step, warmup, steps):
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    times, losses = [], []
    for _ in range(steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        loss = step()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1000)
        losses.append(loss)
    return statistics.median(times), losses


def sft(mode):
    model, fwd, opt = build(mode)
    ids = tokens(args.batch, args.seq, W2["vocab_size"]).to(dev)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = fwd(input_ids=ids).logits
        loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    t0 = time.time()
    step()  # the first step compiles in compiled mode
    first = time.time() - t0
    torch.cuda.reset_peak_memory_stats()
    med, losses = time_steps(step, args.warmup, args.steps)
    peak = torch.cuda.max_memory_allocated() / 2**20
    del model, fwd, opt
    torch.cuda.empty_cache()
    return {"step_s": med, "tokens_per_s": args.batch * args.seq / med, "peak_mib": peak, "first_step_s": first, "losses": losses[:3]}


def dpo(mode):
    model, fwd, opt = build(mode)
    ref = copy.deepcopy(model).requires_grad_(False).eval()
    reff = torch.compile(ref) if mode == "compiled" else ref
    b = args.pairs
    seq = tokens(2 * b, args.seq, W2["vocab_size"])
    seq[b:, : args.prompt] = seq[:b, : args.prompt]
    seq = seq.to(dev)
    mask = torch.zeros(2 * b, args.seq - 1, device=dev)
    mask[:, args.prompt - 1 :] = 1  # completion tokens

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            with torch.no_grad():
                rl = (seq_logps(reff, seq) * mask).sum(-1)
            pl = (seq_logps(fwd, seq) * mask).sum(-1)
        logits = BETA * ((pl[:b] - pl[b:]) - (rl[:b] - rl[b:]))
        loss = -F.logsigmoid(logits).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    step()
    torch.cuda.reset_peak_memory_stats()
    med, losses = time_steps(step, args.warmup, args.steps)
    peak = torch.cuda.max_memory_allocated() / 2**20
    del model, fwd, opt, ref, reff
    torch.cuda.empty_cache()
    return {"step_s": med, "pairs_per_s": b / med, "peak_mib": peak, "losses": losses[:3]}


out = {
    "torch": torch.__version__,
    "transformers": transformers.__version__,
    "gpu": torch.cuda.get_device_name(0),
    "config": "fp32 master weights, torch.autocast(bfloat16), sdpa attention, fused AdamW, TF32 allowed",
    "params": sum(p.numel() for p in LlamaForCausalLM(LlamaConfig(**W2)).parameters()),
}
def modes(s):
    return [m.strip() for m in s.split(",") if m.strip()]


for kind, run in (("sft", sft), ("dpo", dpo)):
    for mode in modes(args.modes if kind == "sft" else args.dpo_modes):
        try:
            out[f"{kind}_{mode}"] = run(mode)
        except Exception as e:  # a mode that fails (e.g. torch.compile without a compiler) is reported, not fatal
            out[f"{kind}_{mode}_error"] = f"{type(e).__name__}: {e}"[:500]
print(json.dumps(out))
