// TRL dataset formats: kind detection, schema errors with file:line and field, implicit prompt extraction
// matching TRL's `extract_prompt` (strings and message lists), unpairing, and extra columns kept.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, test } from "node:test";
import {
  DatasetError,
  detectKind,
  extractPrompt,
  isConversational,
  loadDataset,
  streamDataset,
  unpairPreference,
  writeJsonl,
} from "../src/data/index.js";

const user = (content: string) => ({ role: "user", content });
const asst = (content: string) => ({ role: "assistant", content });

describe("formats", () => {
  test("detectKind follows TRL key sets", () => {
    assert.equal(detectKind({ text: "The sky is blue." }), "language_modeling");
    assert.equal(detectKind({ messages: [user("hi"), asst("yo")] }), "language_modeling");
    assert.equal(detectKind({ prompt: "The sky is", answer: 3 }), "prompt_only");
    assert.equal(detectKind({ prompt: "The sky is", completion: " blue." }), "prompt_completion");
    assert.equal(detectKind({ prompt: "p", chosen: "a", rejected: "b" }), "preference");
    assert.equal(detectKind({ chosen: "a", rejected: "b" }), "preference");
    assert.equal(detectKind({ prompt: "p", completion: "c", label: false }), "unpaired_preference");
    assert.equal(detectKind({ prompt: "p", completions: ["a"], labels: [true] }), "stepwise_supervision");
    assert.equal(detectKind({ question: "q" }), null);
    assert.equal(isConversational({ prompt: [user("q")] }), true);
    assert.equal(isConversational({ prompt: "q" }), false);
  });

  test("extractPrompt on strings: longest common prefix, the space goes to the completions", () => {
    assert.deepEqual(extractPrompt("The sky is blue.", "The sky is green."), {
      prompt: "The sky is",
      chosen: " blue.",
      rejected: " green.",
    });
    // No space before the first difference: split right at it.
    assert.deepEqual(extractPrompt("2+2=4", "2+2=5"), { prompt: "2+2=", chosen: "4", rejected: "5" });
    // Difference at index 0: empty prompt (TRL would wrap chosen[-1]).
    assert.deepEqual(extractPrompt("abc ", "xbc "), { prompt: "", chosen: "abc ", rejected: "xbc " });
    // One is a prefix of the other: TRL's loop ends at min-1, keeping one element for the completions.
    assert.deepEqual(extractPrompt("abc", "abcd"), { prompt: "ab", chosen: "c", rejected: "cd" });
  });

  test("extractPrompt on message lists compares whole messages", () => {
    const chosen = [user("What color is the sky?"), asst("It is blue.")];
    const rejected = [user("What color is the sky?"), asst("It is green.")];
    assert.deepEqual(extractPrompt(chosen, rejected), {
      prompt: [user("What color is the sky?")],
      chosen: [asst("It is blue.")],
      rejected: [asst("It is green.")],
    });
    const multi = [user("a"), asst("b"), user("c"), asst("d1")];
    const multiR = [user("a"), asst("b"), user("c"), asst("d2")];
    assert.equal(extractPrompt(multi, multiR).prompt.length, 3);
  });

  test("loadDataset validates in-memory rows and keeps extra columns", () => {
    const rows = loadDataset([{ prompt: "Start at 3. Add 4.\n", answer: 7, difficulty: "easy" }], "prompt_only");
    assert.deepEqual(rows, [{ prompt: "Start at 3. Add 4.\n", answer: 7, difficulty: "easy" }]);
    const e = (() => {
      try {
        loadDataset([{ prompt: "p", completions: ["a", "b", "c"], labels: [true, false] }], "stepwise_supervision", { name: "prm" });
      } catch (err) {
        return err as DatasetError;
      }
      return null;
    })();
    assert.ok(e instanceof DatasetError);
    assert.equal(e.message, 'prm:1: field "labels": expected 3 labels (one per completion), got 2');
  });

  test("loadDataset errors for nested message fields and mixed formats", () => {
    assert.throws(
      () =>
        loadDataset(
          [
            { chosen: "a", rejected: "b" },
            { chosen: [user("q"), { role: "assistant", content: 3 }], rejected: [user("q")] },
          ],
          "preference",
        ),
      { name: "DatasetError", message: '<memory>:2: field "chosen[1].content": expected string, got number' },
    );
    assert.throws(() => loadDataset([{ prompt: [user("q")], chosen: "a", rejected: "b" }], "preference"), {
      message: '<memory>:1: field "chosen": expected message list like "prompt", got string',
    });
    assert.throws(() => loadDataset([{ prompt: "p", chosen: 1, rejected: "b" }], "preference"), {
      message: '<memory>:1: field "chosen": expected string or array, got number',
    });
    assert.throws(() => loadDataset([{ prompt: "p", completion: "c", label: "yes" }], "unpaired_preference"), {
      message: '<memory>:1: field "label": expected boolean, got string',
    });
    assert.throws(() => loadDataset([{ prompt: "p", completions: ["a", 2], labels: [true, true] }], "stepwise_supervision"), {
      message: '<memory>:1: field "completions[1]": expected string, got number',
    });
  });

  test("loadDataset from a file: detection, line numbers past blank lines, implicit prompts", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nexus-formats-"));
    const f = path.join(dir, "pref.jsonl");
    writeJsonl(f, [
      { chosen: "The sky is blue.", rejected: "The sky is green." },
      { prompt: "Q:", chosen: " a", rejected: " b", margin: 0.5 },
    ]);
    const { kind, rows } = loadDataset(f);
    assert.equal(kind, "preference");
    assert.equal(rows.length, 2);
    const extracted = loadDataset(f, "preference", { extractImplicitPrompt: true });
    assert.deepEqual(extracted[0], { prompt: "The sky is", chosen: " blue.", rejected: " green." });
    assert.deepEqual(extracted[1], { prompt: "Q:", chosen: " a", rejected: " b", margin: 0.5 });
    const streamed = [];
    for await (const r of streamDataset(f, "preference", { extractImplicitPrompt: true })) streamed.push(r);
    assert.deepEqual(streamed, extracted);

    const bad = path.join(dir, "bad.jsonl");
    fs.writeFileSync(bad, '{"prompt":"p","completion":"c"}\n\n{"prompt":"p","completion":7}\n');
    assert.throws(() => loadDataset(bad, "prompt_completion"), {
      message: `${bad}:3: field "completion": expected string or array, got number`,
    });
    // Detected from row 1, so row 2 must be the same kind.
    fs.writeFileSync(bad, '{"text":"hello"}\n{"prompt":"p"}\n');
    assert.throws(() => loadDataset(bad), {
      message: `${bad}:2: row has prompt_only columns, but the dataset is language_modeling (from its first row)`,
    });
  });

  test("unpairPreference: chosen rows labelled true, then rejected rows false", () => {
    const out = unpairPreference([
      { prompt: "The sky is", chosen: " blue.", rejected: " green." },
      { chosen: "2+2=4", rejected: "2+2=5" },
    ]);
    assert.deepEqual(out, [
      { prompt: "The sky is", completion: " blue.", label: true },
      { prompt: "2+2=", completion: "4", label: true },
      { prompt: "The sky is", completion: " green.", label: false },
      { prompt: "2+2=", completion: "5", label: false },
    ]);
  });
});
