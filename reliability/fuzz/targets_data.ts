// Fuzz targets for what a user hands the trainers: JSONL datasets of every TRL kind (rows and raw bytes,
// read whole, auto-detected and streamed), YAML/JSON trainer configs resolved the way the CLI does, and the
// `nexus` command line itself (spawned, so an uncaught error or a signal is seen as a user would see it).
// Not here: model-folder inputs (targets_io.ts), HTTP (targets_http.ts), the native addon (targets_native.ts).

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import YAML from "yaml";
import type { z } from "zod";
import { resolveTrainCommand } from "../../src/cli/train_command.js";
import { DATASET_SCHEMAS, type DatasetKind, loadDataset, streamDataset } from "../../src/data/formats.js";
import type { Rng } from "../../src/nn/rng.js";
import { DPO_RULES, DPO_SCHEMA } from "../../src/train/dpo.js";
import { GRPO_SCHEMA } from "../../src/train/grpo.js";
import { KTO_RULES, KTO_SCHEMA } from "../../src/train/kto.js";
import { PPO_RULES, PPO_SCHEMA } from "../../src/train/ppo.js";
import { PRM_SCHEMA } from "../../src/train/prm_trainer.js";
import { REWARD_SCHEMA } from "../../src/train/reward_trainer.js";
import { SFT_SCHEMA } from "../../src/train/sft.js";
import { FIXTURES } from "../fixtures.js";
import { type FuzzTarget, judge, namedError, type Outcome } from "./harness.js";
import { BYTE_MUTATIONS, EXTREME_NUMBERS, mutateJsonText, NAN_STRINGS, pick } from "./mutate.js";

// ---- JSONL datasets -----------------------------------------------------------------------------------

const msgs = (u: string, a?: string) => [
  { role: "system", content: "Be brief." },
  { role: "user", content: u },
  ...(a === undefined ? [] : [{ role: "assistant", content: a }]),
];

/** Valid rows of every kind, standard and conversational. */
const SEED_ROWS: Record<DatasetKind, Record<string, unknown>[]> = {
  language_modeling: [{ text: "The sky is blue." }, { messages: msgs("Hi", "Hello!") }, { text: "2 + 2 = 4", source: "x" }],
  prompt_only: [{ prompt: "2 + 3 =" }, { prompt: msgs("What is 7 * 6?") }, { prompt: "x", answer: "42" }],
  prompt_completion: [
    { prompt: "The sky is", completion: " blue." },
    { prompt: msgs("2+2?"), completion: [{ role: "assistant", content: "4" }] },
  ],
  preference: [
    { prompt: "The sky is", chosen: " blue.", rejected: " green." },
    { chosen: "The sky is blue.", rejected: "The sky is green.", margin: 0.5 },
    { prompt: msgs("2+2?"), chosen: [{ role: "assistant", content: "4" }], rejected: [{ role: "assistant", content: "5" }] },
  ],
  unpaired_preference: [
    { prompt: "The sky is", completion: " blue.", label: true },
    { prompt: "The sky is", completion: " green.", label: false },
  ],
  stepwise_supervision: [
    { prompt: "3 + 4 * 2", completions: ["4 * 2 = 8", "3 + 8 = 11"], labels: [true, true] },
    { prompt: "9 - 5", completions: ["9 - 5 = 3"], labels: [false] },
  ],
};

/** Line-level damage: blank lines, CRLF, a BOM mid-file, non-object JSON, a very long line. */
const LINE_MUTATIONS = [
  "",
  "\r",
  "\ufeff{}",
  "null",
  "[]",
  "42",
  '"text"',
  "{",
  '{"text": "a"}{"text": "b"}',
  `{"text": "${"a".repeat(1 << 20)}"}`,
];

