// The CLI's one vocabulary: walks every `nexus` command's --help (in process) and checks the shared names and
// defaults, the global flags, that each subcommand shows only its own options and rejects others, lists in
// `a,b` and JSON alike, enum errors listing the valid values, did-you-mean for TRL spellings and config-file
// typos (file and key as written), and that --help prints nothing on stderr (no backend announcement).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Command } from "commander";
import type { z } from "zod";
import { buildProgram } from "../src/cli/program.js";
import { NexusCommand } from "../src/cli/schema_command.js";
import { GLOBAL_OPTIONS, SHARED } from "../src/cli/shared_options.js";
import { registerTrainCommand } from "../src/cli/train_command.js";
import { DPO_SCHEMA } from "../src/train/dpo.js";
import { PRM_SCHEMA } from "../src/train/prm_trainer.js";
import { runNexus } from "./helpers/cli.js";

const ROOT = join(import.meta.dirname, "..");

/** Every leaf command with its path ("search bon"). */
function leaves(cmd: Command, path: string[] = []): { path: string[]; cmd: Command }[] {
  if (cmd.commands.length === 0) return [{ path, cmd }];
  return cmd.commands.flatMap((c) => leaves(c, [...path, c.name()]));
}

const run = runNexus;

/** A command's options as --help shows them: long flag → the help line's text (description + default). */
function shownOptions(cmd: Command): Map<string, string> {
  const help = cmd.createHelp();
  return new Map(help.visibleOptions(cmd).map((o) => [o.long ?? "", help.optionDescription(o)]));
}

const defaultOf = (doc: string | undefined) => /\(default: (.*)\)$/.exec(doc ?? "")?.[1] ?? null;

const OFFLINE_TRAINERS = new Set(["dpo", "kto", "orpo", "cpo", "prm", "rm", "sft"]);

