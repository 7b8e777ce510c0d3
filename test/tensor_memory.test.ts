// Host memory statistics on ref/cpu (src/tensor/memory.ts, storage.ts): the ledger counts a new storage once and
// frees pool returns exactly, collected garbage leaves it after a GC, AdamW's moments count, and the exact mode
// measures live bytes at engine checkpoints, never above the ledger's upper bound. (Device allocators: device_sim.)

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setImmediate as tick } from "node:timers/promises";
import { Linear } from "../src/nn/layers.js";
import { AdamW } from "../src/nn/optim.js";
import { Rng } from "../src/nn/rng.js";
import {
  backward,
  collectGarbage,
  matmul,
  memoryCheckpoint,
  memoryStats,
  resetPeakMemoryStats,
  reshape,
  rssStats,
  setHostMemoryMode,
  sum,
  tensor,
  zeros,
} from "../src/tensor/index.js";
import { allocate, hostPoolFreeBytes, releaseBuffer, withBufferPool } from "../src/tensor/storage.js";
import { fromArray } from "../src/tensor/tensor.js";

const MiB = 2 ** 20;

describe("host memory ledger", () => {
  test("a new storage counts its bytes once; views do not count again", () => {
    setHostMemoryMode("ledger");
    const before = memoryStats().allocated;
    const t = zeros([MiB / 4]); // 1 MiB of f32
    assert.equal(memoryStats().allocated - before, MiB);
    const v = reshape(t, [512, 512]);
    assert.equal(memoryStats().allocated - before, MiB);
    assert.ok(memoryStats().peakAllocated >= memoryStats().allocated);
    assert.equal(v.size, MiB / 4);
  });
  test("the pool frees exactly: a released buffer leaves allocated", () => {
    setHostMemoryMode("ledger");
    withBufferPool(() => {
      const data = allocate("f32", 65536); // pooled inside a pass
      const a0 = memoryStats().allocated;
      const free0 = hostPoolFreeBytes();
      releaseBuffer(data);
      assert.equal(a0 - memoryStats().allocated, 65536 * 4);
      assert.equal(hostPoolFreeBytes() - free0, 65536 * 4);
    });
  });
  test("AdamW's two moments are counted when its first step creates them", () => {
    setHostMemoryMode("ledger");
    const lin = new Linear(256, 256, { rng: new Rng(1) }); // 65536 weights
    const opt = new AdamW(lin.parameters(), { lr: 1e-3 });
    backward(sum(lin.forward(tensor(new Float32Array(4 * 256).fill(0.5), { shape: [4, 256] }))));
    const before = memoryStats().allocated;
    opt.step();
    assert.equal(memoryStats().allocated - before, 2 * 65536 * 4);
  });
  test("collected garbage leaves the ledger after a collection and a task boundary", async () => {
    setHostMemoryMode("ledger");
    const before = memoryStats().allocated;
    (() => {
      zeros([4 * MiB]); // 16 MiB, dropped at once
    })();
    assert.ok(memoryStats().allocated - before >= 16 * MiB);
    // finalization callbacks run in a task after the collection: wait for them (at most a second)
    for (let i = 0; i < 100 && memoryStats().allocated - before >= MiB; i++) {
      collectGarbage();
      await tick();
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(memoryStats().allocated - before < MiB, `ledger still holds ${(memoryStats().allocated - before) / MiB} MiB`);
  });
});

describe("exact host mode", () => {
  test("live bytes at checkpoints; the peak keeps a checkpointed tensor that was then dropped", () => {
    setHostMemoryMode("exact");
    try {
      const base = memoryStats().allocated;
      resetPeakMemoryStats();
      (() => {
        const big = zeros([2 * MiB]); // 8 MiB
        memoryCheckpoint();
        assert.equal(big.size, 2 * MiB);
      })();
      const s = memoryStats();
      assert.ok(Math.abs(s.allocated - base) < 256 * 1024, `allocated moved by ${(s.allocated - base) / 1024} KiB`);
      assert.ok(s.peakAllocated - base >= 8 * MiB && s.peakAllocated - base < 9 * MiB, `peak ${(s.peakAllocated - base) / MiB} MiB`);
    } finally {
      setHostMemoryMode("ledger");
    }
  });
  test("a training step: the exact peak holds the forward activations; the ledger's peak bounds it from above", () => {
    const rng = new Rng(2);
    const wData = new Float32Array(512 * 512); // 1 MiB
    rng.fillNormal(wData, 0, 0.01);
    const w = fromArray(wData, [512, 512], true);
    const x = tensor(new Float32Array(256 * 512).fill(0.1), { shape: [256, 512] }); // 0.5 MiB
    const step = () => {
      let h = x;
      for (let i = 0; i < 4; i++) h = matmul(h, w); // four 0.5 MiB activations kept for backward
      backward(sum(h));
      w.grad = null;
    };
    setHostMemoryMode("exact");
    let exactPeak: number;
    try {
      const base = memoryStats().allocated;
      resetPeakMemoryStats();
      step();
      exactPeak = memoryStats().peakAllocated - base;
    } finally {
      setHostMemoryMode("ledger");
    }
    assert.ok(exactPeak >= 2 * MiB - 64 * 1024, `exact peak ${exactPeak / MiB} MiB: the 4 activations (2 MiB) are live before backward`);
    assert.ok(exactPeak < 4 * MiB, `exact peak ${exactPeak / MiB} MiB is not much more than what is live`);
    collectGarbage();
    const ledgerBase = memoryStats().allocated;
    resetPeakMemoryStats();
    step();
    assert.ok(memoryStats().peakAllocated - ledgerBase >= exactPeak - 64 * 1024, "the ledger is an upper bound");
  });
  test("bad mode is rejected; RSS is positive and its sampled peak at least the current RSS", () => {
    assert.throws(() => setHostMemoryMode("fast" as "exact"), /'ledger' or 'exact'/);
    const r = rssStats();
    assert.ok(r.rss > 10 * MiB && r.peakRss >= r.rss);
  });
});
