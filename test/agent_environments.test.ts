// The multi-turn environments (src/agent): the calculator evaluates tool calls exactly (precedence, parentheses,
// decimals, fractions, errors as observations), answers only turns that end with a call, and formats values;
// the grid environment replays AgentPRM's GridNavEnv from each row's seed and reports success as env_reward.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { calculatorEnvironment, evaluateExpression, formatRational } from "../src/agent/calculator.js";
import { GridNavEnv } from "../src/agent/env.js";
import { gridEnvironment, gridPromptRows } from "../src/agent/grid_environment.js";
import { CharTokenizer } from "../src/io/char_tokenizer.js";

const TOK = new CharTokenizer("0123456789+-*/().=<>[]calcresultoe/ \ngupdwnlifth,", { bosToken: null });
const fmt = (s: string) => formatRational(evaluateExpression(s));

describe("calculator", () => {
  test("exact arithmetic with precedence, parentheses, unary minus, decimals and fractions", () => {
    assert.equal(fmt("17 + 25 * 2"), "67");
    assert.equal(fmt("(17 + 25) * 2"), "84");
    assert.equal(fmt("-3 - -4"), "1");
    assert.equal(fmt("7 / 4"), "1.75");
    assert.equal(fmt("1 / 3"), "1/3");
    assert.equal(fmt("0.1 + 0.2"), "0.3");
    assert.equal(fmt("2 × 3 ÷ 4"), "1.5");
    assert.equal(fmt("-1 / 8"), "-0.125");
    for (const bad of ["", "2 +", "3 / 0", "2 ** 3", "(1 + 2", "abc"]) assert.throws(() => evaluateExpression(bad), /calculator/, bad);
  });

  test("a turn that ends with a call gets the value; a malformed call an error observation; no call ends the episode", async () => {
    const env = calculatorEnvironment({ open: "[", close: "]", resultTemplate: "={value}", errorText: "=e" });
    assert.deepEqual(env.stop, ["]"]);
    const ep = env.reset({ prompt: "37*4=", columns: {} }, 0, TOK);
    const turn = (text: string, finishReason: "stop" | "eos" | "length" = "stop") => ep.step({ ids: TOK.encode(text), text, finishReason });
    const a = await turn("[37*4]");
    assert.equal(TOK.decode(a.observationIds), "=148");
    assert.equal(a.done, false);
    const b = await turn("[37*]");
    assert.equal(TOK.decode(b.observationIds), "=e");
    assert.deepEqual(b.info, { tool_calls: 2, tool_errors: 1 });
    const c = await turn("148", "eos");
    assert.deepEqual(c, { observationIds: [], done: true });
    // default tags
    const d = await calculatorEnvironment()
      .reset({ prompt: "", columns: {} }, 0, TOK)
      .step({ ids: [], text: "so <calc>(2+3)*4</calc>", finishReason: "stop" });
    assert.equal(TOK.decode(d.observationIds), "<result>20</result>");
    assert.throws(() => calculatorEnvironment({ resultTemplate: "x" }), /\{value\}/);
  });
});

describe("grid environment (AgentPRM)", () => {
  test("rows carry the first observation and the reset seed; actions step GridNavEnv; success is env_reward 1", async () => {
    const rows = gridPromptRows(3, { seed: 10 });
    const ref = new GridNavEnv();
    assert.deepEqual(rows[1], { prompt: `${ref.reset(11)}\n`, seed: 11 });
    const env = gridEnvironment();
    assert.equal(env.maxTurns, ref.horizon);
    // walk greedily towards the goal read from the observation: success within the horizon
    const ep = env.reset({ prompt: rows[0].prompt, columns: { seed: rows[0].seed } }, 0, TOK);
    let obs = rows[0].prompt.trim();
    let reward = 0;
    for (let t = 0; t < env.maxTurns; t++) {
      const [dx, dy] = obs.slice(5).split(",").map(Number);
      const action = dx > 0 ? "right" : dx < 0 ? "left" : dy > 0 ? "up" : "down";
      const r = await ep.step({ ids: TOK.encode(`${action}\n`), text: `${action}\n`, finishReason: "stop" });
      reward += r.reward ?? 0;
      if (r.done) break;
      obs = TOK.decode(r.observationIds).trim();
    }
    assert.equal(reward, 1);
    const bad = await env.reset({ prompt: "", columns: { seed: 1 } }, 0, TOK).step({ ids: [], text: "jump\n", finishReason: "stop" });
    assert.deepEqual([bad.done, bad.reward], [true, 0]);
    assert.throws(() => env.reset({ prompt: "", columns: {} }, 0, TOK), /"seed" column/);
  });
});
