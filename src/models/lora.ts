// LoRA (Hu et al. 2021) as PEFT implements it: chosen Linear layers compute W x + b + (alpha / r) B(A(dropout(x)))
// with A ~ kaiming-uniform(a = sqrt(5)) and B = 0, the base frozen. The wrapped Linears keep their place in the
// model (their forward is swapped in place), so the same CausalLM serves as policy and, with adapters
// disabled, as the frozen reference. Saves / loads the PEFT folder layout; `mergeLora` folds B A into W.
// Not here: DoRA, rank/alpha patterns, LoRA on embeddings or on the (tied) LM head, several named adapters.

import * as fs from "node:fs";
import * as path from "node:path";
import { describeValue } from "../io/describe.js";
import { readSafetensors, readSafetensorsHeader, type WritableTensor, writeFileAtomic, writeSafetensors } from "../io/safetensors.js";
import { Linear } from "../nn/layers.js";
import { Module, ModuleList } from "../nn/module.js";
import { Rng } from "../nn/rng.js";
import { add, fromArray, linear, mul, shapeStr, type Tensor } from "../tensor/index.js";

export class LoraError extends Error {
  override name = "LoraError";
}

export type LoraTaskType = "CAUSAL_LM" | "SEQ_CLS" | "TOKEN_CLS";

export interface LoraConfig {
  /** Rank r of A [r, in] and B [out, r]. */
  r: number;
  /** Scale numerator: the update is (loraAlpha / r) B A (or loraAlpha / sqrt(r) with useRslora). */
  loraAlpha: number;
  /** Dropout on the adapter's input, in training mode only. */
  loraDropout: number;
  /** PEFT `target_modules`: names matched against the end of each module path, or one regex matched in full. */
  targetModules: readonly string[] | string;
  /** rsLoRA scaling alpha / sqrt(r). */
  useRslora: boolean;
  /** Written to adapter_config.json so PEFT finds the base. */
  baseModelNameOrPath: string | null;
  taskType: LoraTaskType;
}

export const LORA_DEFAULTS: Readonly<LoraConfig> = Object.freeze({
  r: 8,
  loraAlpha: 8,
  loraDropout: 0,
  targetModules: Object.freeze(["q_proj", "v_proj"]),
  useRslora: false,
  baseModelNameOrPath: null,
  taskType: "CAUSAL_LM",
});

/** Merge a partial config over the defaults; unknown keys and bad values are errors. */
export function resolveLoraConfig(partial: Partial<LoraConfig> = {}): LoraConfig {
  for (const k of Object.keys(partial)) {
    if (!(k in LORA_DEFAULTS)) throw new LoraError(`[lora] unknown config key "${k}" (known: ${Object.keys(LORA_DEFAULTS).join(", ")})`);
  }
  const c: LoraConfig = { ...LORA_DEFAULTS, ...partial };
  if (!Number.isInteger(c.r) || c.r < 1) throw new LoraError(`[lora] r must be an integer >= 1, got ${c.r}`);
  if (!(c.loraAlpha > 0)) throw new LoraError(`[lora] loraAlpha must be > 0, got ${c.loraAlpha}`);
  if (!(c.loraDropout >= 0 && c.loraDropout < 1)) throw new LoraError(`[lora] loraDropout must be in [0, 1), got ${c.loraDropout}`);
  if (typeof c.targetModules !== "string" && c.targetModules.length === 0) throw new LoraError("[lora] targetModules is empty");
  if (typeof c.targetModules === "string") {
    try {
      new RegExp(c.targetModules);
    } catch (e) {
      throw new LoraError(`[lora] targetModules is not a valid regex (${(e as Error).message})`);
    }
  }
  return c;
}

/** PEFT's check_target_module_exists: a string is a full-match regex, a list matches `name` or `*.name`. */
export function matchesTarget(modulePath: string, targets: readonly string[] | string): boolean {
  if (typeof targets === "string") return new RegExp(`^(?:${targets})$`).test(modulePath);
  return targets.some((t) => modulePath === t || modulePath.endsWith(`.${t}`));
}

/** The adapter of one Linear: lora_A [r, in] and lora_B [out, r] (PEFT's parameter names). */
export class LoraAdapter extends Module {
  readonly loraA: Linear;
  readonly loraB: Linear;

