// The lab's HTML report: claims first, then one section per stage with its tables and inline SVG charts,
// built only from results.json's content (so a report can be re-rendered from a finished run).

import type { Claim, Table } from "../report/format.js";
import type { Report, Section } from "../report/html.js";
import { barChart, lineChart } from "../report/svg.js";
import type { AspectRanking } from "./ranking.js";
import type { StageMetrics, StageTiming } from "./runner.js";

export interface LabResults {
  profile: string;
  seed: number;
  wallSeconds: number;
  stages: Record<string, StageMetrics>;
  timings: Record<string, StageTiming>;
  claims: Claim[];
  /** Our ranking of the methods next to the seed's, per aspect. */
  ranking?: Record<string, AspectRanking>;
}

type Obj = Record<string, unknown>;
const obj = (x: unknown): Obj => (x !== null && typeof x === "object" ? (x as Obj) : {});
const num = (x: unknown): number | null => (typeof x === "number" && Number.isFinite(x) ? x : null);
const pct = (x: unknown) => (num(x) === null ? null : Math.round(1000 * (x as number)) / 10);

function sftSection(s: Obj): Section {
  const curve = (s.lossCurve as [number, number][] | undefined) ?? [];
  return {
    heading: "1. SFT from scratch",
    paragraphs: [
      `A ${s.parameters} parameter Llama-style model trained on ${s.trainRows} solutions, ${pct(s.flawedFraction)} % of them with one planted error.`,
    ],
    tables: [
      {
        caption: "Held-out accuracy of the SFT policy (%): pass@1 and maj@k over k samples at the evaluation temperature",
        columns: ["pass@1", "maj@k", "greedy", "format ok"],
        rows: [[pct(s.pass1), pct(s.majK), pct(s.greedy), pct(s.formatRate)]],
      },
    ],
    charts: [lineChart({ title: "SFT training loss", xLabel: "step", yLabel: "loss", series: [{ name: "loss", points: curve }] })],
  };
}

function judgeWho(s: Obj): string {
  return s.source === "remote" ? `the judge at ${s.url} (model ${s.model})` : "the lab's local judge";
}

function judgeSection(s: Obj): Section {
  const v = obj(s.validation);
  const curve = (s.lossCurve as [number, number][] | undefined) ?? [];
  return {
    heading: "2. The LLM judge",
    paragraphs: [
      s.source === "remote"
        ? `Step labels are asked of ${judgeWho(s)}, an OpenAI-compatible server.`
        : `A ${s.parameters} parameter step-checking judge trained by SFT on ${s.trainRows} check transcripts of gold and corrupted solutions; it names the first wrong step.`,
      `On ${v.solutions} gold or corrupted solutions to validation problems it names the right first error ${pct(v.firstErrorAccuracy)} % of the time (${v.unparseable} replies unparseable, counted wrong).`,
    ],
    tables: [
      {
        caption: "Judge first-error accuracy on validation solutions (%)",
        columns: ["all", "gold solutions", "corrupted solutions"],
        rows: [[pct(v.firstErrorAccuracy), pct(v.cleanAccuracy), pct(v.flawedAccuracy)]],
      },
    ],
    charts:
      curve.length === 0
        ? []
        : [lineChart({ title: "Judge training loss", xLabel: "step", yLabel: "loss", series: [{ name: "loss", points: curve }] })],
  };
}

function labelsSection(s: Obj): Section {
  const q = obj(s.labelQuality);
  const j = obj(s.judge);
  const c = obj(s.consensus);
  const row = (name: string, key: string) => {
    const r = obj(q[key]);
    return [name, num(r.precision), num(r.recall), num(r.f1), num(r.accuracy)];
  };
  return {
    heading: "3. Step labels",
    paragraphs: [
      `${s.samples} sampled solutions (${pct(s.correctFraction)} % correct); ${s.mcRollouts} Monte Carlo rollouts; judged by ${judgeWho(j)}: ${j.parsed} replies parsed, ${j.unparseable} unparseable, first error right on ${pct(j.firstErrorAccuracy)} %; it calls ${pct(j.noErrorFraction)} % of the samples free of errors (${pct(s.correctFraction)} % are correct).`,
      `Consensus (MC and judge name the same first error) kept ${s.consensusKept} of ${s.samples} (${pct(s.consensusKeptFraction)} %; ${c.disagreed} disagreed, ${c.judgeMissing} without a judge verdict); MC's first error is wrong on ${pct(c.mcErrorAll)} % of all samples and ${pct(c.mcErrorKept)} % of the kept ones.`,
      "Quality of each labeller against the exact step labels (positive class: wrong step); the judge's on the samples whose reply parsed.",
    ],
    tables: [
      {
        caption: "Label quality vs gold",
        columns: ["labeller", "precision", "recall", "F1", "step accuracy"],
        rows: [row("Monte Carlo (hard)", "mcHard"), row("judge", "judge"), row("consensus (MC = judge)", "consensus")],
        digits: [undefined, 3, 3, 3, 3, 3],
      },
    ],
  };
}