export const jsonlTarget: FuzzTarget = {
  name: "jsonl",
  cases: { full: 1500, quick: 30 },
  async run(rng, work) {
    const kind = pick(rng, Object.keys(SEED_ROWS) as DatasetKind[]);
    const rows = SEED_ROWS[kind].map((r) => structuredClone(r));
    const lines = rows.map((r) => JSON.stringify(r));
    const what: string[] = [`kind ${kind}`];
    const r = rng.next();
    if (r < 0.6) {
      const i = rng.int(rows.length);
      const m = mutateJsonText(
        rows[i],
        rng,
        Object.keys(rows[i]).map((k) => [k]),
      );
      lines[i] = m.text.replace(/\n/g, " ");
      what.push(`line ${i + 1}: ${m.what.join("; ")}`);
    } else if (r < 0.8) {
      const at = rng.int(lines.length + 1);
      const l = pick(rng, LINE_MUTATIONS);
      lines.splice(at, 0, l);
      what.push(`insert line ${at + 1}: ${JSON.stringify(l.slice(0, 30))}`);
    }
    let bytes: Buffer = Buffer.from(`${lines.join("\n")}\n`, "utf8");
    if (r >= 0.8) {
      const name = pick(rng, Object.keys(BYTE_MUTATIONS));
      let d: string;
      [bytes, d] = BYTE_MUTATIONS[name](bytes, rng);
      what.push(d);
    }
    const file = path.join(work, "data.jsonl");
    fs.writeFileSync(file, bytes);
    const utf8 = (() => {
      try {
        new TextDecoder("utf-8", { fatal: true }).decode(bytes);
        return true;
      } catch {
        return false;
      }
    })();
    const mode = pick(rng, ["kind", "detect", "stream"] as const);
    what.push(`read by ${mode}`);
    const load = async (): Promise<{ kind: DatasetKind; rows: unknown[] }> => {
      if (mode === "kind") return { kind, rows: loadDataset(file, kind) };
      if (mode === "stream") {
        const out: unknown[] = [];
        for await (const row of streamDataset(file, kind)) out.push(row);
        return { kind, rows: out };
      }
      const d = loadDataset(file);
      return { kind: d.kind ?? kind, rows: d.rows };
    };
    return judge(what, load, {
      named: (e) =>
        namedError(e, [file]) ??
        (/:\d+: |cannot read/.test((e as Error).message) ? null : `no line number: ${(e as Error).message.slice(0, 200)}`),
      valid: (d) => {
        if (!utf8) return "the file is not valid UTF-8";
        for (const [i, row] of d.rows.entries()) {
          const p = (DATASET_SCHEMAS[d.kind] as z.ZodType).safeParse(row);
          if (!p.success) return `row ${i + 1} does not match ${d.kind}: ${p.error.issues[0]?.message}`;
        }
        return null;
      },
    });
  },
};

// ---- trainer configs ----------------------------------------------------------------------------------

type Spec = { name: string; schema: z.ZodObject; rules?: ((c: never) => string | null)[] };
const SPECS: Spec[] = [
  { name: "sft", schema: SFT_SCHEMA },
  { name: "dpo", schema: DPO_SCHEMA, rules: DPO_RULES as Spec["rules"] },
  { name: "kto", schema: KTO_SCHEMA, rules: KTO_RULES as Spec["rules"] },
  { name: "grpo", schema: GRPO_SCHEMA },
  { name: "ppo", schema: PPO_SCHEMA, rules: PPO_RULES as Spec["rules"] },
  { name: "rm", schema: REWARD_SCHEMA },
  { name: "prm", schema: PRM_SCHEMA },
];

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** YAML-only hazards: alias bombs, tags, merge keys, special floats, multi-document, tabs. */
function yamlHazard(rng: Rng, key: string): [string, string] {
  const bomb = `a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n`;
  const hazards: [string, string][] = [
    [bomb, "alias bomb"],
    [`${key}: !!js/function "function () { return 1 }"\n`, "!!js/function tag"],
    [`${key}: !!binary aGVsbG8=\n`, "!!binary tag"],
    [`${key}: .nan\n`, ".nan"],
    [`${key}: .inf\n`, ".inf"],
    [`${key}: -.inf\n`, "-.inf"],
    [`base: &base {${key}: 1}\n<<: *base\n`, "merge key"],
    [`${key}: 1\n---\n${key}: 2\n`, "two documents"],
    [`${key}:\t1\n`, "tab"],
    [`${key}: 0x7fffffffffffffff\n`, "hex literal"],
    [`${key}: 1e999\n`, "1e999"],
    [`? [a, b]\n: 1\n`, "complex key"],
    [`${key}: *undefined_alias\n`, "unknown alias"],
    [`${key}: "${"\\u".repeat(1)}d800"\n`, "lone surrogate escape"],
  ];
  return pick(rng, hazards);
}

