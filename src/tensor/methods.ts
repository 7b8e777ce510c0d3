// Attaches the ops to Tensor as methods (x.add(y), loss.backward(), ...). The functions stay the API's
// primary form; methods are a thin alias so both styles work.

import { type BackwardOptions, backward } from "./autograd.js";
import * as ew from "./ops/elementwise.js";
import * as fused from "./ops/fused.js";
import * as idx from "./ops/indexing.js";
import * as la from "./ops/linalg.js";
import * as red from "./ops/reduce.js";
import * as sh from "./ops/shape.js";
import { type DType, Tensor } from "./tensor.js";

type S = ew.Scalarish;

declare module "./tensor.js" {
  interface Tensor {
    add(b: S): Tensor;
    sub(b: S): Tensor;
    mul(b: S): Tensor;
    div(b: S): Tensor;
    pow(b: S): Tensor;
    neg(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    log1p(): Tensor;
    expm1(): Tensor;
    sqrt(): Tensor;
    rsqrt(): Tensor;
    abs(): Tensor;
    sigmoid(): Tensor;
    tanh(): Tensor;
    relu(): Tensor;
    silu(): Tensor;
    softplus(): Tensor;
    logSigmoid(): Tensor;
    square(): Tensor;
    minimum(b: S): Tensor;
    maximum(b: S): Tensor;
    clamp(min: number | null, max: number | null): Tensor;
    sum(axes?: red.Axes, keepdim?: boolean): Tensor;
    mean(axes?: red.Axes, keepdim?: boolean): Tensor;
    max(axis?: number, keepdim?: boolean): Tensor;
    logsumexp(axis?: number, keepdim?: boolean): Tensor;
    reshape(shape: readonly number[]): Tensor;
    transpose(dim0?: number, dim1?: number): Tensor;
    permute(dims: readonly number[]): Tensor;
    slice(axis: number, start: number, end?: number): Tensor;
    unsqueeze(axis: number): Tensor;
    squeeze(axis: number): Tensor;
    expand(shape: readonly number[]): Tensor;
    matmul(b: Tensor, opts?: la.MatmulOptions): Tensor;
    softmax(axis?: number): Tensor;
    logSoftmax(axis?: number): Tensor;
    gather(axis: number, idx: Tensor): Tensor;
    detach(): Tensor;
    clone(): Tensor;
    cast(dtype: DType): Tensor;
    float(): Tensor;
    backward(grad?: Tensor, opts?: BackwardOptions): void;
  }
}

const P = Tensor.prototype;
P.add = function (b) {
  return ew.add(this, b);
};
P.sub = function (b) {
  return ew.sub(this, b);
};
P.mul = function (b) {
  return ew.mul(this, b);
};
P.div = function (b) {
  return ew.div(this, b);
};
P.pow = function (b) {
  return ew.pow(this, b);
};
P.neg = function () {
  return ew.neg(this);
};
P.exp = function () {
  return ew.exp(this);
};
P.log = function () {
  return ew.log(this);
};
P.log1p = function () {
  return ew.log1p(this);
};
P.expm1 = function () {
  return ew.expm1(this);
};
P.sqrt = function () {
  return ew.sqrt(this);
};
P.rsqrt = function () {
  return ew.rsqrt(this);
};
P.abs = function () {
  return ew.abs(this);
};
P.sigmoid = function () {
  return ew.sigmoid(this);
};
P.tanh = function () {
  return ew.tanh(this);
};
P.relu = function () {
  return ew.relu(this);
};
P.silu = function () {
  return ew.silu(this);
};
P.softplus = function () {
  return ew.softplus(this);
};
P.logSigmoid = function () {
  return ew.logSigmoid(this);
};
P.square = function () {
  return ew.square(this);
};
P.minimum = function (b) {
  return ew.minimum(this, b);
};
P.maximum = function (b) {
  return ew.maximum(this, b);
};
P.clamp = function (lo, hi) {
  return ew.clamp(this, lo, hi);
};
P.sum = function (axes, keepdim) {
  return red.sum(this, axes, keepdim);
};
P.mean = function (axes, keepdim) {
  return red.mean(this, axes, keepdim);
};
P.max = function (axis, keepdim) {
  return red.max(this, axis, keepdim);
};
P.logsumexp = function (axis, keepdim) {
  return red.logsumexp(this, axis, keepdim);
};
P.reshape = function (shape) {
  return sh.reshape(this, shape);
};
P.transpose = function (d0, d1) {
  return sh.transpose(this, d0, d1);
};
P.permute = function (dims) {
  return sh.permute(this, dims);
};
P.slice = function (axis, start, end) {
  return sh.slice(this, axis, start, end);
};
P.unsqueeze = function (axis) {
  return sh.unsqueeze(this, axis);
};
P.squeeze = function (axis) {
  return sh.squeeze(this, axis);
};
P.expand = function (shape) {
  return sh.expand(this, shape);
};
P.matmul = function (b, opts) {
  return la.matmul(this, b, opts);
};
P.softmax = function (axis) {
  return fused.softmax(this, axis);
};
P.logSoftmax = function (axis) {
  return fused.logSoftmax(this, axis);
};
P.gather = function (axis, i) {
  return idx.gather(this, axis, i);
};
P.detach = function () {
  return sh.detach(this);
};
P.clone = function () {
  return sh.clone(this);
};
P.cast = function (dtype) {
  return ew.cast(this, dtype);
};
P.float = function () {
  return ew.cast(this, "f32");
};
P.backward = function (grad, opts) {
  backward(this, grad, opts);
};