function rmSection(s: Obj): Section {
  const prms = obj(s.prms);
  const names = Object.keys(prms);
  const orm = obj(s.orm);
  return {
    heading: "4. Reward models",
    paragraphs: [
      "One PRM per label source, measured ProcessBench-style on held-out solutions (threshold fitted on validation problems).",
      `ORM: ${orm.trainPairs ?? 0} training pairs, outcome AUROC ${num(orm.outcomeAuroc)?.toFixed(3) ?? "n/a"}.`,
    ],
    tables: [
      {
        caption: "PRMs on held-out solutions",
        columns: ["label source", "train rows", "F1", "acc. erroneous", "acc. correct", "step AUROC"],
        rows: names.map((n) => {
          const r = obj(prms[n]);
          return [n, num(r.trainRows), num(r.f1), num(r.accErr), num(r.accCor), num(r.stepAuroc)];
        }),
        digits: [undefined, 3, 3, 3, 3, 3],
      },
    ],
    charts: [
      barChart({
        title: "ProcessBench F1 by label source",
        yLabel: "F1",
        groups: names.map((n) => ({ label: n, bars: [{ name: "F1", value: num(obj(prms[n]).f1) ?? 0 }] })),
      }),
    ],
  };
}

function alignSection(s: Obj, sft: Obj, timing: StageTiming | undefined): Section {
  const methods = Object.keys(s).filter((k) => k !== "memoryProbe");
  const probe = obj(s.memoryProbe);
  const probeMethods = obj(probe.methods);
  const batch = obj(probe.rolloutBatch);
  const mb = (x: unknown) => (num(x) === null ? null : Math.round(((x as number) / 2 ** 20) * 100) / 100);
  return {
    heading: "5. Alignment",
    paragraphs: [
      "pass@1 is the mean accuracy of k samples per held-out problem at the evaluation temperature (the unbiased pass@1 estimator); maj@k votes over the same samples; greedy decodes once.",
      "GSPO reuses each generation batch for two optimizer steps (numIterations 2), so it samples half of GRPO's rollouts for the same steps; with one pass per batch its sequence-level ratio would be 1 and its update GRPO's.",
    ],
    tables: [
      {
        caption: "Held-out accuracy (%), KL to the SFT policy, measured peak memory and wall time of each method",
        columns: ["method", "pass@1", "maj@k", "greedy", "KL to SFT", "peak tensor MB", "peak RSS MB", "seconds"],
        rows: [
          ["SFT", pct(sft.pass1), pct(sft.majK), pct(sft.greedy), 0, null, null, null],
          ...methods.map((m) => {
            const r = obj(s[m]);
            if (typeof r.skipped === "string") return [`${m} (skipped: ${r.skipped})`, null, null, null, null, null, null, null];
            const secs = num(r.wallSeconds) ?? timing?.parts?.[m] ?? null;
            return [m, pct(r.pass1), pct(r.majK), pct(r.greedy), num(r.klToSft), mb(r.peakBytes), mb(r.peakRssBytes), secs];
          }),
        ],
        digits: [undefined, 1, 1, 1, 3, 2, 0, 1],
      },
      {
        caption: `Memory probe: ${probe.steps ?? "?"} steps of each method at the same rollout batch (${batch.prompts ?? "?"} prompts x ${batch.completionsPerPrompt ?? "?"} completions), exact live tensor bytes (full collection at the engine's checkpoints) and sampled peak RSS`,
        columns: ["method", "peak tensor MB", "tensor MB before", "peak RSS MB", "seconds / step"],
        rows: Object.keys(probeMethods).map((m) => {
          const r = obj(probeMethods[m]);
          return [m, mb(r.peakBytes), mb(r.baselineBytes), mb(r.peakRssBytes), num(r.secondsPerStep)];
        }),
        digits: [undefined, 2, 2, 0, 2],
      },
    ],
    charts: [
      barChart({
        title: "Held-out accuracy by method",
        yLabel: "%",
        groups: [
          {
            label: "SFT",
            bars: [
              { name: "pass@1", value: pct(sft.pass1) ?? 0 },
              { name: "maj@k", value: pct(sft.majK) ?? 0 },
            ],
          },
        ].concat(
          methods.map((m) => ({
            label: m,
            bars: [
              { name: "pass@1", value: pct(obj(s[m]).pass1) ?? 0 },
              { name: "maj@k", value: pct(obj(s[m]).majK) ?? 0 },
            ],
          })),
        ),
      }),
      lineChart({
        title: "Training reward of the RL methods",
        xLabel: "step",
        yLabel: "mean reward",
        series: methods
          .filter((m) => obj(s[m]).curveMetric !== "rewards/margins")
          .map((m) => ({ name: m, points: (obj(s[m]).curve as [number, number][]) ?? [] })),
      }),
    ],
  };
}

