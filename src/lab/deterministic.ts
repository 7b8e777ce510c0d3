// The part of a lab's results.json that is a function of (profile, seed) alone: everything but the measured costs
// (wall time, RSS, live tensor bytes) and the claims decided from them. Two runs of one profile and seed, however
// interrupted and resumed, must agree on it (the lab's tests and the reliability suite's kill_resume compare it).

/** Keys whose values are measurements of this machine and this run. */
export const MEASURED_KEYS: ReadonlySet<string> = new Set([
  "efficiency",
  "wallSeconds",
  "timings",
  "secondsPerStep",
  "peakRssBytes",
  "peakBytes",
  "baselineBytes",
]);

/** Claims whose verdict reads measured costs. */
export const MEASURED_CLAIMS: ReadonlySet<string> = new Set(["grpo_less_memory_than_ppo"]);

/** results.json text -> its deterministic part (measured keys dropped at every depth, measured claims dropped). */
export function deterministicResults(text: string): Record<string, unknown> {
  const r = JSON.parse(text, (k, v) => (MEASURED_KEYS.has(k) ? undefined : v)) as Record<string, unknown>;
  if (Array.isArray(r.claims)) r.claims = r.claims.filter((c: { id?: unknown }) => !MEASURED_CLAIMS.has(String(c.id)));
  return r;
}
