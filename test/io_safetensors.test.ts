// Tests of src/io/safetensors.ts, sharded.ts and half.ts against the HF fixtures (written by the Python
// safetensors library), the Rust library's own byte-level test vectors, and oracle half/bf16 values
// computed independently in Python (test/fixtures/io/make_half_cases.py).

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  f16BitsToF32Bits,
  f16ToF32,
  f32BitsToBf16Bits,
  f32BitsToF16Bits,
  planShards,
  readSafetensors,
  readSafetensorsHeader,
  readShardedSafetensors,
  roundToBf16,
  roundToF16,
  SafetensorsError,
  serializeSafetensors,
  type WritableTensor,
  writeSafetensors,
  writeShardedSafetensors,
} from "../src/io/index.js";

const HF = fileURLToPath(new URL("../../shared/fixtures/hf/", import.meta.url));
const LOCAL = fileURLToPath(new URL("./fixtures/io/", import.meta.url));
const FIXTURE_FILES = [
  "llama-tiny/model.safetensors",
  "qwen2-tiny/model.safetensors",
  "llama-tiny/expected.safetensors",
  "qwen2-tiny/expected.safetensors",
];

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "nexus-io-"));
}

/** A raw file: 8-byte length, header text, data bytes (lengthOverride lies about the header length). */
function rawFile(dir: string, header: unknown, dataBytes: number, lengthOverride?: bigint): string {
  const h = Buffer.isBuffer(header) ? header : Buffer.from(typeof header === "string" ? header : JSON.stringify(header), "utf-8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(h.length));
  const file = path.join(dir, `f${Math.random().toString(36).slice(2)}.safetensors`);
  fs.writeFileSync(file, Buffer.concat([len, h, Buffer.alloc(dataBytes)]));
  return file;
}

describe("safetensors: reading the HF fixtures", () => {
  it("reads llama-tiny with the shapes, metadata and values the file holds", () => {
    const file = path.join(HF, "llama-tiny/model.safetensors");
    const { tensors, metadata } = readSafetensors(file);
    assert.deepEqual(metadata, { format: "pt" });
    assert.equal(tensors.size, 21);
    const emb = tensors.get("model.embed_tokens.weight");
    assert.ok(emb && emb.data instanceof Float32Array);
    assert.equal(emb.dtype, "F32");
    assert.deepEqual(emb.shape, [384, 64]);
    // Values read independently with Python (struct + numpy) from the same file.
    assert.deepEqual(
      Array.from(emb.data.slice(0, 4)),
      [0.02760990522801876, -0.00030523238820023835, -0.01995088718831539, 0.03735068812966347],
    );
    assert.equal(emb.data[383 * 64 + 63], -0.008836320601403713);
    let sum = 0;
    for (const v of emb.data) sum += v;
    assert.ok(Math.abs(sum - -7.023856274912077) < 1e-9);
    const k = tensors.get("model.layers.1.self_attn.k_proj.weight");
    assert.deepEqual(k?.shape, [32, 64]);
    assert.deepEqual(
      Array.from(k?.data.slice(31 * 64, 31 * 64 + 3) ?? []),
      [-0.002808444667607546, -0.00024393053899984807, -0.012022220529615879],
    );
    assert.deepEqual(Array.from(tensors.get("model.norm.weight")?.data ?? []), new Array(64).fill(1));
  });

  it("reads I32 tensors as Int32Array", () => {
    const { tensors } = readSafetensors(path.join(HF, "llama-tiny/expected.safetensors"), {
      names: ["input_ids", "attention_mask", "loss"],
    });
    assert.equal(tensors.size, 3);
    const ids = tensors.get("input_ids");
    assert.ok(ids?.data instanceof Int32Array);
    assert.deepEqual(ids.shape, [3, 12]);
    assert.deepEqual(Array.from(ids.data.slice(12, 24)), [0, 0, 0, 0, 33, 285, 149, 178, 204, 282, 92, 199]);
    assert.deepEqual(Array.from(tensors.get("attention_mask")?.data.slice(12, 24) ?? []), [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
    assert.deepEqual(Array.from(tensors.get("loss")?.data ?? []), [-154.06658935546875]);
  });

  it("reads the header alone", () => {
    const h = readSafetensorsHeader(path.join(HF, "llama-tiny/model.safetensors"));
    assert.equal(h.headerBytes, 2136);
    assert.equal(h.tensors.size, 21);
    assert.deepEqual(h.tensors.get("lm_head.weight"), { dtype: "F32", shape: [384, 64], dataOffsets: [0, 98304] });
    assert.equal([...h.tensors.keys()].at(-1), "model.norm.weight");
  });

  it("names a missing tensor", () => {
    assert.throws(
      () => readSafetensors(path.join(HF, "llama-tiny/model.safetensors"), { names: ["nope"] }),
      /tensor "nope" is not in the file/,
    );
  });

  for (const f of FIXTURE_FILES) {
    it(`read then write reproduces ${f} byte for byte`, () => {
      const file = path.join(HF, f);
      const { tensors, metadata } = readSafetensors(file);
      const orig = fs.readFileSync(file);
      assert.ok(Buffer.from(serializeSafetensors(tensors, metadata)).equals(orig));
      const dir = tmpDir();
      const out = path.join(dir, "out.safetensors");
      writeSafetensors(out, tensors, metadata);
      assert.ok(fs.readFileSync(out).equals(orig));
      assert.deepEqual(fs.readdirSync(dir), ["out.safetensors"], "no temp file is left behind");
    });
  }
});

describe("safetensors: writer layout", () => {
  it("matches the Rust library's serialization test vectors", () => {
    // safetensors/src/tensor.rs test_serialization, test_empty and test_serialization_forced_alignement.
    const six = Float32Array.from([0, 1, 2, 3, 4, 5]);
    assert.deepEqual(
      Array.from(serializeSafetensors({ "attn.0": { dtype: "F32", shape: [1, 2, 3], data: six } })),
      [
        64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34,
        44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115,
        34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
      ],
    );
    assert.deepEqual(Array.from(serializeSafetensors({})), [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    assert.deepEqual(
      Array.from(serializeSafetensors({}, { framework: "pt" })),
      [
        40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95, 95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119,
        111, 114, 107, 34, 58, 34, 112, 116, 34, 125, 125, 32, 32, 32, 32, 32,
      ],
    );
    const aligned = serializeSafetensors({ attn0: { dtype: "F32", shape: [1, 1, 2, 3], data: six } });
    assert.equal(aligned[0], 72);
    assert.equal(Buffer.from(aligned.slice(8, 80)).toString().endsWith("]}}       "), true);
  });

  it("orders tensors by descending dtype then name, and converts on write", () => {
    const dir = tmpDir();
    const file = path.join(dir, "mixed.safetensors");
    const tensors: Record<string, WritableTensor> = {
      "b.f16": { dtype: "F16", shape: [3], data: [1, 65504, 1e-7] },
      "a.i32": { dtype: "I32", shape: [2], data: [-7, 2147483647] },
      "z.f32": { dtype: "F32", shape: [1], data: Float32Array.of(0.1) },
      "y.i64": { dtype: "I64", shape: [2], data: Int32Array.of(-3, 5) },
      "c.bf16": { dtype: "BF16", shape: [2, 1], data: Float64Array.of(1 + 2 ** -8, -3.0078125 - 2 ** -10) },
      "a.f32": { dtype: "F32", shape: [0], data: [] },
    };
    writeSafetensors(file, tensors, { format: "pt" });
    const h = readSafetensorsHeader(file);
    assert.deepEqual([...h.tensors.keys()], ["y.i64", "a.f32", "z.f32", "a.i32", "c.bf16", "b.f16"]);
    assert.equal((8 + h.headerBytes) % 8, 0);
    const { tensors: back } = readSafetensors(file);
    assert.deepEqual(Array.from(back.get("y.i64")?.data ?? []), [-3, 5]);
    assert.deepEqual(Array.from(back.get("a.i32")?.data ?? []), [-7, 2147483647]);
    assert.deepEqual(Array.from(back.get("z.f32")?.data ?? []), [Math.fround(0.1)]);
    assert.deepEqual(back.get("a.f32")?.shape, [0]);
    // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: ties go to the even mantissa, 1.
    assert.deepEqual(Array.from(back.get("c.bf16")?.data ?? []), [1, roundToBf16(-3.0078125 - 2 ** -10)]);
    assert.equal(roundToBf16(-3.0078125 - 2 ** -10), -3.015625); // just past the tie 3 + 2^-7: rounds away
    assert.deepEqual(Array.from(back.get("b.f16")?.data ?? []), [1, 65504, roundToF16(1e-7)]);
    assert.equal(roundToF16(1e-7), 2 ** -24 * 2); // 1e-7 / 2^-24 = 1.68 -> 2 subnormal units
  });

  it("rejects bad tensors to write, naming them", () => {
    const dir = tmpDir();
    const file = path.join(dir, "bad.safetensors");
    assert.throws(
      () => writeSafetensors(file, { w: { dtype: "F32", shape: [2, 2], data: [1, 2, 3] } }),
      /tensor "w": data has 3 elements, shape \[2,2\] needs 4/,
    );
    assert.throws(() => writeSafetensors(file, { w: { dtype: "I32", shape: [1], data: [1.5] } }), /tensor "w": I32 value 1.5/);
    assert.throws(() => writeSafetensors(file, { w: { dtype: "U8" as "I32", shape: [1], data: [1] } }), /cannot write dtype "U8"/);
    assert.deepEqual(fs.readdirSync(dir), []);
  });
});

describe("safetensors: other dtypes on read", () => {
  it("widens integer and f64 dtypes", () => {
    const dir = tmpDir();
    const parts: [string, string, number[], Buffer][] = [
      ["i64", "I64", [3], Buffer.from(BigInt64Array.of(-5n, 0n, 2147483647n).buffer)],
      ["f64", "F64", [2], Buffer.from(Float64Array.of(0.5, -1e300).buffer)],
      ["i16", "I16", [2], Buffer.from(Int16Array.of(-32768, 7).buffer)],
      ["u16", "U16", [1], Buffer.from(Uint16Array.of(65535).buffer)],
      ["i8", "I8", [2], Buffer.from(Int8Array.of(-128, 127).buffer)],
      ["u8", "U8", [1], Buffer.from(Uint8Array.of(255).buffer)],
      ["bool", "BOOL", [2], Buffer.from(Uint8Array.of(1, 0).buffer)],
      ["bf16", "BF16", [2], Buffer.from(Uint16Array.of(0x3f80, 0xc049).buffer)],
      ["f16", "F16", [2], Buffer.from(Uint16Array.of(0x3c00, 0x0001).buffer)],
    ];
    const header: Record<string, unknown> = {};
    let off = 0;
    for (const [name, dtype, shape, b] of parts) {
      header[name] = { dtype, shape, data_offsets: [off, off + b.length] };
      off += b.length;
    }
    const file = rawFile(dir, header, 0);
    fs.appendFileSync(file, Buffer.concat(parts.map((p) => p[3])));
    const { tensors } = readSafetensors(file);
    const get = (n: string) => Array.from(tensors.get(n)?.data ?? []);
    assert.deepEqual(get("i64"), [-5, 0, 2147483647]);
    assert.deepEqual(get("f64"), [0.5, -Infinity]); // -1e300 overflows float32
    assert.deepEqual(get("i16"), [-32768, 7]);
    assert.deepEqual(get("u16"), [65535]);
    assert.deepEqual(get("i8"), [-128, 127]);
    assert.deepEqual(get("u8"), [255]);
    assert.deepEqual(get("bool"), [1, 0]);
    assert.deepEqual(get("bf16"), [1, -3.140625]);
    assert.deepEqual(get("f16"), [1, 2 ** -24]);
    assert.ok(tensors.get("i64")?.data instanceof Int32Array);
    assert.ok(tensors.get("f64")?.data instanceof Float32Array);
  });

  it("rejects I64 values outside int32", () => {
    const dir = tmpDir();
    const file = rawFile(dir, { big: { dtype: "I64", shape: [2], data_offsets: [0, 16] } }, 0);
    fs.appendFileSync(file, Buffer.from(BigInt64Array.of(1n, 2147483648n).buffer));
    assert.throws(
      () => readSafetensors(file),
      new RegExp(`${path.basename(file)}: tensor "big": I64 value 2147483648 at index 1 does not fit in int32`),
    );
  });
});

describe("safetensors: malformed files", () => {
  const dir = tmpDir();
  const cases: [string, () => string, RegExp][] = [
    [
      "shorter than 8 bytes",
      () => {
        const f = path.join(dir, "tiny.safetensors");
        fs.writeFileSync(f, Buffer.from([1, 2, 3]));
        return f;
      },
      /has 3 bytes, fewer than the 8-byte header length/,
    ],
    ["header length past the end", () => rawFile(dir, "{}", 0, 1000n), /header length 1000 runs past the end of the file \(10 bytes\)/],
    ["absurd header length", () => rawFile(dir, "{}", 0, 2n ** 63n), /above the 100000000-byte limit/],
    ["invalid JSON", () => rawFile(dir, '{"a": {', 0), /header is not valid JSON/],
    ["invalid UTF-8", () => rawFile(dir, Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), 0), /header is not valid UTF-8/],
    ["header is an array", () => rawFile(dir, "[]", 0), /header JSON is not an object/],
    [
      "unknown dtype",
      () => rawFile(dir, { "x.weight": { dtype: "F17", shape: [1], data_offsets: [0, 4] } }, 4),
      /tensor "x\.weight": unknown dtype "F17"/,
    ],
    [
      "bad shape",
      () => rawFile(dir, { "x.weight": { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, 4),
      /tensor "x\.weight": shape \[-1\] is not a list/,
    ],
    [
      "bad offsets",
      () => rawFile(dir, { "x.weight": { dtype: "F32", shape: [1], data_offsets: [0] } }, 4),
      /tensor "x\.weight": data_offsets \[0\] is not a pair/,
    ],
    [
      "offsets reversed",
      () => rawFile(dir, { "x.weight": { dtype: "F32", shape: [0], data_offsets: [4, 0] } }, 4),
      /tensor "x\.weight": data_offsets \[4, 0\] end before they begin/,
    ],
    [
      "offsets out of range",
      () => rawFile(dir, { "x.weight": { dtype: "F32", shape: [2, 2], data_offsets: [0, 16] } }, 12),
      /tensor "x\.weight": data_offsets \[0, 16\] run past the data section \(12 bytes\)/,
    ],
    [
      "offsets not covering dtype x shape",
      () => rawFile(dir, { "x.weight": { dtype: "F32", shape: [2, 2], data_offsets: [0, 12] } }, 12),
      /tensor "x\.weight": data_offsets \[0, 12\] hold 12 bytes, dtype F32 shape \[2,2\] needs 16/,
    ],
    [
      "overlapping offsets",
      () =>
        rawFile(dir, { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, 12),
      /tensor "b": data_offsets \[4, 12\] overlap tensor "a"/,
    ],
    [
      "gap between tensors",
      () =>
        rawFile(dir, { a: { dtype: "F32", shape: [1], data_offsets: [0, 4] }, b: { dtype: "F32", shape: [1], data_offsets: [8, 12] } }, 12),
      /tensor "b": data_offsets begin at 8, leaving a gap of 4 bytes after tensor "a"/,
    ],
    [
      "gap at the start",
      () => rawFile(dir, { a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, 8),
      /tensor "a": data_offsets begin at 4, leaving a gap of 4 bytes at the start/,
    ],
    [
      "trailing bytes",
      () => rawFile(dir, { a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, 6),
      /data section has 6 bytes but the tensors cover 4 \(2 trailing bytes\)/,
    ],
    ["metadata not strings", () => rawFile(dir, { __metadata__: { format: 1 } }, 0), /__metadata__ value of "format" is 1, not a string/],
  ];
  for (const [what, make, re] of cases) {
    it(`rejects ${what}, naming the file`, () => {
      const file = make();
      for (const read of [() => readSafetensors(file), () => readSafetensorsHeader(file)]) {
        assert.throws(read, (e: unknown) => {
          assert.ok(e instanceof SafetensorsError);
          assert.match(e.message, re);
          assert.ok(e.message.startsWith(`[safetensors] ${file}: `), e.message);
          return true;
        });
      }
    });
  }
  it("rejects a file that does not exist", () => {
    assert.throws(() => readSafetensors(path.join(dir, "missing.safetensors")), /missing\.safetensors: cannot open \(ENOENT\)/);
  });
});

describe("half precision conversions", () => {
  const { cases } = JSON.parse(fs.readFileSync(path.join(LOCAL, "half_cases.json"), "utf-8")) as { cases: [number, number, number][] };
  it(`f32 -> f16 and f32 -> bf16 round to nearest even on ${cases.length} oracle cases`, () => {
    let checked = 0;
    for (const [f, h, b] of cases) {
      const nan = (f & 0x7fffffff) > 0x7f800000;
      if (nan) {
        assert.equal(f32BitsToF16Bits(f), ((f >>> 16) & 0x8000) | 0x7e00);
        assert.equal(f32BitsToBf16Bits(f), 0x7fc0);
      } else {
        assert.equal(f32BitsToF16Bits(f), h, `f16 of 0x${f.toString(16)}`);
        assert.equal(f32BitsToBf16Bits(f), b, `bf16 of 0x${f.toString(16)}`);
      }
      checked++;
    }
    assert.equal(checked, cases.length);
  });

  it("edge values: signed zeros, infinities, NaN, subnormals, ties", () => {
    const bits = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0];
    assert.equal(f32BitsToF16Bits(bits(-0)), 0x8000);
    assert.equal(f32BitsToBf16Bits(bits(-0)), 0x8000);
    assert.equal(f32BitsToF16Bits(bits(Infinity)), 0x7c00);
    assert.equal(f32BitsToF16Bits(bits(-Infinity)), 0xfc00);
    assert.equal(f32BitsToBf16Bits(bits(-Infinity)), 0xff80);
    assert.equal(f32BitsToF16Bits(bits(65519.99)), 0x7bff); // below the tie: max half
    assert.equal(f32BitsToF16Bits(bits(65520)), 0x7c00); // tie with an odd max: rounds to inf
    assert.equal(f32BitsToF16Bits(bits(2 ** -25)), 0); // tie between 0 and the smallest subnormal: even
    assert.equal(f32BitsToF16Bits(bits(3 * 2 ** -25)), 2); // tie between 1 and 2 units: even
    assert.equal(f32BitsToF16Bits(bits(2 ** -14 - 2 ** -25)), 0x400); // rounds up into the smallest normal
    assert.equal(f32BitsToBf16Bits(bits(1 + 2 ** -8)), 0x3f80);
    assert.equal(f32BitsToBf16Bits(bits(1 + 3 * 2 ** -8)), 0x3f82);
    assert.equal(f32BitsToBf16Bits(0x00000001), 0); // the smallest f32 subnormal
    assert.equal(f32BitsToBf16Bits(0x7f7fffff), 0x7f80); // max float32 rounds to inf
    assert.ok(Number.isNaN(roundToBf16(Number.NaN)) && Number.isNaN(roundToF16(Number.NaN)));
    assert.ok(Object.is(roundToF16(-0), -0));
  });

  it("f16 -> f32 is exact for all 65536 bit patterns", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const out = f16ToF32(all);
    for (let h = 0; h < 65536; h++) {
      const s = h & 0x8000 ? -1 : 1;
      const e = (h >> 10) & 0x1f;
      const m = h & 0x3ff;
      const want = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? Number.NaN : s * Infinity) : s * 2 ** (e - 15) * (1 + m / 1024);
      if (Number.isNaN(want)) assert.ok(Number.isNaN(out[h]));
      else assert.ok(Object.is(out[h], want), `half 0x${h.toString(16)}: ${out[h]} vs ${want}`);
      if (!Number.isNaN(want)) assert.equal(f32BitsToF16Bits(f16BitsToF32Bits(h)), h);
    }
  });
});

describe("sharded checkpoints", () => {
  const mk = (n: number, v: number): WritableTensor => ({ dtype: "F32", shape: [n], data: new Float32Array(n).fill(v) });
  it("splits like huggingface_hub and writes the transformers index", () => {
    const dir = tmpDir();
    // 40-byte limit: a(16) b(16) | c(24) | big(80, own shard, placed before the filling one) | d(8)... see plan below.
    const tensors = new Map<string, WritableTensor>([
      ["a", mk(4, 1)],
      ["b", mk(4, 2)],
      ["c", mk(6, 3)],
      ["big", mk(20, 4)],
      ["d", mk(2, 5)],
      ["e", { dtype: "BF16", shape: [3], data: [1.5, 2.5, -1] }],
    ]);
    const plan = planShards(tensors, 40);
    assert.deepEqual([...plan.shards.values()], [["a", "b"], ["big"], ["c", "d", "e"]]);
    assert.equal(plan.totalSize, 16 + 16 + 24 + 80 + 8 + 6);
    const res = writeShardedSafetensors(dir, tensors, { maxShardBytes: 40 });
    assert.equal(res.sharded, true);
    assert.deepEqual(res.files, [
      "model-00001-of-00003.safetensors",
      "model-00002-of-00003.safetensors",
      "model-00003-of-00003.safetensors",
      "model.safetensors.index.json",
    ]);
    const index = fs.readFileSync(path.join(dir, "model.safetensors.index.json"), "utf-8");
    assert.equal(
      index,
      `{
  "metadata": {
    "total_parameters": 39,
    "total_size": 150
  },
  "weight_map": {
    "a": "model-00001-of-00003.safetensors",
    "b": "model-00001-of-00003.safetensors",
    "big": "model-00002-of-00003.safetensors",
    "c": "model-00003-of-00003.safetensors",
    "d": "model-00003-of-00003.safetensors",
    "e": "model-00003-of-00003.safetensors"
  }
}
`,
    );
    assert.deepEqual(readSafetensors(path.join(dir, "model-00003-of-00003.safetensors")).metadata, { format: "pt" });
    const back = readShardedSafetensors(dir);
    assert.equal(back.tensors.size, 6);
    assert.deepEqual(back.indexMetadata, { total_parameters: 39, total_size: 150 });
    for (const [n, t] of tensors) assert.deepEqual(Array.from(back.tensors.get(n)?.data ?? []), Array.from(t.data), n);
    const some = readShardedSafetensors(dir, { names: ["big", "e"] });
    assert.deepEqual([...some.tensors.keys()].sort(), ["big", "e"]);
    assert.throws(() => readShardedSafetensors(dir, { names: ["zz"] }), /tensor "zz" is not in weight_map/);

    // Saving again unsharded removes the shards and the index.
    const single = writeShardedSafetensors(dir, tensors);
    assert.deepEqual(single.files, ["model.safetensors"]);
    assert.deepEqual(fs.readdirSync(dir).sort(), ["model.safetensors"]);
    assert.equal(readShardedSafetensors(dir).tensors.size, 6);
  });

  it("reads the fixture directory through model.safetensors and reports a missing shard", () => {
    assert.equal(readShardedSafetensors(path.join(HF, "qwen2-tiny")).tensors.size, 26);
    const dir = tmpDir();
    writeShardedSafetensors(dir, { a: mk(4, 1), b: mk(4, 2) }, { maxShardBytes: 16 });
    fs.rmSync(path.join(dir, "model-00002-of-00002.safetensors"));
    assert.throws(() => readShardedSafetensors(dir), /shard model-00002-of-00002\.safetensors \(holding "b"\) does not exist/);
    assert.throws(() => readShardedSafetensors(tmpDir()), /neither model\.safetensors\.index\.json nor model\.safetensors exists/);
  });

  it("round-trips the llama fixture through shards", () => {
    const { tensors } = readSafetensors(path.join(HF, "llama-tiny/model.safetensors"));
    const dir = tmpDir();
    const res = writeShardedSafetensors(dir, tensors, { maxShardBytes: 200_000 });
    assert.equal(res.files.length, 4); // 3 shards + index (541,952 bytes in all)
    const back = readShardedSafetensors(dir);
    assert.equal(back.tensors.size, tensors.size);
    for (const [n, t] of tensors) assert.deepEqual(back.tensors.get(n)?.data, t.data, n);
  });
});
