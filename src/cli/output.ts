// Where the CLI's own output goes: stdout and stderr of the process, or a test's capture (setCliOutput), so that
// commands can run in process without touching the test runner's stdout. Library code below the CLI (progress
// lines, warnings) writes to process.stderr itself.

export interface CliOutput {
  out(text: string): void;
  err(text: string): void;
}

const PROCESS: CliOutput = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};
let current: CliOutput = PROCESS;

/** Write to the CLI's stdout. */
export function cliOut(text: string): void {
  current.out(text);
}

/** Write to the CLI's stderr. */
export function cliErr(text: string): void {
  current.err(text);
}

/** Send CLI output to `o` until the returned function is called. */
export function setCliOutput(o: CliOutput): () => void {
  const prev = current;
  current = o;
  return () => {
    current = prev;
  };
}