describe("every command's --help", () => {
  const all = leaves(buildProgram());

  test("the walk finds every command family", () => {
    const names = all.map((l) => l.path.join(" "));
    for (const n of [
      "lab",
      "init",
      "sft",
      "dpo",
      "grpo",
      "ppo",
      "label mc",
      "label judge",
      "score prm",
      "score surprise",
      "search mcts",
      "eval bon",
      "serve",
    ]) {
      assert.ok(names.includes(n), `no command ${n} in ${names.join(", ")}`);
    }
  });

  test("exits 0, prints the options, and nothing on stderr", async () => {
    for (const { path, cmd } of all) {
      const r = await run([...path, "--help"]);
      assert.equal(r.code, 0, path.join(" "));
      assert.equal(r.stderr, "", `${path.join(" ")} --help wrote to stderr: ${r.stderr}`);
      for (const flag of shownOptions(cmd).keys()) assert.ok(r.stdout.includes(flag), `${path.join(" ")} --help lacks ${flag}`);
    }
  });

  test("the global flags and --config are on every command, each option has a description", () => {
    for (const { path, cmd } of all) {
      const shown = shownOptions(cmd);
      for (const g of [...Object.keys(GLOBAL_OPTIONS), "config"]) {
        const flag = `--${g.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
        assert.ok(shown.has(flag), `${path.join(" ")} lacks ${flag}`);
      }
      for (const [flag, doc] of shown)
        assert.ok(doc.replace(/\(default: .*\)$/, "").trim().length > 3, `${path.join(" ")} ${flag} has no help`);
    }
  });

  test("a shared concept has one name and one default in every command", () => {
    const expected: Record<string, string> = {
      "--seed": "42",
      "--step-separator": JSON.stringify(SHARED.stepSeparator.parse(undefined)),
      "--max-completion-length": "256",
      "--max-step-length": "64",
      "--aggregation": '"min"',
    };
    const seen = new Map<string, number>();
    for (const { path, cmd } of all) {
      const name = path.join(" ");
      const shown = shownOptions(cmd);
      for (const [flag, want] of Object.entries(expected)) {
        if (!shown.has(flag)) continue;
        seen.set(flag, (seen.get(flag) ?? 0) + 1);
        const got = defaultOf(shown.get(flag));
        // Exceptions, on purpose: the lab's seed names a fixed experiment (runs/quick-seed0); an offline trainer's
        // --max-completion-length is TRL's truncation length (default: no truncation), not a generation budget.
        if (name === "lab" && flag === "--seed") assert.equal(got, "0");
        else if (OFFLINE_TRAINERS.has(name) && flag === "--max-completion-length") assert.equal(got, "none", `${name} ${flag}`);
        else assert.equal(got, want, `${name} ${flag}: default ${got}, expected ${want}`);
      }
      if (shown.has("--aggregation")) assert.match(shown.get("--aggregation")!, /\[min \| product \| last \| mean\]/, name);
      for (const old of [
        "--separator",
        "--policy",
        "--max-step-tokens",
        "--max-completion-tokens",
        "--max-new-tokens",
        "--response-length",
        "--prm",
        "--orm",
      ]) {
        assert.ok(!shown.has(old), `${name} still has ${old}`);
      }
      if (shown.has("--model")) assert.match(shown.get("--model")!, /folder/, name);
      // a PRM folder is --prm-model and an outcome reward model folder --reward-model, in search and in training alike
      if (shown.has("--prm-model")) assert.match(shown.get("--prm-model")!, /PRM folder/, name);
      if (shown.has("--reward-model")) assert.match(shown.get("--reward-model")!, /reward model folder/i, name);
    }
    for (const flag of ["--prm-model", "--reward-model"]) {
      const users = all.filter((l) => shownOptions(l.cmd).has(flag)).map((l) => l.path[0]);
      assert.ok(users.includes("search") && users.includes("grpo"), `${flag}: ${users.join(", ")}`);
    }
    // each shared name is used by several commands, so the check above is not vacuous
    for (const flag of Object.keys(expected)) assert.ok((seen.get(flag) ?? 0) >= 3, `${flag} appears in ${seen.get(flag) ?? 0} commands`);
  });

  test("each subcommand shows only its options and rejects the others", async () => {
    const get = (p: string) => shownOptions(all.find((l) => l.path.join(" ") === p)!.cmd);
    assert.ok(get("search mcts").has("--simulations") && !get("search mcts").has("--width") && !get("search mcts").has("--n"));
    assert.ok(get("search bon").has("--n") && !get("search bon").has("--simulations") && !get("search bon").has("--k"));
    assert.ok(get("score prm").has("--aggregation") && !get("score orm").has("--aggregation"));
    assert.ok(get("score surprise").has("--token-aggregation"));
    const r = await run(["search", "bon", "--model", "m", "--data", "d", "--output", "o", "--simulations", "3"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unknown option '--simulations'/);
  });

  test("an online trainer shows only the shared online options its algorithm uses, and refuses the others saying why", async () => {
    const get = (p: string) => shownOptions(all.find((l) => l.path.join(" ") === p)!.cmd);
    const sampling = ["--num-generations", "--num-iterations", "--dynamic-sampling", "--importance-sampling-cap", "--reward-weights"];
    for (const f of [...sampling, "--eval-steps", "--eval-num-generations"]) assert.ok(get("grpo").has(f), `grpo lacks ${f}`);
    for (const c of ["spin", "gkd"]) for (const f of [...sampling, "--missing-eos-penalty"]) assert.ok(!get(c).has(f), `${c} shows ${f}`);
    for (const f of ["--num-generations", "--num-iterations", "--dynamic-sampling", "--importance-sampling-cap"])
      assert.ok(!get("online-dpo").has(f), `online-dpo shows ${f}`);
    assert.ok(get("online-dpo").has("--reward-weights") && get("online-dpo").has("--missing-eos-penalty"));
    assert.ok(!get("ppo").has("--num-iterations") && get("ppo").has("--num-ppo-epochs") && get("ppo").has("--num-generations"));
    // a trainer without --eval-data offers no evaluation schedule either
    for (const { path, cmd } of all) {
      const shown = shownOptions(cmd);
      if (shown.has("--eval-steps") || shown.has("--eval-num-generations"))
        assert.ok(shown.has("--eval-data"), `${path.join(" ")} shows an evaluation option without --eval-data`);
    }
    const spin = ["spin", "--model", "m", "--data", "d", "--output", "o"];
    const cases: [string[], string, string][] = [
      [[...spin, "--num-generations", "2"], "--num-generations", "nexus spin does not use it: SPIN samples one completion per prompt"],
      [[...spin, "--eval-steps", "2"], "--eval-steps", "nexus spin does not use it: it evaluates no held-out data"],
      [["gkd", "--reward-weights", "1"], "--reward-weights", "nexus gkd does not use it: GKD has no reward"],
      [
        ["online-dpo", "--importance-sampling-cap", "2"],
        "--importance-sampling-cap",
        "nexus online-dpo does not use it: online DPO's loss takes no rollout-correction weights",
      ],
      [["ppo", "--num-iterations", "2"], "--num-iterations", "nexus ppo does not use it: PPO's passes over a batch are --num-ppo-epochs"],
    ];
    for (const [args, flag, want] of cases) {
      const r = await run(args);
      assert.equal(r.code, 1, args.join(" "));
      assert.ok(r.stderr.includes(`unknown option '${flag}' (${want}`), `${args.join(" ")}: ${r.stderr}`);
    }
    // in a config file too, with the file and the key as written
    const tmp = mkdtempSync(join(tmpdir(), "nexus-vocab-spin-"));
    const f = join(tmp, "spin.yaml");
    writeFileSync(f, "reward_weights: [1]\n");
    const r = await run([...spin, "--config", f]);
    rmSync(tmp, { recursive: true, force: true });
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(`[spin] ${f}: unknown key 'reward_weights' (nexus spin does not use it: SPIN has no reward)`), r.stderr);
  });
});

describe("flag parsing", () => {
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "nexus-vocab-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Parse `args` through a trainer command whose action only captures the resolved config. */
  async function trainerConfig(schema: z.ZodObject, args: string[]): Promise<Record<string, unknown>> {
    const program = new NexusCommand("t").exitOverride();
    program.configureOutput({ writeErr: () => {}, writeOut: () => {} });
    let got: Record<string, unknown> = {};
    registerTrainCommand(program, { name: "dpo", description: "", schema, action: (ctx) => void (got = ctx.config) });
    await program.parseAsync(["dpo", "--model", "m", "--data", "d", "--output", join(dir, "out"), ...args], { from: "user" });
    return got;
  }
  const dpoConfig = (args: string[]) => trainerConfig(DPO_SCHEMA, args);

  test("lists accept a,b and JSON alike", async () => {
    const a = await dpoConfig(["--loss-type", "sigmoid,sft", "--loss-weights", "1,0.5"]);
    const b = await dpoConfig(["--loss-type", '["sigmoid", "sft"]', "--loss-weights", "[1, 0.5]"]);
    assert.deepEqual(a.lossType, ["sigmoid", "sft"]);
    assert.deepEqual(a.lossWeights, [1, 0.5]);
    assert.deepEqual(b.lossType, a.lossType);
    assert.deepEqual(b.lossWeights, a.lossWeights);
    assert.deepEqual((await dpoConfig(["--loss-type", "ipo"])).lossType, ["ipo"]);
  });

  test("a config file's list may be written a,b too, and flags override the file", async () => {
    const f = join(dir, "dpo.yaml");
    writeFileSync(f, "loss_type: sigmoid,ipo\nloss_weights: [2, 3]\nbeta: 0.5\n");
    const c = await dpoConfig(["--config", f, "--beta", "0.25"]);
    assert.deepEqual(c.lossType, ["sigmoid", "ipo"]);
    assert.deepEqual(c.lossWeights, [2, 3]);
    assert.equal(c.beta, 0.25);
  });

  test("an invalid enum value lists the valid ones (flag, list item and config file)", async () => {
    const r = await run(["dpo", "--loss-type", "sigmoid,bogus"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--loss-type <a,b>' argument 'sigmoid,bogus' is invalid\. 'bogus' is not one of sigmoid, robust, hinge, ipo/);
    const f = join(dir, "bad.yaml");
    writeFileSync(f, "lr_scheduler_type: wavy\n");
    await assert.rejects(dpoConfig(["--config", f]), (e: Error) =>
      e.message.includes(`[dpo] ${f}: 'lr_scheduler_type': 'wavy' is not one of constant, constant_with_warmup, linear, cosine`),
    );
  });

  test("TRL spellings and older names get a did-you-mean", async () => {
    const cases: [string[], string][] = [
      [["dpo", "--per_device_train_batch_size", "4"], "(did you mean --per-device-train-batch-size?)"],
      [["dpo", "--output_dir", "x"], "(did you mean --output?)"],
      [["dpo", "--learningRate=1"], "(did you mean --learning-rate?)"],
      [["search", "beam", "--policy", "x"], "(did you mean --model?)"],
      [["label", "mc", "--separator", "x"], "(did you mean --step-separator?)"],
      [["ppo", "--response-length", "9"], "(did you mean --max-completion-length?)"],
      [["spin", "--eval-data", "x"], "nexus spin does not evaluate held-out data"],
      [["sft", "--lr", "1e-4"], "(did you mean --learning-rate?)"],
      [["search", "bon", "--orm", "x"], "(did you mean --reward-model?)"],
      [["grpo", "--prm", "x"], "(did you mean --prm-model?)"],
      [["sft", "--bf16"], "(Nexus spells it --precision bf16)"],
      [["grpo", "--gradient_checkpointing"], "Nexus has no gradient checkpointing"],
      [["grpo", "--use_vllm"], "point --generator-url at a vLLM server"],
    ];
    for (const [args, want] of cases) {
      const r = await run(args);
      assert.equal(r.code, 1, args.join(" "));
      assert.ok(r.stderr.includes(want), `${args.join(" ")}: ${r.stderr}`);
    }
  });

  test("a config-file typo names the file and the key as written, with a suggestion in its spelling", async () => {
    const f = join(dir, "typo.yaml");
    writeFileSync(f, "per_device_batch_size: 4\n");
    await assert.rejects(dpoConfig(["--config", f]), (e: Error) =>
      e.message.includes(`[dpo] ${f}: unknown key 'per_device_batch_size' (did you mean 'per_device_train_batch_size'?)`),
    );
    const g = join(dir, "typo2.yaml");
    writeFileSync(g, "maxStepTokens: 4\n");
    const r = await run(["search", "beam", "--config", g, "--model", "m", "--prm-model", "p", "--data", "d", "--output", "o"]);
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(`[search beam] ${g}: unknown key 'maxStepTokens' (did you mean 'maxStepLength'?)`), r.stderr);
    const h = join(dir, "range.yaml");
    writeFileSync(h, "beta: -1\n");
    await assert.rejects(dpoConfig(["--config", h]), (e: Error) => e.message.startsWith(`[dpo] ${h}: 'beta': Too small`));
  });

  test("a step separator flag takes \\n escapes; a required option missing is named", async () => {
    assert.equal((await trainerConfig(PRM_SCHEMA, ["--step-separator", "\\n\\n"])).stepSeparator, "\n\n");
    assert.equal((await trainerConfig(PRM_SCHEMA, ["--step-separator", " ; "])).stepSeparator, " ; ");
    const r = await run(["score", "prm", "--model", "m", "--output", "o"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\[score prm\] --data is required/);
  });

  test("--version prints the package's version", async () => {
    const r = await run(["--version"]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version);
  });

  test("the real entry point prints help with an empty stderr", () => {
    const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", "grpo", "--help"], { cwd: ROOT, encoding: "utf8" });
    assert.equal(r.status, 0);
    assert.equal(r.stderr, "");
    assert.match(r.stdout, /--num-generations <value>/);
  });
});