  constructor(
    /** Module path of the wrapped Linear in the base model, e.g. `model.layers.0.self_attn.q_proj`. */
    readonly path: string,
    readonly target: Linear,
    r: number,
    readonly scaling: number,
    rng: Rng,
  ) {
    super();
    this.loraA = this.registerModule("lora_A", new Linear(target.inFeatures, r));
    this.loraB = this.registerModule("lora_B", new Linear(r, target.outFeatures));
    // kaiming_uniform_(a=sqrt(5)) on [r, in]: gain sqrt(2 / (1 + 5)), bound gain * sqrt(3 / in) = 1 / sqrt(in)
    const bound = 1 / Math.sqrt(target.inFeatures);
    const a = new Float32Array(this.loraA.weight.size);
    for (let i = 0; i < a.length; i++) a[i] = (2 * rng.next() - 1) * bound;
    this.loraA.weight.copyFrom(a);
  }

  /** The forward this adapter installs on its target (kept so the adapter can be re-attached after unload). */
  wrappedForward: (x: Tensor) => Tensor = (x) => this.target.forward(x);

  /** The adapter's contribution (alpha / r) B(A(x)) for x [..., in] → [..., out]. */
  delta(x: Tensor): Tensor {
    return mul(this.loraB.forward(this.loraA.forward(x)), this.scaling);
  }
}

/**
 * LoRA on a base model. `base` keeps computing through its own forward; `trainableParameters()` are the
 * adapters only. Registered children: `base` (frozen) and `adapters` (in module order).
 */
export class LoraModel<M extends Module = Module> extends Module {
  readonly base: M;
  readonly adapters: ModuleList<LoraAdapter>;
  /** Set by mergeLora: the adapters live in the base weights now. */
  foldedIntoBase = false;
  /** False inside withAdaptersDisabled: every wrapped Linear computes W x + b only. */
  adaptersEnabled = true;
  private merged = false;
  private readonly dropoutRng: Rng;

  constructor(
    base: M,
    readonly config: LoraConfig,
    rng: Rng,
  ) {
    super();
    this.base = this.registerModule("base", base);
    this.adapters = this.registerModule("adapters", new ModuleList<LoraAdapter>());
    // validate every target before touching the base, so a failed call leaves it as it was
    const targets: [string, Linear][] = [];
    for (const [name, m] of base.namedModules()) {
      if (name === "" || !matchesTarget(name, config.targetModules)) continue;
      if (!(m instanceof Linear))
        throw new LoraError(`[lora] target "${name}" is a ${m.constructor.name}, only Linear layers can take LoRA`);
      if (name === "lm_head" || name.endsWith(".lm_head")) {
        throw new LoraError(`[lora] target "${name}": LoRA on the LM head is not supported (CausalLM reads its weight directly)`);
      }
      if ((m as { forward: unknown }).forward !== Linear.prototype.forward) {
        throw new LoraError(`[lora] "${name}" already carries an adapter (merge or unload the first one)`);
      }
      targets.push([name, m]);
    }
    if (targets.length === 0) {
      throw new LoraError(`[lora] target modules ${JSON.stringify(config.targetModules)} match no module of the base model`);
    }
    base.freeze();
    const scaling = config.useRslora ? config.loraAlpha / Math.sqrt(config.r) : config.loraAlpha / config.r;
    for (const [name, m] of targets) this.adapters.push(this.wrap(name, m, scaling, rng));
    this.dropoutRng = rng.fork();
  }

  private wrap(name: string, target: Linear, scaling: number, rng: Rng): LoraAdapter {
    const adapter = new LoraAdapter(name, target, this.config.r, scaling, rng);
    const p = this.config.loraDropout;
    target.forward = adapter.wrappedForward = (x: Tensor): Tensor => {
      const y = linear(x, target.weight, target.bias);
      if (!this.adaptersEnabled) return y;
      // dropout follows the wrapped layer's mode, so base.eval() turns it off
      const xin = p > 0 && target.training ? this.dropout(x, p) : x;
      return add(y, adapter.delta(xin));
    };
    return adapter;
  }

  private dropout(x: Tensor, p: number): Tensor {
    const keep = new Float32Array(x.size);
    const s = 1 / (1 - p);
    for (let i = 0; i < keep.length; i++) keep[i] = this.dropoutRng.next() < p ? 0 : s;
    return mul(x, fromArray(keep, x.shape));
  }

  /** name in the PEFT file (`base_model.model.<path>.lora_A.weight`) → the live adapter tensor. */
  peftStateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const a of this.adapters) {
      out.set(`base_model.model.${a.path}.lora_A.weight`, a.loraA.weight);
      out.set(`base_model.model.${a.path}.lora_B.weight`, a.loraB.weight);
    }
    return out;
  }

  /** Put the base's Linears back to plain W x + b (the adapters stay readable but no longer act). */
  unload(): M {
    for (const a of this.adapters) Reflect.deleteProperty(a.target, "forward");
    this.merged = true;
    return this.base;
  }

  /** Undo unload(): the adapters act again (a server switching between loaded adapters). Not after mergeLora. */
  reattach(): void {
    if (this.foldedIntoBase) throw new LoraError("[lora] these adapters were merged into the base weights; they cannot act again");
    if (!this.merged) return;
    for (const a of this.adapters) {
      if ((a.target as { forward: unknown }).forward !== Linear.prototype.forward) {
        throw new LoraError(`[lora] "${a.path}" already carries another adapter (unload it first)`);
      }
    }
    for (const a of this.adapters) a.target.forward = a.wrappedForward;
    this.merged = false;
  }

  get isUnloaded(): boolean {
    return this.merged;
  }
}

