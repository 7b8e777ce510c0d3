// `nexus lab`: runs the end-to-end lab (SFT → labels → reward models → alignment → search) and prints the
// claims table; an interrupted lab resumes from its last finished stage when run again with the same name.

import type { Command } from "commander";
import { claimsText, LAB_STAGES, runLab } from "../lab/lab.js";
import type { LabProfileName } from "../lab/profiles.js";

export function registerLab(program: Command): void {
  program
    .command("lab")
    .description("train a small model through the whole pipeline on a synthetic task and report the field's claims")
    .option("--profile <name>", "quick (about 10 minutes on 2 cores) or full (larger, about an hour)", "quick")
    .option("--seed <n>", "seed of every random choice", "0")
    .option("--name <name>", "run folder under --runs-dir (default <profile>-seed<seed>)")
    .option("--runs-dir <dir>", "where run folders go", "runs")
    .option("--until <stage>", `stop after this stage (${LAB_STAGES.map((s) => s.name).join(", ")})`)
    .option("--quiet", "no progress lines", false)
    .action(async (o: { profile: string; seed: string; name?: string; runsDir: string; until?: string; quiet: boolean }) => {
      const seed = Number(o.seed);
      if (!Number.isInteger(seed)) throw new Error(`[lab] --seed must be an integer, got '${o.seed}'`);
      const r = await runLab({
        profile: o.profile as LabProfileName,
        seed,
        name: o.name,
        runsDir: o.runsDir,
        until: o.until,
        quiet: o.quiet,
      });
      process.stdout.write(`${claimsText(r)}\n\nreport: ${r.dir}/report.html\nresults: ${r.dir}/results.json (${r.wallSeconds} s)\n`);
    });
}
