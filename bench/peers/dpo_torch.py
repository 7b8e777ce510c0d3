# DPO peer: one DPO step (sigmoid loss, beta 0.1) on W1's architecture in plain torch: policy forward over
# [chosen; rejected] (2B x T), a frozen deep-copied reference forward under no_grad, backward, AdamW.
# The model is W1's own (bench/peers/w1_torch.py's source up to its training section, run here), so both
# benches measure the same network. Prints one JSON line. Not a library: no HF, no data loading.
import argparse
import copy
import json
import os
import statistics
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=5)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--pairs", type=int, default=8)
p.add_argument("--seq", type=int, default=256)
p.add_argument("--prompt", type=int, default=128)
args = p.parse_args()

# W1's model definitions: execute w1_torch.py up to the line that builds its model
src_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "w1_torch.py")
src = open(src_path).read()
cut = src.index("\nmodel = Decoder()")
saved_argv = sys.argv
sys.argv = [src_path, "--threads", str(args.threads), "--seq", str(args.seq)]
w1 = {"__name__": "w1_torch"}
exec(compile(src[:cut], src_path, "exec"), w1)
sys.argv = saved_argv
torch, F = w1["torch"], w1["F"]

BETA = 0.1
b, t = args.pairs, args.seq
policy = w1["Decoder"]()
ref = copy.deepcopy(policy).requires_grad_(False).eval()
opt = torch.optim.AdamW(policy.parameters(), lr=w1["LR"], betas=w1["BETAS"], eps=w1["ADAM_EPS"], weight_decay=w1["WD"])

seq = w1["w1_tokens"](2 * b, t - 1, w1["args"].vocab)  # (2B, T), the same stream as bench/dpo.ts
seq[b:, : args.prompt] = seq[:b, : args.prompt]  # each rejected shares its chosen's prompt
mask = torch.zeros(2 * b, t - 1)
mask[:, args.prompt - 1 :] = 1.0  # targets t >= prompt are completion tokens


def seq_logps(model, ids):
    logits = model(ids)  # (2B, T, V)
    lp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (lp * mask).sum(-1)  # (2B)


def step():
    t0 = time.perf_counter()
    pol = seq_logps(policy, seq)
    with torch.no_grad():
        rl = seq_logps(ref, seq)
    logits = BETA * ((pol[:b] - rl[:b]) - (pol[b:] - rl[b:]))
    loss = -F.logsigmoid(logits).mean()
    t1 = time.perf_counter()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item(), t1 - t0, time.perf_counter() - t0


losses, totals, fwd = [], [], []
for i in range(args.warmup + args.steps):
    loss, f, tot = step()
    losses.append(loss)
    if i >= args.warmup:
        totals.append(tot)
        fwd.append(f)
med = statistics.median(totals)
print(
    json.dumps(
        {
            "pairs_per_s": b / med,
            "step_s_median": med,
            "forward_s_median": statistics.median(fwd),
            "step_s_samples": totals,
            "losses": losses,
            "params": sum(x.numel() for x in policy.parameters()),
            "config": {"torch": torch.__version__, "threads": torch.get_num_threads(), "pairs": b, "seq": t, "prompt": args.prompt},
        }
    )
)