export const trainerConfigTarget: FuzzTarget = {
  name: "trainer_config",
  cases: { full: 1200, quick: 25 },
  run(rng, work) {
    const spec = pick(rng, SPECS);
    const defaults = spec.schema.parse({}) as Record<string, unknown>;
    const keys = Object.keys(defaults).filter(() => rng.next() < 0.4);
    const obj: Record<string, unknown> = {};
    for (const k of keys) obj[rng.next() < 0.5 ? snake(k) : k] = defaults[k];
    const what = [`${spec.name} with ${keys.length} keys`];
    const yaml = rng.next() < 0.6;
    let text: string;
    const r = rng.next();
    if (r < 0.7 || keys.length === 0) {
      const m = mutateJsonText(
        obj,
        rng,
        Object.keys(obj).map((k) => [k]),
      );
      what.push(...m.what);
      let v: unknown = null;
      try {
        v = JSON.parse(m.text);
      } catch {}
      text = m.text;
      if (yaml && v !== null) {
        try {
          text = YAML.stringify(v);
        } catch {} // nested too deep for the YAML writer: the JSON text is YAML too
      }
    } else if (r < 0.85) {
      const [h, d] = yamlHazard(rng, pick(rng, Object.keys(obj)));
      text = `${YAML.stringify(obj)}${h}`;
      what.push(d);
    } else {
      const k = pick(rng, Object.keys(obj));
      obj[k] = pick(rng, [...EXTREME_NUMBERS, ...NAN_STRINGS]);
      text = yaml ? YAML.stringify(obj) : JSON.stringify(obj);
      what.push(`${k} = ${JSON.stringify(obj[k])}`);
    }
    const file = path.join(work, yaml ? "config.yaml" : "config.json");
    fs.writeFileSync(file, text);
    what.push(yaml ? "yaml" : "json");
    return judge(what, () => resolveTrainCommand(spec as never, { config: file, model: "m", data: "d.jsonl", output: "o" }).config, {
      // a config error names the file (parse errors) or the key (schema errors: "config 'beta': ...")
      named: (e) =>
        namedError(e) ?? (/'[^']*'|config\b|\S+\.(yaml|json)/.test((e as Error).message) ? null : `names no key: ${(e as Error).message}`),
      valid: (c) => {
        const p = spec.schema.safeParse(c);
        if (!p.success) return `resolved config fails its schema: ${p.error.issues[0]?.message}`;
        const bad = Object.entries(c as Record<string, unknown>).find(([, v]) => typeof v === "number" && !Number.isFinite(v));
        return bad ? `${bad[0]} is ${bad[1]}` : null;
      },
    });
  },
};

// ---- the nexus command line ---------------------------------------------------------------------------

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = path.join(ROOT, "src/cli/main.ts");
// tsx resolved from the repository (the children run in a scratch folder, so that no mutated path lands in the repo)
const TSX = pathToFileURL(path.join(ROOT, "node_modules/tsx/dist/loader.mjs")).href;

/** Valid command lines that finish fast (the folders are made in setup). */
function baseCommands(w: string): string[][] {
  const model = path.join(FIXTURES, "llama-tiny");
  const tok = path.join(FIXTURES, "tokenizer");
  const d = (f: string) => path.join(w, f);
  return [
    ["info"],
    ["info", "--json"],
    ["init", "--output", d("init-out"), "--preset", "tiny"],
    [
      "sft",
      "--model",
      model,
      "--tokenizer",
      tok,
      "--data",
      d("sft.jsonl"),
      "--output",
      d("sft-out"),
      "--max-steps",
      "1",
      "--per-device-train-batch-size",
      "2",
    ],
    ["dpo", "--model", model, "--tokenizer", tok, "--data", d("pref.jsonl"), "--output", d("dpo-out"), "--max-steps", "1", "--beta", "0.1"],
    ["rm", "--model", model, "--tokenizer", tok, "--data", d("pref.jsonl"), "--output", d("rm-out"), "--max-steps", "1"],
    ["serve", "--model", model, "--tokenizer", tok, "--port", "0", "--max-batch", "4"],
    ["eval", "--help"],
  ];
}

