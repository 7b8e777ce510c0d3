// Small self-contained randomness for the synthetic tasks: mulberry32 (32-bit state, fast, good enough for
// data generation) and a 32-bit string hash (FNV-1a + murmur3 finaliser) used to assign problems to splits.
// Not for the training loop's RNG (that is engine state saved in checkpoints) and not cryptographic.

/** Deterministic uniform floats in [0, 1) from a 32-bit seed. */
export class Mulberry32 {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** Next float in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  /** Uniform element of a non-empty array. */
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  /** Internal state, for saving and resuming a stream. */
  get state(): number {
    return this.s;
  }
}

/** 32-bit hash of a string: FNV-1a over UTF-16 code units, then the murmur3 finaliser for avalanche. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Mix a base seed with a small integer stream id into a new 32-bit seed. */
export function deriveSeed(seed: number, stream: number | string): number {
  return hash32(`${seed >>> 0}:${stream}`);
}
