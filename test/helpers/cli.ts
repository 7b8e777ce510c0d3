// Test helper: run the `nexus` program in process (no child process, no tsx start-up per call), capturing what
// it writes and its exit code as main.ts would report it. Test-only.

import { CommanderError } from "commander";
import { buildProgram } from "../../src/cli/program.js";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `nexus ...args` in this process; errors print as main.ts prints them (`nexus: message`). */
export async function runNexus(args: string[]): Promise<CliResult> {
  const program = buildProgram();
  let stdout = "";
  let stderr = "";
  const out = process.stdout.write;
  const err = process.stderr.write;
  process.stdout.write = ((s: string) => {
    stdout += s;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => {
    stderr += s;
    return true;
  }) as typeof process.stderr.write;
  let code = 0;
  try {
    await program.parseAsync(args, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) code = e.exitCode;
    else {
      code = 1;
      stderr += `nexus: ${(e as Error).message}\n`;
    }
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
  return { code, stdout, stderr };
}
