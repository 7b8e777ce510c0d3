// Where /v1/load_lora_adapter may read from: only folders inside the server's --adapter-root, named by a
// path relative to it (or an absolute path inside it). Traversal (`..`, absolute paths elsewhere, symlinks
// that lead out) is refused with one message that does not say whether the outside path exists, and loader
// messages show the root as `<adapter-root>`, so a client never learns the server's other paths.
// Not here: loading the adapter (engine.ts), the HTTP route (server.ts).

import * as fs from "node:fs";
import * as path from "node:path";
import { describeValue } from "../io/describe.js";
import { ApiError } from "./protocol.js";

export class AdapterRoot {
  /** The root with symlinks resolved (what every adapter path must stay inside). */
  readonly real: string;

  constructor(root: string) {
    try {
      this.real = fs.realpathSync(root);
    } catch (e) {
      throw new ApiError(500, `[serve] --adapter-root ${root}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
    if (!fs.statSync(this.real).isDirectory()) throw new ApiError(500, `[serve] --adapter-root ${root} is not a folder`);
  }

  /** The real folder `lora_path` names inside the root; a 400 naming only what the client sent otherwise. */
  resolve(loraPath: string): string {
    const outside = () =>
      new ApiError(400, `[serve] lora_path ${describeValue(loraPath)} is not a folder inside the adapter root`, "lora_path");
    if (loraPath.includes("\u0000")) throw outside();
    const full = path.resolve(this.real, loraPath);
    const inside = (p: string) => {
      const rel = path.relative(this.real, p);
      return rel !== "" && !rel.startsWith("..") && !path.isAbsolute(rel);
    };
    if (!inside(full)) throw outside();
    let real: string;
    try {
      real = fs.realpathSync(full);
    } catch {
      throw new ApiError(404, `[serve] lora_path ${describeValue(loraPath)}: no such adapter folder in the adapter root`, "lora_path");
    }
    if (!inside(real)) throw outside();
    if (!fs.statSync(real).isDirectory()) throw outside();
    return real;
  }

  /** A message with the root's real path replaced by `<adapter-root>`. */
  redact(message: string): string {
    return message.split(this.real).join("<adapter-root>");
  }
}
