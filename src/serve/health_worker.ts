// The health listener of `nexus serve` (--health-port): a worker thread with an HTTP server of its own that
// answers GET /health (and HEAD) from the board the HTTP thread writes (health.ts), so a probe never waits behind
// the API's connections. Every other path is 404; nothing here reads a body or touches the model.

import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { parentPort, workerData } from "node:worker_threads";
import { healthVerdict } from "./health.js";

const port = parentPort;
if (port === null) throw new Error("[serve health] must run as a worker thread");
const { shared, host, port: wanted, staleMs } = workerData as { shared: SharedArrayBuffer; host: string; port: number; staleMs: number };

const server = http.createServer((req, res) => {
  const path = (req.url ?? "/").split("?")[0];
  let status: number;
  let text: string;
  if (path !== "/health") [status, text] = [404, "no such route: only /health is served on this port"];
  else if (req.method !== "GET" && req.method !== "HEAD") [status, text] = [405, "method not allowed"];
  else ({ status, reason: text } = healthVerdict(shared, Date.now(), staleMs));
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text) });
  res.end(req.method === "HEAD" ? undefined : text);
});
server.once("error", (e) => port.postMessage({ error: e.message }));
server.listen({ host, port: wanted, backlog: 4096 }, () => port.postMessage({ port: (server.address() as AddressInfo).port }));
