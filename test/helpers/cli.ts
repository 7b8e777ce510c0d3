// Test helper: run the `nexus` program in process (no child process, no tsx start-up per call), capturing what
// it writes and its exit code as main.ts would report it. The CLI's output is captured through setCliOutput, and
// process.stderr (progress lines, warnings of the library) is captured while the command runs; process.stdout is
// left alone, since the test runner reports there. Test-only.

import { CommanderError } from "commander";
import { setCliOutput } from "../../src/cli/output.js";
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
  const restore = setCliOutput({
    out: (s) => {
      stdout += s;
    },
    err: (s) => {
      stderr += s;
    },
  });
  const err = process.stderr.write;
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
    process.stderr.write = err;
    restore();
  }
  return { code, stdout, stderr };
}
