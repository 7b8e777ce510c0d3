#!/usr/bin/env node
// The `nexus` command: one subcommand per job. The only place that calls process.exit; errors print as
// one line (`nexus: [component] message`), with the stack trace only under --debug.

import { Command, CommanderError } from "commander";
import { registerCpo } from "./cpo.js";
import { registerDpo } from "./dpo.js";
import { registerEval } from "./eval.js";
import { registerGrpo } from "./grpo.js";
import { registerInfo } from "./info.js";
import { registerInit } from "./init.js";
import { registerKto } from "./kto.js";
import { registerLab } from "./lab.js";
import { registerLabel } from "./label.js";
import { registerOnlineDpo } from "./online_dpo.js";
import { registerOrpo } from "./orpo.js";
import { registerPpo } from "./ppo.js";
import { registerPrm } from "./prm.js";
import { registerRloo } from "./rloo.js";
import { registerRm } from "./rm.js";
import { registerScore } from "./score.js";
import { registerSurpriseScore } from "./score_surprise.js";
import { registerVerifierScore } from "./score_verifier.js";
import { registerSearch } from "./search.js";
import { registerServe } from "./serve.js";
import { registerSft } from "./sft.js";
import { registerSpin } from "./spin.js";

export function buildProgram(): Command {
  const program = new Command("nexus")
    .description("Reward modeling and alignment of language models, in TypeScript")
    .option("--debug", "print stack traces on errors", false)
    .showHelpAfterError()
    .exitOverride();
  registerLab(program);
  registerInfo(program);
  registerInit(program);
  registerSft(program);
  registerRm(program);
  registerPrm(program);
  registerDpo(program);
  registerKto(program);
  registerOrpo(program);
  registerCpo(program);
  registerGrpo(program);
  registerRloo(program);
  registerPpo(program);
  registerOnlineDpo(program);
  registerSpin(program);
  registerLabel(program);
  registerEval(program);
  registerServe(program);
  registerSearch(program);
  registerVerifierScore();
  registerSurpriseScore();
  registerScore(program);
  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    const debug = argv.includes("--debug");
    const err = e as Error;
    process.stderr.write(`nexus: ${debug ? (err.stack ?? err.message) : err.message}\n`);
    return 1;
  }
}

main(process.argv).then((code) => process.exit(code));
