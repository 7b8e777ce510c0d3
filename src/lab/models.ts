// Loading what earlier lab stages saved, so a resumed lab picks up their models from disk.

import { join } from "node:path";
import { type CausalLM, loadCausalLM } from "../models/causal_lm.js";
import type { LabContext } from "./runner.js";

/** The SFT policy written by the sft stage. */
export async function loadSftPolicy(ctx: LabContext): Promise<CausalLM> {
  return loadCausalLM(join(ctx.stageDir("sft"), "model"));
}