function searchSection(s: Obj): Section {
  const acc = obj(s.accuracy);
  const budgets = (s.budgets as number[]) ?? [];
  const au = obj(s.wrongStepAuroc);
  const bud = obj(s.budget);
  const pre = obj(s.preRegistered);
  const vr = obj(s.verifierRanking);
  return {
    heading: "6. Search with verifiers",
    paragraphs: [
      `${s.problems} test problems; the SFT policy generates, the gold-label PRM and the ORM score. At each N every best-of-N and voting strategy chooses among the very same N samples (sampled once; their budget is that sample set); "random" takes the first of them. Beam search and MCTS sample their own steps, up to N = ${Math.max(...((s.treeBudgets as number[] | undefined) ?? [0]))}.`,
      `Pre-registered PRM strategy (the claims use it; the others are reported, not selected): ${pre.prm ?? "n/a"} (aggregation chosen by outcome AUROC on validation solutions).`,
    ],
    tables: [
      {
        caption: "Accuracy (%) by strategy and budget N",
        columns: ["strategy", ...budgets.map((n) => `N=${n}`)],
        rows: Object.keys(acc).map((k) => [k, ...budgets.map((n) => pct(obj(acc[k])[String(n)]))]),
      },
      {
        caption:
          "Budget per problem: sequences sampled (whole solutions for best-of-N and voting, single steps for beam and MCTS) / tokens generated",
        columns: ["strategy", ...budgets.map((n) => `N=${n}`)],
        rows: Object.keys(bud).map((k) => [
          k,
          ...budgets.map((n) => {
            const b = obj(obj(bud[k])[String(n)]);
            return num(b.completions) === null ? null : `${b.completions} / ${b.tokens}`;
          }),
        ]),
      },
      {
        caption: `Verifiers on the N=${vr.n ?? "?"} samples: AUROC of correct vs wrong solutions within a problem (what best-of-N needs) and across problems (mostly problem difficulty)`,
        columns: ["verifier", "AUROC within a problem", "AUROC across problems"],
        rows: Object.keys(obj(vr.withinProblemAuroc)).map((k) => [
          k,
          num(obj(vr.withinProblemAuroc)[k]),
          num(obj(vr.acrossProblemsAuroc)[k]),
        ]),
        digits: [undefined, 3, 3],
      },
      {
        caption: "Detecting wrong steps (AUROC against exact labels); within position = pairs-weighted AUROC inside each step position",
        columns: ["detector", "AUROC", "AUROC within position"],
        rows: [
          ["Titans surprise (gradient norm, trained projections)", num(au.titansSurprise), num(au.titansSurpriseWithinPosition)],
          ["position + line type only", null, num(au.positionBaselineWithinPosition)],
          ["PRM (gold labels)", num(au.prmGold), null],
        ],
        digits: [undefined, 3, 3],
      },
    ],
    charts: [
      lineChart({
        title: "Accuracy vs budget",
        xLabel: "N (log scale)",
        yLabel: "accuracy %",
        logX: true,
        series: Object.keys(acc).map((k) => ({
          name: k,
          // tree searches stop at a smaller budget: only measured points
          points: budgets
            .filter((n) => obj(acc[k])[String(n)] !== undefined)
            .map((n) => [n, pct(obj(acc[k])[String(n)]) ?? Number.NaN]) as [number, number][],
        })),
      }),
    ],
  };
}