export interface ApplyLoraOptions {
  /** Seed of the A init and dropout streams (default 0), or an Rng to continue. */
  seed?: number;
  rng?: Rng;
}

/** Wrap the target Linears of `base` with fresh adapters (B = 0, so the model's outputs do not change yet). */
export function applyLora<M extends Module>(base: M, config: Partial<LoraConfig> = {}, opts: ApplyLoraOptions = {}): LoraModel<M> {
  return new LoraModel(base, resolveLoraConfig(config), opts.rng ?? new Rng(opts.seed ?? 0));
}

/** Run fn with every adapter off: the base model's exact outputs (the frozen reference of DPO / GRPO). */
export function withAdaptersDisabled<T>(lora: LoraModel, fn: () => T): T {
  const prev = lora.adaptersEnabled;
  lora.adaptersEnabled = false;
  try {
    return fn();
  } finally {
    lora.adaptersEnabled = prev;
  }
}

/** withAdaptersDisabled for async work. */
export async function withAdaptersDisabledAsync<T>(lora: LoraModel, fn: () => Promise<T>): Promise<T> {
  const prev = lora.adaptersEnabled;
  lora.adaptersEnabled = false;
  try {
    return await fn();
  } finally {
    lora.adaptersEnabled = prev;
  }
}

/** Fold every adapter into its base weight, W += (alpha / r) B A (accumulated in float64), and unload (PEFT merge_and_unload). */
export function mergeLora<M extends Module>(lora: LoraModel<M>): M {
  if (lora.isUnloaded) throw new LoraError("[lora] these adapters were already merged or unloaded");
  for (const a of lora.adapters) {
    // on the host in float64 (a one-off; a device weight is downloaded and written back once)
    const w = Float32Array.from(a.target.weight.hostData());
    const [out, inF] = a.target.weight.shape;
    const r = a.loraA.weight.shape[0];
    const A = a.loraA.weight.hostData();
    const B = a.loraB.weight.hostData();
    const row = new Float64Array(inF);
    for (let o = 0; o < out; o++) {
      row.fill(0);
      for (let k = 0; k < r; k++) {
        const b = B[o * r + k];
        if (b === 0) continue;
        for (let i = 0; i < inF; i++) row[i] += b * A[k * inF + i];
      }
      for (let i = 0; i < inF; i++) w[o * inF + i] += a.scaling * row[i];
    }
    a.target.weight.copyFrom(w);
  }
  lora.foldedIntoBase = true;
  return lora.unload();
}

// ---- PEFT files ----

export const ADAPTER_CONFIG_NAME = "adapter_config.json";
export const ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors";

/** adapter_config.json as PEFT's LoraConfig writes it (the fields Nexus supports; the rest at PEFT's defaults). */
export function peftAdapterConfig(c: LoraConfig): Record<string, unknown> {
  return {
    alpha_pattern: {},
    base_model_name_or_path: c.baseModelNameOrPath,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: c.loraAlpha,
    lora_dropout: c.loraDropout,
    modules_to_save: null,
    peft_type: "LORA",
    r: c.r,
    rank_pattern: {},
    revision: null,
    target_modules: typeof c.targetModules === "string" ? c.targetModules : [...c.targetModules],
    task_type: c.taskType,
    use_dora: false,
    use_rslora: c.useRslora,
  };
}

/** Write adapter_config.json and adapter_model.safetensors (f32) into dir. */
export function saveLoraAdapter(lora: LoraModel, dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, WritableTensor>();
  for (const [k, t] of lora.peftStateDict()) tensors.set(k, { dtype: "F32", shape: t.shape, data: Float32Array.from(t.hostData()) });
  writeSafetensors(path.join(dir, ADAPTER_WEIGHTS_NAME), tensors, { format: "pt" });
  const text = `${JSON.stringify(peftAdapterConfig(lora.config), null, 2)}\n`;
  writeFileAtomic(path.join(dir, ADAPTER_CONFIG_NAME), (fd) => fs.writeSync(fd, text));
}

