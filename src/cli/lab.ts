// `nexus lab`: runs the end-to-end lab (SFT → judge → labels → reward models → alignment → search) and prints the
// claims table; an interrupted lab resumes from its last finished stage when run again with the same name.
// --judge-url asks an OpenAI-compatible server (API key: OPENAI_API_KEY) for the judge's step labels.

import type { Command } from "commander";
import { z } from "zod";
import { claimsText, LAB_STAGES, runLab, runLabSeeds } from "../lab/lab.js";
import { LAB_PROFILES, type LabProfileName } from "../lab/profiles.js";
import { cliOut } from "./output.js";
import { registerSchemaCommand } from "./schema_command.js";
import { SHARED } from "./shared_options.js";

const PROFILES = Object.keys(LAB_PROFILES) as [LabProfileName, ...LabProfileName[]];
const STAGES = LAB_STAGES.map((s) => s.name) as [string, ...string[]];

export const LAB_SCHEMA = z
  .object({
    profile: z.enum(PROFILES).default("quick").describe("quick (about 10 minutes on 2 cores), full (about an hour) or tiny (tests)"),
    // The lab's seed names a fixed experiment (runs/<profile>-seed0) that the README and the lab's evidence cite.
    seed: SHARED.seed.default(0).describe("seed of every random choice of the lab"),
    seeds: z
      .string()
      .regex(/^\d+(,\d+)*$/, "a comma-separated list of seeds, e.g. 0,1,2")
      .nullable()
      .default(null)
      .describe("run the lab at each seed (its own folder) and decide the claims over all of them, e.g. 0,1,2"),
    name: z.string().nullable().default(null).describe("run folder under --runs-dir (default <profile>-seed<seed>)"),
    runsDir: z.string().default("runs").describe("where run folders go"),
    until: z.enum(STAGES).nullable().default(null).describe("stop after this stage"),
    judgeUrl: z
      .string()
      .regex(/^https?:\/\/\S+$/, "an http(s) base URL, e.g. http://localhost:8000/v1")
      .nullable()
      .default(null)
      .describe("OpenAI-compatible server (e.g. http://localhost:8000/v1) that judges the step labels instead of the lab's local judge"),
    judgeModel: z.string().default("default").describe("model name to ask the --judge-url server for (API key: OPENAI_API_KEY)"),
    quiet: z.boolean().default(false).describe("no progress lines"),
  })
  .strict();

export function registerLab(program: Command): void {
  registerSchemaCommand(program, {
    name: "lab",
    description: "train a small model through the whole pipeline on a synthetic task and report the field's claims",
    schema: LAB_SCHEMA,
    action: async (o) => {
      const judge = o.judgeUrl === null ? undefined : { url: o.judgeUrl, model: o.judgeModel, apiKey: process.env.OPENAI_API_KEY };
      if (o.seeds !== null) {
        const m = await runLabSeeds({
          profile: o.profile,
          seeds: o.seeds.split(",").map(Number),
          name: o.name ?? undefined,
          runsDir: o.runsDir,
          until: o.until ?? undefined,
          quiet: o.quiet,
          judge,
        });
        cliOut(`${claimsText(m)}\n\nreport: ${m.dir}/report.html\nresults: ${m.dir}/results.json (${m.wallSeconds} s)\n`);
        return;
      }
      const r = await runLab({
        profile: o.profile,
        seed: o.seed,
        name: o.name ?? undefined,
        runsDir: o.runsDir,
        until: o.until ?? undefined,
        quiet: o.quiet,
        judge,
      });
      cliOut(`${claimsText(r)}\n\nreport: ${r.dir}/report.html\nresults: ${r.dir}/results.json (${r.wallSeconds} s)\n`);
    },
  });
}
