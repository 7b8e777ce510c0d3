// Reading a request body (size-limited, UTF-8, JSON) and writing a whole JSON or text answer, for server.ts.
// Not here: streamed answers (sse.ts), routes and checks (server.ts, guard.ts).

import type * as http from "node:http";
import { ApiError } from "./protocol.js";

/** The body as JSON ({} when empty); 413 past `limit` bytes (declared or received), 400 for bad UTF-8 or JSON. */
export function readBody(req: http.IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > limit) {
      reject(new ApiError(413, `[serve] request body of ${declared} bytes is over the ${limit}-byte limit`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (over) return;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        reject(new ApiError(413, `[serve] request body is over the ${limit}-byte limit`));
      } else chunks.push(c);
    });
    req.on("end", () => {
      if (over) return;
      let text: string;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
      } catch {
        reject(new ApiError(400, "[serve] the request body is not valid UTF-8"));
        return;
      }
      try {
        resolve(text.length === 0 ? {} : JSON.parse(text));
      } catch (e) {
        reject(new ApiError(400, `[serve] the request body is not valid JSON (${(e as Error).message.slice(0, 200)})`));
      }
    });
    req.on("error", reject);
  });
}

export function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, {
    "content-type": typeof body === "string" ? "text/plain; charset=utf-8" : "application/json",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}