/** Parse a PEFT adapter_config.json; features Nexus does not implement are errors, not silently ignored. */
export function readLoraConfig(dir: string): LoraConfig {
  const file = path.join(dir, ADAPTER_CONFIG_NAME);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf-8")) as Record<string, unknown>;
  } catch (e) {
    throw new LoraError(`[lora] ${file}: cannot read (${(e as Error).message})`);
  }
  const bad = (msg: string): never => {
    throw new LoraError(`[lora] ${file}: ${msg}`);
  };
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) bad("is not a JSON object");
  if (raw.peft_type !== "LORA") bad(`peft_type is ${describeValue(raw.peft_type)}, expected "LORA"`);
  if ((raw.bias ?? "none") !== "none") bad(`bias ${describeValue(raw.bias)} is not supported (only "none")`);
  if (raw.use_dora === true) bad("use_dora is not supported");
  if (raw.fan_in_fan_out === true) bad("fan_in_fan_out is not supported");
  for (const k of ["rank_pattern", "alpha_pattern"]) {
    const v = raw[k];
    if (v !== undefined && v !== null && Object.keys(v as object).length > 0) bad(`${k} is not supported`);
  }
  for (const k of ["modules_to_save", "layers_to_transform", "layer_replication"]) {
    if (raw[k] !== undefined && raw[k] !== null) bad(`${k} is not supported`);
  }
  const tm = raw.target_modules;
  if (!(typeof tm === "string" || (Array.isArray(tm) && tm.every((x) => typeof x === "string")))) {
    bad(`target_modules is ${describeValue(tm)}, expected a list of names or a regex`);
  }
  for (const k of ["r", "lora_alpha", "lora_dropout"]) {
    if (raw[k] !== undefined && raw[k] !== null && typeof raw[k] !== "number") bad(`${k} is ${describeValue(raw[k])}, expected a number`);
  }
  const partial = {
    r: raw.r as number,
    loraAlpha: raw.lora_alpha as number,
    loraDropout: (raw.lora_dropout as number | undefined) ?? 0,
    targetModules: tm as string[] | string,
    useRslora: raw.use_rslora === true,
    baseModelNameOrPath: (raw.base_model_name_or_path as string | null | undefined) ?? null,
    taskType: (raw.task_type as LoraTaskType | undefined) ?? "CAUSAL_LM",
  };
  try {
    return resolveLoraConfig(partial);
  } catch (e) {
    return bad((e as Error).message.replace(/^\[lora\] /, ""));
  }
}

/** Apply the adapter in `dir` (PEFT layout) to `base`. Keys may carry PEFT's adapter name (`lora_A.default.weight`). */
export function loadLoraAdapter<M extends Module>(base: M, dir: string, opts: ApplyLoraOptions = {}): LoraModel<M> {
  const config = readLoraConfig(dir);
  const file = path.join(dir, ADAPTER_WEIGHTS_NAME);
  // the rank sizes every adapter matrix: it must be the one the file holds before anything is allocated
  let ranked = 0;
  for (const [name, info] of readSafetensorsHeader(file).tensors) {
    const isA = /\.lora_A(\.[^.]+)?\.weight$/.test(name);
    if (!isA && !/\.lora_B(\.[^.]+)?\.weight$/.test(name)) continue;
    const rank = info.shape.length === 2 ? info.shape[isA ? 0 : 1] : -1;
    if (rank !== config.r)
      throw new LoraError(`[lora] ${file}: "${name}" ${shapeStr(info.shape)} does not have rank r = ${config.r} (adapter_config.json)`);
    ranked++;
  }
  if (ranked === 0) throw new LoraError(`[lora] ${file}: holds no lora_A / lora_B weights`);
  const lora = new LoraModel(base, config, opts.rng ?? new Rng(opts.seed ?? 0));
  const { tensors } = readSafetensors(file);
  const own = lora.peftStateDict();
  const seen = new Set<string>();
  for (const [rawName, t] of tensors) {
    const name = rawName.replace(/\.(lora_[AB])\.[^.]+\.weight$/, ".$1.weight");
    const p = own.get(name);
    if (p === undefined) throw new LoraError(`[lora] ${file}: unexpected tensor "${rawName}" (no matching target module)`);
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
      throw new LoraError(`[lora] ${file}: "${rawName}" is ${shapeStr(t.shape)}, the adapter needs ${shapeStr(p.shape)}`);
    }
    p.copyFrom(t.data);
    seen.add(name);
  }
  const missing = [...own.keys()].filter((k) => !seen.has(k));
  if (missing.length > 0) throw new LoraError(`[lora] ${file}: missing ${missing.length} tensor(s), e.g. "${missing[0]}"`);
  return lora;
}
