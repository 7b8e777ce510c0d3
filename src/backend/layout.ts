// Stride arithmetic the op layer and the device bindings share: coalescing dims so kernels loop over fewer of them.

/** Drop size-1 dims and merge neighbours contiguous in every strided operand (the other side is contiguous over shape). */
export function coalesceDims(shape: readonly number[], strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const s: number[] = [];
  const st: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = s.length - 1;
    if (last >= 0 && strides.every((x, k) => st[k][last] === x[d] * shape[d])) {
      s[last] *= shape[d];
      strides.forEach((x, k) => {
        st[k][last] = x[d];
      });
    } else {
      s.push(shape[d]);
      strides.forEach((x, k) => {
        st[k].push(x[d]);
      });
    }
  }
  return { shape: s, strides: st };
}
