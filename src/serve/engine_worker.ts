// The generation worker of `nexus serve`: a worker thread that owns a copy of the model and the rollout engine
// (src/generate/engine.ts) and steps it whenever it has work, so the HTTP thread never waits for a forward pass
// (health checks and streams keep flowing under any load). Between steps it reads its messages (new rows,
// cancellations, adapters). It knows token ids only: text, stop strings and seeds are the HTTP thread's (engine.ts).

import { getPriority, setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import { setBackend } from "../backend/index.js";
import { RolloutEngine } from "../generate/engine.js";
import { CausalLM } from "../models/causal_lm.js";
import { applyLora, type LoraModel } from "../models/lora.js";
import { Rng } from "../nn/rng.js";
import { Tensor } from "../tensor/index.js";
import type { FromWorker, TokenMsg, ToWorker, WorkerInit } from "./worker_protocol.js";

const port = parentPort;
if (port === null) throw new Error("[serve worker] must run as a worker thread");
const post = (m: FromWorker) => port.postMessage(m);

// This thread runs below the HTTP thread: on Linux the nice value is per thread and the kernel threads it starts
// inherit it, so when every core is generating the scheduler still runs the HTTP thread at once (/health, streams,
// 429s). Raising a nice value needs no privilege; where it is refused the default stays.
const WORKER_NICE = 5;
try {
  setPriority(0, Math.min(19, getPriority(0) + WORKER_NICE));
} catch {}

const init = workerData.init as WorkerInit;
setBackend(init.backend);
const model = new CausalLM(init.config);
model.loadStateDict(new Map(init.weights.map(([k, v]) => [k, new Tensor(v, [...shapeOf(model, k)])])), { strict: true });
model.eval();

const adapters = new Map<string, LoraModel>();
let active: LoraModel | null = null;
const useAdapter = (ns: string) => {
  const next = ns === "" ? null : (adapters.get(ns) ?? null);
  if (ns !== "" && next === null) throw new Error(`[serve worker] adapter namespace "${ns}" is not loaded`);
  if (next === active) return;
  active?.unload();
  next?.reattach();
  active = next;
};

const engine = new RolloutEngine(model, {
  maxRunning: init.maxRunning,
  kvCacheMemory: init.kvCacheMemory,
  maxBatchTokens: init.maxBatchTokens,
  useAdapter,
});
const handles = new Map<number, { id: number }>();
let pending: TokenMsg[] = [];
let steps = 0;
let looping = false;

function shapeOf(m: CausalLM, name: string): readonly number[] {
  for (const [k, p] of m.namedParameters()) if (k === name) return p.shape;
  throw new Error(`[serve worker] no parameter named ${name}`);
}

function add(m: Extract<ToWorker, { t: "add" }>): void {
  const rng = new Rng(0);
  rng.setState(m.rng);
  try {
    const h = engine.add({
      prompt: m.prompt,
      maxNewTokens: m.maxNewTokens,
      sampling: { temperature: m.temperature, topK: m.topK, topP: m.topP, minP: m.minP },
      rng,
      eos: new Set(m.eos),
      adapter: m.ns,
      topLogprobs: m.topLogprobs,
      promptLogprobs: m.promptLogprobs,
      onToken: (e) => {
        const msg: TokenMsg = { id: m.id, token: e.id, logprob: e.logprob, top: e.top };
        if (e.index === 0 && e.promptLogprobs !== undefined) msg.promptLogprobs = e.promptLogprobs;
        pending.push(msg);
      },
      onFinish: (r) => {
        handles.delete(m.id);
        const last = pending[pending.length - 1];
        if (last?.id === m.id) last.finish = r.finishReason === "eos" ? "eos" : "length";
      },
    });
    handles.set(m.id, h);
  } catch (e) {
    post({ t: "rowError", ids: [m.id], message: (e as Error).message });
  }
}

function onMessage(m: ToWorker): void {
  if (m.t === "add") add(m);
  else if (m.t === "cancel") {
    for (const id of m.ids) {
      const h = handles.get(id);
      if (h !== undefined) engine.cancel(h);
      handles.delete(id);
    }
  } else if (m.t === "adapter") {
    useAdapter(""); // the base must carry no adapter while another is built on it
    const lora = applyLora(model, m.config);
    const own = lora.peftStateDict();
    for (const [k, w] of m.weights) own.get(k)?.copyFrom(w);
    lora.eval();
    lora.unload();
    adapters.set(m.ns, lora);
  } else if (m.t === "dropAdapter") {
    if (active === adapters.get(m.ns)) useAdapter("");
    adapters.delete(m.ns);
  }
  kick();
}

function kick(): void {
  if (looping || !engine.hasWork) return;
  looping = true;
  setImmediate(loop);
}

/** One step per turn of the worker's event loop, so messages (cancellations above all) land between steps. */
function loop(): void {
  if (!engine.hasWork) {
    looping = false;
    return;
  }
  try {
    engine.step();
    steps++;
  } catch (e) {
    // a failed step leaves no trustworthy state for the rows in it: fail them all
    const ids = [...handles.keys()];
    for (const h of handles.values()) engine.cancel(h);
    handles.clear();
    post({ t: "rowError", ids, message: (e as Error).message });
  }
  const a = engine.cache.allocator;
  post({ t: "step", tokens: pending, steps, kvBlocksFree: a.numFree, kvBlocks: a.numBlocks });
  pending = [];
  setImmediate(loop);
}

port.on("message", onMessage);
post({ t: "ready" });
