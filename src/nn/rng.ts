// A seeded pseudo-random generator (xoshiro128**, seeded through splitmix32) for parameter init, dropout,
// sampling and data shuffling. Its whole state is four uint32 words, so a checkpoint restores it exactly
// with getState()/setState(). Not cryptographic, and not bit-compatible with torch.Generator.

export class RngError extends Error {
  override name = "RngError";
}

export type RngState = [number, number, number, number];

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;

export class Rng {
  private s: Uint32Array = new Uint32Array(4);

  /** seed: any integer (only its low 53 bits matter; high and low words are mixed separately). */
  constructor(seed = 0) {
    if (!Number.isSafeInteger(seed)) throw new RngError(`[rng] seed must be a safe integer, got ${seed}`);
    const hi = Math.floor(seed / 2 ** 32);
    const sm = splitmix32((seed >>> 0) ^ Math.imul(hi, 0x27d4eb2f));
    for (let i = 0; i < 4; i++) this.s[i] = sm();
    if (this.s.every((w) => w === 0)) this.s[0] = 1; // the all-zero state is a fixed point
  }

  /** The next uint32. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) throw new RngError(`[rng] int(n) needs a positive integer, got ${n}`);
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box-Muller; one draw per call, no cached spare, so the state stays four words). */
  normal(mean = 0, std = 1): number {
    let u = this.next();
    while (u === 0) u = this.next();
    const v = this.next();
    return mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Fill an array with normal(mean, std) draws. */
  fillNormal(out: Float32Array | Float64Array, mean = 0, std = 1): void {
    for (let i = 0; i < out.length; i++) out[i] = this.normal(mean, std);
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [xs[i], xs[j]] = [xs[j], xs[i]];
    }
    return xs;
  }

  getState(): RngState {
    return [this.s[0], this.s[1], this.s[2], this.s[3]];
  }

  setState(state: readonly number[]): void {
    if (state.length !== 4 || !state.every((w) => Number.isInteger(w) && w >= 0 && w < 2 ** 32) || state.every((w) => w === 0)) {
      throw new RngError(`[rng] state must be 4 uint32 words, not all zero; got ${JSON.stringify(state)}`);
    }
    this.s.set(state);
  }

  /** An independent generator derived from this one's next draws (e.g. one per data worker). */
  fork(): Rng {
    const r = new Rng(0);
    r.setState([this.nextUint32(), this.nextUint32(), this.nextUint32(), (this.nextUint32() | 1) >>> 0]);
    return r;
  }
}
