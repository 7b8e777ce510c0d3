// The `nexus` command tree: one subcommand (or group of subcommands) per job, each registered from its schema.
// Not here: running it (main.ts is the entry point and the only place that calls process.exit).

import { registerCpo } from "./cpo.js";
import { registerDpo } from "./dpo.js";
import { registerEval } from "./eval.js";
import { registerGkd } from "./gkd.js";
import { registerGrpo } from "./grpo.js";
import { registerInfo } from "./info.js";
import { registerInit } from "./init.js";
import { registerKto } from "./kto.js";
import { registerLab } from "./lab.js";
import { registerLabel } from "./label.js";
import { registerOnlineDpo } from "./online_dpo.js";
import { registerOrpo } from "./orpo.js";
import { cliErr, cliOut } from "./output.js";
import { registerPpo } from "./ppo.js";
import { registerPrm } from "./prm.js";
import { registerRloo } from "./rloo.js";
import { registerRm } from "./rm.js";
import { NexusCommand } from "./schema_command.js";
import { registerScore } from "./score.js";
import { registerSearch } from "./search.js";
import { registerServe } from "./serve.js";
import { registerSft } from "./sft.js";
import { registerSpin } from "./spin.js";
import { packageVersion } from "./version.js";

/** A fresh `nexus` program (commander), with errors thrown (exitOverride) instead of exiting. */
export function buildProgram(): NexusCommand {
  const program = new NexusCommand("nexus");
  program
    .description("Reward modeling and alignment of language models, in TypeScript")
    .version(packageVersion(), "-V, --version", "print the version")
    .option("--debug", "print stack traces on errors", false)
    .showHelpAfterError("(add --help to see every option)")
    .configureOutput({ writeOut: (s) => cliOut(s), writeErr: (s) => cliErr(s) })
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
  registerGkd(program);
  registerLabel(program);
  registerEval(program);
  registerServe(program);
  registerSearch(program);
  registerScore(program);
  return program;
}
