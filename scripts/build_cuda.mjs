// Builds the `cuda` backend's addon, build-cuda/nexus_cuda.node, from native_cuda/: nvcc for the kernels (.cu),
// g++ for the N-API binding and the cuBLASLt loader (.cc), linked with the static CUDA runtime. cuBLASLt is opened
// at run time, so its headers and library are not needed here.
//   node scripts/build_cuda.mjs                 build (npm run build:cuda); fails loudly
//   node scripts/build_cuda.mjs --if-available  install hook: builds only where nvcc and the CUDA libraries are found
//                                               (CUDA_HOME, default /usr/local/cuda); otherwise says why and succeeds
// Env: CUDA_HOME, CUDA_ARCH (default 90; e.g. "80;90"), NODE_INCLUDE (node's headers), NEXUS_CUDA_JOBS.
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const src = join(root, "native_cuda");
// its own folder: node-gyp rebuild (npm run build:native) empties build/
const objDir = join(root, "build-cuda", "obj");
const out = join(root, "build-cuda", "nexus_cuda.node");
const ifAvailable = process.argv.includes("--if-available");
const cudaHome = process.env.CUDA_HOME || "/usr/local/cuda";

function say(msg) {
  process.stderr.write(`[nexus] ${msg}\n`);
}

function skip(why) {
  say(`cuda backend not built: ${why}; the library runs on cpu/ref (npm run build:cuda builds it where CUDA is installed)`);
  process.exit(0);
}

function fail(why) {
  if (ifAvailable) skip(why);
  say(`build:cuda failed: ${why}`);
  process.exit(1);
}

const nvcc = [join(cudaHome, "bin", "nvcc")].find(existsSync);
if (!nvcc) (ifAvailable ? skip : fail)(`nvcc not found at ${join(cudaHome, "bin", "nvcc")} (set CUDA_HOME)`);
const libDir = ["lib64", "targets/x86_64-linux/lib"].map((d) => join(cudaHome, d)).find((d) => existsSync(join(d, "libcudart_static.a")));
if (!libDir) (ifAvailable ? skip : fail)(`libcudart_static.a not found under ${cudaHome}`);
if (ifAvailable) {
  // the install hook builds only where the run-time libraries are too (cuBLASLt is opened at run time)
  const hasLt = readdirSync(libDir).some((f) => f.startsWith("libcublasLt.so"));
  if (!hasLt) skip(`cuBLASLt (libcublasLt.so) not found in ${libDir}`);
}

const nodeInclude = [process.env.NODE_INCLUDE, join(dirname(process.execPath), "..", "include", "node"), "/usr/include/node"].find(
  (d) => d && existsSync(join(d, "node_api.h")),
);
if (!nodeInclude) fail("node's C headers (node_api.h) not found: set NODE_INCLUDE");
let napiInclude;
try {
  napiInclude = createRequire(join(root, "package.json"))("node-addon-api").include_dir;
  if (!napiInclude.startsWith("/")) napiInclude = join(root, napiInclude);
} catch {
  fail("node-addon-api is not installed (npm ci)");
}

const archs = (process.env.CUDA_ARCH || "90").split(/[;, ]+/).filter(Boolean);
const gencode = archs.flatMap((a) => ["-gencode", `arch=compute_${a},code=sm_${a}`]);
const last = archs[archs.length - 1];
gencode.push("-gencode", `arch=compute_${last},code=compute_${last}`); // PTX for newer GPUs

const headers = readdirSync(src).filter((f) => f.endsWith(".h") || f.endsWith(".cuh"));
const newestHeader = Math.max(...headers.map((f) => statSync(join(src, f)).mtimeMs), statSync(fileURLToPath(import.meta.url)).mtimeMs);
const units = readdirSync(src).filter((f) => f.endsWith(".cu") || f.endsWith(".cc"));
mkdirSync(objDir, { recursive: true });
mkdirSync(dirname(out), { recursive: true });

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (stderr.trim()) process.stderr.write(stderr);
      if (err) reject(new Error(`${cmd} ${args.join(" ")}\n${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

function compileArgs(file, obj) {
  const input = join(src, file);
  if (file.endsWith(".cu")) {
    return [nvcc, ["-O3", "-std=c++17", ...gencode, "-Xcompiler", "-fPIC", "-lineinfo", "-Xptxas", "-warn-spills", "-c", input, "-o", obj]];
  }
  return [
    process.env.CXX || "g++",
    [
      "-O2",
      "-std=c++17",
      "-fPIC",
      "-fexceptions",
      "-Wall",
      "-DNAPI_VERSION=8",
      "-DNAPI_CPP_EXCEPTIONS",
      "-DNODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
      "-DNODE_ADDON_API_DISABLE_DEPRECATED",
      `-I${nodeInclude}`,
      `-I${napiInclude}`,
      `-I${join(cudaHome, "include")}`,
      "-c",
      input,
      "-o",
      obj,
    ],
  ];
}

const started = Date.now();
const jobs = Number(process.env.NEXUS_CUDA_JOBS) || Math.max(1, Math.min(cpus().length, units.length));
const queue = units.map((f) => ({ f, obj: join(objDir, `${f}.o`) }));
const objects = queue.map((u) => u.obj);
const stale = queue.filter(({ f, obj }) => !existsSync(obj) || statSync(obj).mtimeMs < Math.max(statSync(join(src, f)).mtimeMs, newestHeader));
try {
  const workers = Array.from({ length: jobs }, async () => {
    for (let u = stale.shift(); u !== undefined; u = stale.shift()) {
      const [cmd, args] = compileArgs(u.f, u.obj);
      await run(cmd, args);
      say(`compiled native_cuda/${u.f}`);
    }
  });
  await Promise.all(workers);
  await run(process.env.CXX || "g++", ["-shared", "-o", out, ...objects, `-L${libDir}`, "-lcudart_static", "-ldl", "-lrt", "-lpthread"]);
} catch (e) {
  fail(e.message);
}
say(`built ${out} for sm_${archs.join(", sm_")} in ${((Date.now() - started) / 1000).toFixed(1)} s (nvcc ${nvcc})`);
