// Conversions between float32 and the 16-bit float formats stored in checkpoints (bfloat16, IEEE half),
// written by hand because Node 20 has no Float16Array. Narrowing rounds to nearest, ties to even, like
// PyTorch's c10::BFloat16 / c10::Half casts (NaN becomes the canonical quiet NaN 0x7FC0 / sign|0x7E00).
// This file only moves bits between typed arrays; it knows nothing about files or tensors.

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

let f16Table: Uint32Array | null = null;

/** float32 bit pattern of one IEEE half (exact: every half is a float32). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0) {
    if (mant === 0) return sign >>> 0;
    // Subnormal half: shift the mantissa up until its leading 1 reaches the implicit bit.
    let e = 113; // 127 - 15 + 1
    while ((mant & 0x400) === 0) {
      mant <<= 1;
      e--;
    }
    return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
  }
  if (exp === 31) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
}

function table(): Uint32Array {
  if (f16Table === null) {
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32Bits(h);
  }
  return f16Table;
}

/** IEEE half bits of a float32 bit pattern, rounded to nearest even. */
export function f32BitsToF16Bits(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const abs = u & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00; // NaN
  if (abs >= 0x47800000) return sign | 0x7c00; // >= 65536 (and inf): overflow
  if (abs < 0x38800000) {
    // Below the smallest normal half (2^-14): a subnormal, in units of 2^-24. The scaling is exact.
    U32[0] = abs;
    const m = F32[0] * 16777216;
    let r = Math.floor(m);
    const frac = m - r;
    if (frac > 0.5 || (frac === 0.5 && (r & 1) === 1)) r++;
    return sign | r; // r may reach 0x400, which encodes the smallest normal: still correct
  }
  const exp = (abs >>> 23) - 112; // rebias 127 -> 15
  const mant = abs & 0x7fffff;
  let h = (exp << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry into the exponent is correct
  return sign | h;
}

/** bfloat16 bits of a float32 bit pattern, rounded to nearest even. */
export function f32BitsToBf16Bits(u: number): number {
  if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16ToF32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  // Int32 view: `<< 16` yields an int32, which stays a small integer (no heap numbers) in the loop.
  const o = new Int32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) o[i] = src[i] << 16;
  return out;
}

export function f16ToF32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  const t = table();
  const o = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) o[i] = t[src[i]];
  return out;
}

export function f32ToBf16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  const s = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToBf16Bits(s[i]);
  return out;
}

export function f32ToF16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  const s = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16Bits(s[i]);
  return out;
}

/** The float32 value nearest to x rounded through bfloat16 (convenience for tests and callers). */
export function roundToBf16(x: number): number {
  F32[0] = x;
  U32[0] = f32BitsToBf16Bits(U32[0]) << 16;
  return F32[0];
}

/** The float32 value of x rounded through IEEE half. */
export function roundToF16(x: number): number {
  F32[0] = x;
  U32[0] = f16BitsToF32Bits(f32BitsToF16Bits(U32[0]));
  return F32[0];
}
