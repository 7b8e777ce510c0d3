// Metrics as JSONL (one object per logged step, flushed as written) plus a plain progress line on stderr
// with rate and ETA — no terminal control codes, so logs read the same in a pipe or a CI log.

import { appendFileSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";

export type Metrics = Record<string, number | string | null>;

export class MetricsLogger {
  private readonly start = Date.now();
  private lastPrint = 0;

  constructor(
    private readonly path: string | null,
    private readonly opts: { total?: number; label?: string; quiet?: boolean; printEveryMs?: number } = {},
  ) {
    if (path !== null) mkdirSync(dirname(path), { recursive: true });
  }

  /** Append one record and maybe print a progress line. `step` counts from 1. */
  log(step: number, metrics: Metrics, force = false): void {
    const record = { step, ...metrics, elapsed_s: round((Date.now() - this.start) / 1000) };
    if (this.path !== null) {
      try {
        appendFileSync(this.path, `${JSON.stringify(record)}\n`);
      } catch (e) {
        throw new Error(`[${this.opts.label ?? "train"}] could not append step ${step} to ${this.path}: ${(e as Error).message}`);
      }
    }
    const now = Date.now();
    if (this.opts.quiet || (!force && now - this.lastPrint < (this.opts.printEveryMs ?? 2000))) return;
    this.lastPrint = now;
    process.stderr.write(`${this.progressLine(step, metrics)}\n`);
  }

  progressLine(step: number, metrics: Metrics): string {
    const elapsed = (Date.now() - this.start) / 1000;
    const rate = step / Math.max(elapsed, 1e-9);
    const total = this.opts.total;
    const eta = total ? ` eta ${formatDuration((total - step) / Math.max(rate, 1e-9))}` : "";
    const shown = progressMetrics(metrics)
      .map(([k, v]) => `${k} ${formatNumber(v)}`)
      .join(" ");
    const of = total ? `/${total}` : "";
    return `[${this.opts.label ?? "train"}] step ${step}${of} ${shown} | ${rate.toFixed(2)} it/s${eta}`;
  }
}

/**
 * What a trainer's progress line headlines first, in this order, whichever of them it logs (an `eval_` prefix is
 * ignored for the order): the loss, the reward, preference accuracy and margin, classifier accuracy, KL.
 */
export const PROGRESS_HEADLINE: readonly string[] = Object.freeze([
  "loss",
  "reward",
  "reward_std",
  "rewards/accuracies",
  "rewards/margins",
  "accuracy",
  "kl",
  "objective/kl",
  "entropy",
]);
/** Shown last when present; `epoch` is left out (the step and total say it). */
const PROGRESS_LAST: readonly string[] = ["grad_norm", "learning_rate"];

/** The numeric metrics of a progress line: up to 5 headline-first metrics, then grad_norm and learning_rate. */
export function progressMetrics(metrics: Metrics): [string, number][] {
  const rank = (k: string) => {
    const i = PROGRESS_HEADLINE.indexOf(k.replace(/^eval_/, ""));
    return i < 0 ? PROGRESS_HEADLINE.length : i;
  };
  const numeric = Object.entries(metrics).filter((e): e is [string, number] => typeof e[1] === "number" && e[0] !== "epoch");
  const main = numeric.filter(([k]) => !PROGRESS_LAST.includes(k)).sort((a, b) => rank(a[0]) - rank(b[0])); // stable sort
  const last = PROGRESS_LAST.flatMap((k) => numeric.filter(([n]) => n === k));
  return [...main.slice(0, 5), ...last];
}

/**
 * Keep the records of steps <= `lastStep` (a resumed run logs the later ones again) and drop a line cut short by
 * a kill; rewritten atomically. Returns the number of records dropped.
 */
export function truncateMetrics(path: string, lastStep: number): number {
  if (!existsSync(path)) return 0;
  const lines = readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "");
  const kept = lines.filter((l) => {
    try {
      const step = (JSON.parse(l) as { step?: unknown }).step;
      return typeof step === "number" && step <= lastStep;
    } catch {
      return false;
    }
  });
  if (kept.length === lines.length) return 0;
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w");
  try {
    writeSync(fd, kept.map((l) => `${l}\n`).join(""));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return lines.length - kept.length;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

export function formatNumber(x: number): string {
  if (x === 0 || !Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  return a >= 1e4 || a < 1e-3 ? x.toExponential(3) : x.toPrecision(4);
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
