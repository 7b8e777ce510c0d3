// CausalLM against the HF transformers fixtures (llama-tiny, qwen2-tiny) on every available backend:
// logits, token log-probs, loss and every parameter gradient; greedy decoding through the KV cache;
// cached decoding of a padded batch equal to the full forward; load → save → load round trips.
// Fixtures: ../shared/fixtures/hf/README.md (tolerances: 1e-4 abs; gradients 1e-3 of each tensor's max-abs).

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { setBackend } from "../src/backend/index.js";
import { readSafetensors } from "../src/io/safetensors.js";
import { CausalLM, cacheLength, createKVCache, loadCausalLM, saveCausalLM } from "../src/models/index.js";
import { argmax, concat, fromArray, mul, noGrad, slice, sum, type Tensor, tokenLogprobs } from "../src/tensor/index.js";
import { testBackends } from "./helpers/backends.js";

const FIXTURES = fileURLToPath(new URL("../../shared/fixtures/hf/", import.meta.url));
const MODELS = ["llama-tiny", "qwen2-tiny"] as const;

function expected(name: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, t] of readSafetensors(path.join(FIXTURES, name, "expected.safetensors")).tensors) out.set(k, fromArray(t.data, t.shape));
  return out;
}

function get(m: Map<string, Tensor>, k: string): Tensor {
  const t = m.get(k);
  assert.ok(t, `fixture tensor ${k} is missing`);
  return t;
}

