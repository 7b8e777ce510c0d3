// The claims of the field that the lab tests, each computed from this run's stage metrics. A claim whose
// inputs were not measured (a stage failed or was skipped) reports `holds: null` and "not measured",
// never a verdict. Table of claim id → check.

import type { Claim } from "../report/format.js";
import type { StageMetrics } from "./runner.js";

type Get = (path: string) => number | null;

function getter(stages: Record<string, StageMetrics>): Get {
  return (path) => {
    let cur: unknown = stages;
    for (const k of path.split(".")) {
      if (cur === null || typeof cur !== "object") return null;
      cur = (cur as Record<string, unknown>)[k];
    }
    return typeof cur === "number" && Number.isFinite(cur) ? cur : null;
  };
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

interface ClaimDef {
  id: string;
  statement: string;
  check(get: Get, stages: Record<string, StageMetrics>): { measured: string; holds: boolean } | null;
}

function beats(a: string, b: string, what: string, fmt = pct): ClaimDef["check"] {
  return (get) => {
    const x = get(a);
    const y = get(b);
    if (x === null || y === null) return null;
    return { measured: `${fmt(y)} → ${fmt(x)} ${what}`, holds: x > y };
  };
}

const lastBudget = (stages: Record<string, StageMetrics>): string | null => {
  const b = (stages.search?.budgets as number[] | undefined) ?? [];
  return b.length === 0 ? null : String(b[b.length - 1]);
};

export const CLAIMS: readonly ClaimDef[] = [
  {
    id: "grpo_beats_sft",
    statement: "RL with a verifiable reward (GRPO) improves held-out accuracy over SFT",
    check: beats("align.grpo.pass1", "sft.pass1", "held-out pass@1 (SFT → GRPO)"),
  },
  {
    id: "dpo_beats_sft",
    statement: "DPO on correct-vs-incorrect pairs improves held-out accuracy over SFT",
    check: beats("align.dpo.pass1", "sft.pass1", "held-out pass@1 (SFT → DPO)"),
  },
  {
    id: "gold_prm_beats_mc_prm",
    statement: "A PRM trained on exact step labels finds first errors better than one trained on Monte Carlo labels",
    check: beats("reward_models.prms.gold.f1", "reward_models.prms.mcHard.f1", "ProcessBench F1 (MC PRM → gold PRM)", (x) => x.toFixed(3)),
  },
  {
    id: "mc_labels_noisier_than_exact",
    statement: "Monte Carlo step labels are noisier than exact labels",
    check: (get) => {
      const f1 = get("labels.labelQuality.mcHard.f1");
      return f1 === null ? null : { measured: `MC labels' wrong-step F1 against the exact labels: ${f1.toFixed(3)}`, holds: f1 < 1 };
    },
  },
  {
    id: "consensus_cleaner_than_mc",
    statement: "Keeping only samples where MC and judge agree gives cleaner step labels than MC alone",
    check: beats("labels.labelQuality.consensus.f1", "labels.labelQuality.mcHard.f1", "wrong-step F1 (MC → consensus)", (x) =>
      x.toFixed(3),
    ),
  },
  {
    id: "prm_search_beats_majority",
    statement: "PRM-guided search beats majority voting at the same sample budget",
    check: (get, stages) => {
      const n = lastBudget(stages);
      if (n === null) return null;
      const prmKeys = ["prm_bon_min", "prm_bon_product", "prm_bon_last", "prm_weighted_vote", "prm_beam", "mcts"];
      const vals = prmKeys
        .map((k) => [k, get(`search.accuracy.${k}.${n}`)] as const)
        .filter((kv): kv is [string, number] => kv[1] !== null);
      const maj = get(`search.accuracy.majority.${n}`);
      if (vals.length === 0 || maj === null) return null;
      const [bestKey, best] = vals.reduce((a, b) => (b[1] > a[1] ? b : a));
      return { measured: `N=${n}: majority ${pct(maj)} vs ${bestKey} ${pct(best)}`, holds: best > maj };
    },
  },
  {
    id: "prm_beats_orm_best_of_n",
    statement: "PRM best-of-N beats ORM best-of-N",
    check: (get, stages) => {
      const n = lastBudget(stages);
      if (n === null) return null;
      const prm = Math.max(...["min", "product", "last"].map((a) => get(`search.accuracy.prm_bon_${a}.${n}`) ?? Number.NEGATIVE_INFINITY));
      const orm = get(`search.accuracy.orm_bon.${n}`);
      if (orm === null || !Number.isFinite(prm)) return null;
      return { measured: `N=${n}: ORM ${pct(orm)} vs PRM ${pct(prm)}`, holds: prm > orm };
    },
  },
  {
    id: "grpo_less_memory_than_ppo",
    statement: "GRPO needs less memory than PPO (no value model)",
    check: (get) => {
      const g = get("align.grpo.stateBytes");
      const p = get("align.ppo.stateBytes");
      if (g === null || p === null) return null;
      const mb = (x: number) => `${(x / 2 ** 20).toFixed(2)} MB`;
      return { measured: `model state: GRPO ${mb(g)} vs PPO ${mb(p)}`, holds: g < p };
    },
  },
  {
    id: "titans_surprise_detects_wrong_steps",
    statement: "Titans memory surprise flags wrong steps better than chance (AUROC > 0.5), next to the gold PRM",
    check: (get) => {
      const s = get("search.wrongStepAuroc.titansSurprise");
      const p = get("search.wrongStepAuroc.prmGold");
      if (s === null) return null;
      return { measured: `wrong-step AUROC: surprise ${s.toFixed(3)}${p === null ? "" : `, gold PRM ${p.toFixed(3)}`}`, holds: s > 0.5 };
    },
  },
];

export function evaluateClaims(stages: Record<string, StageMetrics>): Claim[] {
  const get = getter(stages);
  return CLAIMS.map((c) => {
    const r = c.check(get, stages);
    return { id: c.id, statement: c.statement, measured: r?.measured ?? null, holds: r?.holds ?? null };
  });
}