function mutateArgs(args: string[], rng: Rng): { args: string[]; what: string[] } {
  const a = [...args];
  const what: string[] = [];
  const n = 1 + rng.int(2);
  for (let i = 0; i < n; i++) {
    const r = rng.next();
    const at = rng.int(a.length);
    if (r < 0.3 && a.length > 1) {
      what.push(`drop ${a[at]}`);
      a.splice(at, 1);
    } else if (r < 0.6) {
      const v = String(
        pick(rng, [
          ...EXTREME_NUMBERS,
          ...NAN_STRINGS,
          "-1",
          "1e999",
          "/dev/null",
          "nonexistent/sub",
          "..",
          "",
          // an argv string ends at its first NUL (execve takes C strings): what a process can receive
          "ab\u0000cd".split("\u0000")[0],
          "x".repeat(5000),
          "--",
          "-",
        ]),
      );
      what.push(`arg ${at} = ${JSON.stringify(v.slice(0, 20))}`);
      a[at] = v;
    } else if (r < 0.8) {
      const f = pick(rng, [
        "--unknown-flag",
        "--max-steps",
        "--port",
        "--learning-rate",
        "--seed",
        "--config",
        "--resume",
        "--host",
        "--api-key",
        "--debug",
      ]);
      const v = String(pick(rng, [...EXTREME_NUMBERS, ...NAN_STRINGS]));
      a.splice(at + 1, 0, f, v);
      what.push(`insert ${f} ${v}`);
    } else {
      const j = rng.int(a.length);
      [a[at], a[j]] = [a[j], a[at]];
      what.push(`swap args ${at} and ${j}`);
    }
  }
  return { args: a, what };
}

export const cliTarget: FuzzTarget = {
  name: "cli_args",
  cases: { full: 60, quick: 2 },
  slowMs: 60_000,
  hangMs: 90_000,
  setup(work) {
    fs.writeFileSync(
      path.join(work, "sft.jsonl"),
      `${[1, 2, 3, 4].map((i) => JSON.stringify({ text: `row ${i}: the sky is blue.` })).join("\n")}\n`,
    );
    fs.writeFileSync(
      path.join(work, "pref.jsonl"),
      `${[1, 2, 3, 4].map((i) => JSON.stringify({ prompt: `q${i}`, chosen: " yes", rejected: " no" })).join("\n")}\n`,
    );
  },
  run(rng, work): Outcome {
    const base = pick(rng, baseCommands(work));
    const { args, what } = mutateArgs(base, rng);
    what.unshift(`nexus ${base[0]}`);
    // serve runs until stopped: it gets 8 s, then SIGTERM; "accepted" then means it drained and exited 0
    const r = spawnSync(process.execPath, ["--import", TSX, CLI, ...args], {
      cwd: work,
      encoding: "utf8",
      timeout: args[0] === "serve" ? 8_000 : 60_000,
      killSignal: "SIGTERM",
      env: { ...process.env, OMP_NUM_THREADS: "1" },
    });
    const err = r.stderr ?? "";
    const served = args[0] === "serve" && /listening on/.test(r.stdout ?? "");
    if (r.signal !== null && !(served && r.signal === "SIGTERM" && r.status === null)) {
      return { kind: "failed", what, reason: `killed by ${r.signal}: ${err.slice(-300)}` };
    }
    if (/\n\s+at .+:\d+:\d+\)?\n/.test(err) && !args.includes("--debug")) {
      return { kind: "failed", what, reason: `stack trace on stderr: ${err.slice(0, 400)}` };
    }
    if (r.status === 0 || (served && r.status === null)) return { kind: "accepted", what };
    if (r.status === 1 && /^(nexus: |error: )/m.test(err))
      return { kind: "rejected", what, message: err.trim().split("\n")[0].slice(0, 200) };
    if (r.status === 1 && /^Usage: nexus/m.test(err + (r.stdout ?? ""))) return { kind: "rejected", what, message: "usage printed" };
    return { kind: "failed", what, reason: `exit ${r.status} without a nexus:/error: line: ${err.slice(-300)}` };
  },
};
