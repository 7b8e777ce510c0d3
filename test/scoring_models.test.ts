// PRM / ORM scoring against manual forwards: PrmScorer reads softmax(logits)[1] at hand-computed step-end
// indices (the positions tokenizePrmRow labels), batched rows with padding equal one-row forwards; OrmScorer
// equals SequenceClassifier.rewards on the reward trainer's tokenization; loading reads the trained separator.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { tokenizePrmRow } from "../src/data/row_tokenize.js";
import { CharTokenizer } from "../src/io/char_tokenizer.js";
import { parseHfConfig } from "../src/io/hf_config.js";
import { saveTokenizer } from "../src/io/tokenizer.js";
import { SequenceClassifier, saveClassifier, TokenClassifier } from "../src/models/heads.js";
import { Rng } from "../src/nn/rng.js";
import { loadOrmScorer, loadPrmScorer, OrmScorer, PrmScorer } from "../src/rewards/scoring.js";
import { tensor } from "../src/tensor/index.js";
import { resolveConfig } from "../src/train/config.js";
import { PRM_SCHEMA } from "../src/train/prm_trainer.js";

const TOK = new CharTokenizer("abcdefgh+=\n|");
const BOS = TOK.bosTokenId as number;
const EOS = TOK.eosTokenId;
const CFG = parseHfConfig({
  model_type: "llama",
  vocab_size: TOK.vocabSize,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  max_position_embeddings: 64,
  tie_word_embeddings: false,
  pad_token_id: 0,
});
const prm = new TokenClassifier(CFG, { rng: new Rng(1) });
const orm = new SequenceClassifier(CFG, { rng: new Rng(2) });
const sig = (x: number) => 1 / (1 + Math.exp(-x));

/** P(correct) at one position of a one-row TokenClassifier forward. */
function manualPrm(ids: number[], positions: number[]): number[] {
  const logits = prm.forward({ inputIds: tensor([ids], { dtype: "i32" }) }); // (1, T, 2)
  const d = logits.hostData();
  return positions.map((p) => sig(d[2 * p + 1] - d[2 * p]));
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("PrmScorer", () => {
  test("reads softmax[1] at each step's separator token: hand-computed indices", async () => {
    const s = new PrmScorer(prm, TOK);
    const got = await s.scoreSteps("ab", ["c", "de"]);
    //        ids: bos a b c \n d e \n  → step ends at 4 and 7
    const ids = [BOS, ...TOK.encode("abc\nde\n", { addSpecialTokens: false })];
    const want = manualPrm(ids, [4, 7]);
    assert.equal(got.length, 2);
    for (let i = 0; i < 2; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-5, `step ${i}: ${got[i]} vs ${want[i]}`);
    // the positions are exactly the ones prm_trainer labels
    const e = tokenizePrmRow(TOK, { prompt: "ab", completions: ["c", "de"], labels: [true, true] }, resolveConfig("prm", PRM_SCHEMA, {}));
    assert.deepEqual(e.ids, ids);
    assert.deepEqual(
      e.labels.flatMap((l, i) => (l === -100 ? [] : [i])),
      [4, 7],
    );
  });

  test("a batch of different lengths (padded) equals one-row forwards; empty solutions get []", async () => {
    const rows = [
      { prompt: "a+b=", steps: ["c", "dd", "e"] },
      { prompt: "h", steps: [] },
      { prompt: "gg", steps: ["f"] },
    ];
    const s = new PrmScorer(prm, TOK, { batchSize: 2 });
    const got = await s.scoreBatch(rows);
    assert.deepEqual(got[1], []);
    const want0 = manualPrm([BOS, ...TOK.encode("a+b=c\ndd\ne\n", { addSpecialTokens: false })], [6, 9, 11]);
    const want2 = manualPrm([BOS, ...TOK.encode("ggf\n", { addSpecialTokens: false })], [4]);
    for (const [g, w] of [
      [got[0], want0],
      [got[2], want2],
    ])
      g.forEach((x, i) => {
        assert.ok(Math.abs(x - w[i]) < 1e-5);
      });
    const agg = s.aggregate("min");
    assert.ok(Math.abs((await agg.scoreSolution("a+b=", ["c", "dd", "e"])) - Math.min(...want0)) < 1e-6);
    const prod = await s.aggregate("product").scoreBatch([rows[0], rows[2]]);
    assert.ok(Math.abs(prod[0] - want0.reduce((a, b) => a * b, 1)) < 1e-6);
    assert.ok(Math.abs(prod[1] - want2[0]) < 1e-6);
  });

  test("a custom separator moves the read position to its last token", async () => {
    const got = await new PrmScorer(prm, TOK, { stepSeparator: "||" }).scoreSteps("a", ["b", "c"]);
    // bos a b | | c | |  → 4 and 7
    const want = manualPrm([BOS, ...TOK.encode("ab||c||", { addSpecialTokens: false })], [4, 7]);
    got.forEach((x, i) => {
      assert.ok(Math.abs(x - want[i]) < 1e-5);
    });
  });
});

describe("OrmScorer", () => {
  test("equals SequenceClassifier.rewards on prompt + joined steps + EOS; sigmoid option", async () => {
    const rows = [
      { prompt: "ab", steps: ["c", "de"] },
      { prompt: "a+b=", steps: ["h"] },
    ];
    const s = new OrmScorer(orm, TOK);
    const got = await s.scoreBatch(rows);
    const texts = ["abc\nde\n", "a+b=h\n"];
    for (let i = 0; i < 2; i++) {
      const ids = [...TOK.encode(texts[i]), EOS];
      assert.deepEqual(s.encode(rows[i].prompt, rows[i].steps), ids);
      const want = orm.rewards({ inputIds: tensor([ids], { dtype: "i32" }) }).hostData()[0];
      assert.ok(Math.abs(got[i] - want) < 1e-5, `${got[i]} vs ${want}`);
    }
    const p = await new OrmScorer(orm, TOK, { sigmoid: true }).scoreSolution(rows[0].prompt, rows[0].steps);
    assert.ok(Math.abs(p - sig(got[0])) < 1e-6);
  });
});

describe("loading scorers from folders", () => {
  test("loadPrmScorer takes the trained stepSeparator from training_config.json; loadOrmScorer round-trips", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nexus-scoring-"));
    dirs.push(dir);
    const pdir = join(dir, "prm");
    saveClassifier(prm, pdir);
    saveTokenizer(TOK, pdir);
    writeFileSync(join(pdir, "training_config.json"), JSON.stringify({ stepSeparator: "||" }));
    const lp = loadPrmScorer(pdir);
    assert.equal(lp.stepSeparator, "||");
    const a = await lp.scoreSteps("a", ["b", "c"]);
    const b = await new PrmScorer(prm, TOK, { stepSeparator: "||" }).scoreSteps("a", ["b", "c"]);
    a.forEach((x, i) => {
      assert.ok(Math.abs(x - b[i]) < 1e-6);
    });
    const odir = join(dir, "orm");
    saveClassifier(orm, odir);
    saveTokenizer(TOK, odir);
    const lo = loadOrmScorer(odir);
    assert.ok(Math.abs((await lo.scoreSolution("ab", ["c"])) - (await new OrmScorer(orm, TOK).scoreSolution("ab", ["c"]))) < 1e-6);
  });
});
