#!/usr/bin/env bash
# The GPU machine's one prepared run (CUDA 13, g++ 13, PyTorch 2.11, no Node.js): builds the cpu and cuda addons,
# runs the GPU tests (the parametric suites with cuda in testBackends(), every trainer test with NEXUS_BACKEND=cuda,
# the GRPO learning test on the GPU) and both benches (gpu, cpu_threads), writing five files under $OUT:
# summary.txt (what passed, the bench table), build.log, tests.log, bench.jsonl, bench.log. The stage limits add up to
# under 10 minutes (the device tool's limit for one command): run it with timeout_s 600; typically 7-9 minutes.
#   prepare here:   bash scripts/gpu_pack.sh          (packs .nodepack/ and .gpupack/, both git-ignored)
#   run there:      bash scripts/gpu_check.sh [build] [test] [bench]     (default: all three, in that order)
# Stage time limits (seconds) can be changed with GPU_BUILD_S, GPU_TEST_S, GPU_BENCH_S, GPU_THREADS_S.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
stages=${*:-build test bench}
summary=$OUT/summary.txt
: >"$summary"
t0=$(date +%s)
say() { echo "[$(($(date +%s) - t0)) s] $*" | tee -a "$summary"; }
has() { [[ " $stages " == *" $1 "* ]]; }

# ---- environment: Node from .nodepack, node_modules and ../shared/fixtures from .gpupack ----
{
  source .nodepack/setup.sh
  [ -d node_modules/tsx ] || tar -xJf .gpupack/node_modules.tar.xz
  [ -d ../shared/fixtures ] || { mkdir -p ../shared && cp -r .gpupack/shared/fixtures ../shared/; }
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm --format=csv
  nproc
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' ||
    echo "no PyTorch + transformers: the gpu bench runs without its peer"
  true
} >"$OUT/build.log" 2>&1
command -v node >/dev/null || { say "no node after .nodepack/setup.sh (run scripts/gpu_pack.sh first)"; exit 1; }
say "setup: $(node --version), $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null), $(nproc) cores"
export NEXUS_QUIET=1

if has build; then
  mkdir -p /tmp/nodedir/include && ln -sfn "$NODE_INCLUDE" /tmp/nodedir/include/node
  if timeout "${GPU_BUILD_S:-120}" bash -c 'node node_modules/node-gyp/bin/node-gyp.js rebuild --nodedir=/tmp/nodedir -j max & p1=$!;
      NEXUS_CUDA_JOBS=16 node scripts/build_cuda.mjs; r2=$?; wait $p1; r1=$?; exit $((r1 + 2 * r2))' >>"$OUT/build.log" 2>&1; then
    say "build: cpu and cuda addons built"
  else
    say "build: FAILED (exit $?: 1 cpu addon, 2 cuda addon, 3 both, 124 timeout); end of build.log:"
    tail -30 "$OUT/build.log" | tee -a "$summary"
  fi
  node --import tsx -e 'import("./src/backend/cuda.ts").then((m) => console.log("cuda:", JSON.stringify(m.cudaDeviceInfo() ?? m.cudaUnavailableReason())))' 2>&1 | tee -a "$summary"
fi

if has test; then
  tests=$OUT/tests.log
  : >"$tests"
  # name | env | files: the parametric suites run ref, cpu, sim and cuda (fp32 strict on cuda: see testBackends)
  run_tests() {
    local name=$1 env=$2 limit=$3
    shift 3
    echo "==== $name ($env) ====" >>"$tests"
    env $env timeout "$limit" node --enable-source-maps --import tsx --test "$@" >>"$tests" 2>&1
    local rc=$?
    local pass fail
    pass=$(tail -n 12 "$tests" | sed -n 's/^# pass //p' | tail -1)
    fail=$(tail -n 12 "$tests" | sed -n 's/^# fail //p' | tail -1)
    say "tests $name: pass ${pass:-?} fail ${fail:-?}$([ $rc = 124 ] && echo ' (TIMED OUT)')"
  }
  lim=${GPU_TEST_S:-170}
  # the tests compare fp32 results at float32 tolerances: no TF32 in matmul (NEXUS_STRICT_FP32); bf16 is tested on purpose
  export NEXUS_STRICT_FP32=1
  run_tests "parametric suites (cuda in testBackends)" "NEXUS_BACKEND=auto" "$((lim * 30 / 100))" \
    test/backend_interface.test.ts test/device_sim.test.ts test/ops_conformance.test.ts test/ops_gradcheck.test.ts \
    test/models_hf.test.ts test/models_kv_cache.test.ts test/nn_optim.test.ts test/nn_overfit.test.ts test/losses_fixtures.test.ts
  run_tests "trainers on cuda" "NEXUS_BACKEND=cuda" "$((lim * 40 / 100))" $(ls test/train_*.test.ts | grep -v learning) test/nn_module.test.ts
  run_tests "GRPO learning on cuda" "NEXUS_BACKEND=cuda" "$((lim * 30 / 100))" test/train_grpo_learning.test.ts
  grep -E "^\s*not ok" "$tests" | head -40 >>"$summary"
fi

if has bench; then
  : >"$OUT/bench.jsonl"
  : >"$OUT/bench.log"
  timeout "${GPU_BENCH_S:-210}" node --import tsx bench/run.ts --only gpu --quick --json >>"$OUT/bench.jsonl" 2>>"$OUT/bench.log" ||
    say "bench gpu: exit $? (bench.log)"
  timeout "${GPU_THREADS_S:-70}" node --import tsx bench/run.ts --only cpu_threads --quick --json >>"$OUT/bench.jsonl" 2>>"$OUT/bench.log" ||
    say "bench cpu_threads: exit $? (bench.log)"
  say "bench rows (value, peer, ratio):"
  node -e 'for (const l of require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean)) {
    const r = JSON.parse(l); console.log(`  ${r.bench}/${r.metric}: ${r.value.toFixed(1)} ${r.unit}, peer ${r.peer === null ? "-" : r.peer.toFixed(1)}, ratio ${r.ratio === null ? "-" : r.ratio.toFixed(2)}`); }' \
    "$OUT/bench.jsonl" | tee -a "$summary"
fi
say "done"
