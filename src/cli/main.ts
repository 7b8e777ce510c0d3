#!/usr/bin/env node
// The `nexus` command's entry point: parse, run, and the only place that calls process.exit. Errors print as
// one line (`nexus: [component] message`), with the stack trace only under --debug.

import { CommanderError } from "commander";
import { buildProgram } from "./program.js";

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