/** The seed's method comparison against ours, one table per aspect. */
export function rankingSection(ranking: Record<string, AspectRanking> | undefined): Section {
  const tables: Table[] = Object.entries(ranking ?? {}).map(([aspect, r]) => ({
    caption: `${aspect}: ${r.metric}. Seed: ${r.seed}. Ours: ${r.ours.map((x) => `${x.method} (${x.value})`).join(", ") || "not measured"}`,
    columns: ["the seed says", "our difference", "verdict", "agrees"],
    rows: r.points.map((p) => [
      p.seed,
      p.difference,
      { value: p.verdict, class: p.verdict === "holds" ? "pass" : p.verdict === "contradicted" ? "fail" : "muted" },
      p.agrees === null ? "—" : p.agrees ? "yes" : "no",
    ]),
    digits: [undefined, 4],
  }));
  return {
    heading: "The seed's method comparison, point by point",
    paragraphs: [
      'Performance: paired bootstrap of held-out pass@1 (">" needs the 95% interval above 0, ">=" one not below 0). Efficiency: measured training wall seconds. Stability: spread of pass@1 across seeds (run with --seeds for it).',
    ],
    tables,
  };
}

function timingTable(timings: Record<string, StageTiming>): Table {
  return {
    caption: "Wall time and peak memory of each stage (not part of the deterministic results)",
    columns: ["stage", "seconds", "peak RSS MB"],
    rows: Object.entries(timings).map(([k, t]) => [k, t.seconds, t.peakRssMB]),
  };
}

export function buildLabReport(r: LabResults): Report {
  const st = r.stages;
  const sections: Section[] = [
    {
      heading: "Claims of the field, as measured by this run",
      claims: r.claims,
      paragraphs: ["Each claim is checked against this run's own numbers; a claim this run did not measure says so."],
    },
  ];
  sections.push(rankingSection(r.ranking));
  if (st.sft) sections.push(sftSection(obj(st.sft)));
  if (st.judge) sections.push(judgeSection(obj(st.judge)));
  if (st.labels) sections.push(labelsSection(obj(st.labels)));
  if (st.reward_models) sections.push(rmSection(obj(st.reward_models)));
  if (st.align) sections.push(alignSection(obj(st.align), obj(st.sft), r.timings.align));
  if (st.search) sections.push(searchSection(obj(st.search)));
  sections.push({
    heading: "Run",
    tables: [timingTable(r.timings)],
    paragraphs: [`profile ${r.profile}, seed ${r.seed}, ${r.wallSeconds} s in all.`],
  });
  return { title: "Nexus lab report", subtitle: `Synthetic arithmetic chains, profile ${r.profile}, seed ${r.seed}`, sections };
}

/** The report of a multi-seed lab: claims over all seeds and the ranking; each seed's own report has the stages. */
export function buildMultiSeedReport(r: {
  profile: string;
  seeds: number[];
  wallSeconds: number;
  runs: Record<string, string>;
  claims: Claim[];
  ranking?: Record<string, AspectRanking>;
}): Report {
  return {
    title: "Nexus lab report (several seeds)",
    subtitle: `Synthetic arithmetic chains, profile ${r.profile}, seeds ${r.seeds.join(", ")}`,
    sections: [
      {
        heading: "Claims of the field, over all seeds",
        claims: r.claims,
        paragraphs: ["Intervals come from a two-stage paired bootstrap: seeds, then problems (or samples) within each seed."],
      },
      rankingSection(r.ranking),
      {
        heading: "Runs",
        paragraphs: [`${r.wallSeconds} s in all.`],
        tables: [{ caption: "Each seed's run folder", columns: ["seed", "folder"], rows: Object.entries(r.runs).map(([k, v]) => [k, v]) }],
      },
    ],
  };
}