/** log p(ids[t+1] | ids[..t]) masked where either position is padding: [B, T-1]. */
function maskedTokenLogprobs(logits: Tensor, ids: Tensor, mask: Tensor): Tensor {
  const [b, t] = ids.shape;
  const idd = ids.hostData();
  const md = mask.hostData();
  const targets = new Int32Array(b * (t - 1));
  const pairMask = new Float32Array(b * (t - 1));
  for (let r = 0; r < b; r++) {
    for (let j = 0; j < t - 1; j++) {
      targets[r * (t - 1) + j] = idd[r * t + j + 1];
      pairMask[r * (t - 1) + j] = md[r * t + j] * md[r * t + j + 1];
    }
  }
  // (B, T, V) -> (B, T-1)
  return mul(tokenLogprobs(slice(logits, 1, 0, t - 1), fromArray(targets, [b, t - 1])), fromArray(pairMask, [b, t - 1]));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

for (const backend of testBackends()) {
  describe(`HF fixtures on '${backend}'`, () => {
    for (const name of MODELS) {
      test(`${name}: logits, token log-probs, loss and every gradient match transformers`, async (t) => {
        setBackend(backend);
        const model = await loadCausalLM(path.join(FIXTURES, name));
        const ex = expected(name);
        const ids = get(ex, "input_ids");
        const mask = get(ex, "attention_mask");
        const { logits } = model.forward({ inputIds: ids, attentionMask: mask, positionIds: get(ex, "position_ids") });
        const [b, len, v] = logits.shape;
        assert.deepEqual(logits.shape, get(ex, "logits").shape);

        const el = get(ex, "logits").hostData();
        let logitErr = 0;
        const md = mask.hostData();
        const ld = logits.hostData();
        for (let r = 0; r < b * len; r++) {
          if (md[r] === 0) continue;
          for (let j = 0; j < v; j++) logitErr = Math.max(logitErr, Math.abs(ld[r * v + j] - el[r * v + j]));
        }
        assert.ok(logitErr < 1e-4, `logits max abs err ${logitErr}`);

        const lp = maskedTokenLogprobs(logits, ids, mask);
        const lpErr = maxAbsDiff(lp.hostData(), get(ex, "token_logprobs").hostData());
        assert.ok(lpErr < 1e-4, `token_logprobs max abs err ${lpErr}`);

        const loss = sum(lp);
        assert.ok(Math.abs(loss.item() - get(ex, "loss").item()) < 1e-3, `loss ${loss.item()} vs ${get(ex, "loss").item()}`);
        loss.backward();

        const gradKeys = [...ex.keys()].filter((k) => k.startsWith("grad.")).map((k) => k.slice(5));
        const names = [...model.namedParameters()].map(([n]) => n);
        assert.deepEqual([...names].sort(), [...gradKeys].sort(), "parameter names = HF's");
        let worst = 0;
        for (const [pname, p] of model.namedParameters()) {
          const g = get(ex, `grad.${pname}`);
          assert.ok(p.grad, `${pname} has no gradient`);
          let scale = 0;
          const gd = g.hostData();
          for (let i = 0; i < g.size; i++) scale = Math.max(scale, Math.abs(gd[i]));
          const rel = maxAbsDiff(p.grad.hostData(), g.hostData()) / scale;
          worst = Math.max(worst, rel);
          assert.ok(rel < 1e-3, `grad of ${pname}: max err / max-abs = ${rel}`);
        }
        t.diagnostic(
          `${backend} ${name}: logits ${logitErr.toExponential(2)}, logprobs ${lpErr.toExponential(2)}, grads rel ${worst.toExponential(2)}`,
        );
      });

      test(`${name}: greedy decoding through the KV cache reproduces transformers' generate`, async () => {
        setBackend(backend);
        const model = await loadCausalLM(path.join(FIXTURES, name));
        const gen = JSON.parse(fs.readFileSync(path.join(FIXTURES, name, "generate.json"), "utf-8")) as {
          prompt: number[];
          greedy: number[];
        };
        const cache = createKVCache();
        const out = [...gen.prompt];
        noGrad(() => {
          let step = fromArray(Int32Array.from(gen.prompt), [1, gen.prompt.length]);
          while (out.length < gen.greedy.length) {
            const { logits } = model.forward({ inputIds: step, kvCache: cache });
            const next = argmax(slice(logits, 1, -1), -1).hostData()[0]; // (1, T, V) -> (1, 1, V) -> id
            out.push(next);
            step = fromArray(Int32Array.from([next]), [1, 1]);
          }
        });
        assert.deepEqual(out, gen.greedy);
        assert.equal(cacheLength(cache), gen.greedy.length - 1);
      });

      test(`${name}: cached decode of a padded batch equals the full forward`, async () => {
        setBackend(backend);
        const model = await loadCausalLM(path.join(FIXTURES, name));
        const ex = expected(name);
        const ids = get(ex, "input_ids");
        const mask = get(ex, "attention_mask");
        const [b, t] = ids.shape;
        const split = 8; // rows: full, left-padded (first 4 masked), right-padded (last 3 masked)
        noGrad(() => {
          const full = model.forward({ inputIds: ids, attentionMask: mask }).logits;
          const cache = createKVCache();
          const parts = [
            model.forward({ inputIds: slice(ids, 1, 0, split), attentionMask: slice(mask, 1, 0, split), kvCache: cache }).logits,
          ];
          for (let j = split; j < t; j++) {
            parts.push(
              model.forward({ inputIds: slice(ids, 1, j, j + 1), attentionMask: slice(mask, 1, 0, j + 1), kvCache: cache }).logits,
            );
          }
          const inc = concat(parts, 1);
          const v = full.shape[2];
          let err = 0;
          const [md, fd, id] = [mask.hostData(), full.hostData(), inc.hostData()];
          for (let r = 0; r < b * t; r++) {
            if (md[r] === 0) continue;
            for (let k = 0; k < v; k++) err = Math.max(err, Math.abs(fd[r * v + k] - id[r * v + k]));
          }
          assert.ok(err < 1e-5, `cached vs full max abs err ${err}`);
          // and the default positions (cumsum of the mask) equal the fixture's
          const fixturePos = model.forward({ inputIds: ids, attentionMask: mask, positionIds: get(ex, "position_ids") }).logits;
          assert.ok(maxAbsDiff(fixturePos.hostData(), full.hostData()) === 0, "default positions = cumsum(mask) - 1");
        });
      });
    }
  });
}

describe("checkpoint round trip", () => {
  for (const name of MODELS) {
    test(`${name}: load → save → load gives identical tensors and config`, async () => {
      const src = path.join(FIXTURES, name);
      const model = await loadCausalLM(src);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-rt-"));
      try {
        saveCausalLM(model, dir);
        const again = await loadCausalLM(dir);
        assert.deepEqual(again.config, model.config);
        const a = model.stateDict();
        const b = again.stateDict();
        assert.deepEqual([...a.keys()], [...b.keys()]);
        for (const [k, t] of a) assert.ok(maxAbsDiff(t.hostData(), (b.get(k) as Tensor).hostData()) === 0, `${k} changed`);
        // the written files are what transformers itself wrote
        assert.equal(fs.readFileSync(path.join(dir, "config.json"), "utf-8"), fs.readFileSync(path.join(src, "config.json"), "utf-8"));
        const written = fs.readFileSync(path.join(dir, "model.safetensors"));
        assert.ok(
          written.equals(fs.readFileSync(path.join(src, "model.safetensors"))),
          "model.safetensors is byte-identical to save_pretrained's",
        );
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  test("a sharded save (index + shards) loads back identical", async () => {
    const model = await loadCausalLM(path.join(FIXTURES, "llama-tiny"));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-shard-"));
    try {
      saveCausalLM(model, dir, { maxShardBytes: 200_000 });
      assert.ok(fs.existsSync(path.join(dir, "model.safetensors.index.json")));
      assert.ok(!fs.existsSync(path.join(dir, "model.safetensors")));
      const again = await loadCausalLM(dir);
      for (const [k, t] of model.stateDict()) assert.ok(maxAbsDiff(t.hostData(), (again.stateDict().get(k) as Tensor).hostData()) === 0, k);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("loading reports a checkpoint that does not fit the config", async () => {
    const src = path.join(FIXTURES, "llama-tiny");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-bad-"));
    try {
      const cfg = JSON.parse(fs.readFileSync(path.join(src, "config.json"), "utf-8"));
      fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...cfg, intermediate_size: 128 }));
      fs.copyFileSync(path.join(src, "model.safetensors"), path.join(dir, "model.safetensors"));
      await assert.rejects(
        loadCausalLM(dir),
        /"model\.layers\.0\.mlp\.gate_proj\.weight" is \[160,64\] in the checkpoint, config\.json implies \[128,64\]/,
      );
      fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...cfg, num_hidden_layers: 1 }));
      await assert.rejects(loadCausalLM(dir), /the checkpoint has 9 tensor\(s\) config\.json does not: "model\.layers\.1\./);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a tied model has no lm_head.weight parameter and its head is the embedding", async () => {
    const qwen = await loadCausalLM(path.join(FIXTURES, "qwen2-tiny"));
    const names = [...qwen.namedParameters()].map(([n]) => n);
    assert.ok(!names.includes("lm_head.weight"));
    assert.equal(qwen.lmHeadWeight, qwen.model.embedTokens.weight);
    const llama = await loadCausalLM(path.join(FIXTURES, "llama-tiny"));
    assert.ok([...llama.namedParameters()].some(([n]) => n === "lm_head.weight"));
    assert.ok(llama instanceof CausalLM && llama.lmHead !== null);
  });
});
