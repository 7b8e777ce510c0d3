#!/usr/bin/env bash
# Run HERE (the development machine) before a GPU run: packs what the GPU machine lacks into ignored folders of this
# checkout, which the device tool's `carry` takes along: .nodepack/ (Node.js and its headers, the recipe of
# ../shared/tools/pack-node.sh, repeated here because that script assumes .git is a folder, not a worktree's file) and
# .gpupack/ (node_modules without the lint/compile-only packages, and ../shared/fixtures, which the tests read).
# Then run on the GPU machine: bash scripts/gpu_check.sh  (see README, "Running on a GPU").
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
for d in /.nodepack/ /.gpupack/; do grep -qx "$d" "$exclude" 2>/dev/null || echo "$d" >> "$exclude"; done

rm -rf .nodepack .gpupack
mkdir -p .nodepack .gpupack/shared
xz -T0 -6 -c "$(readlink -f "$(command -v node)")" > .nodepack/node.xz
tar -C /usr/include -cJf .nodepack/node-include.tar.xz node
cat > .nodepack/setup.sh <<'SETUP'
# Unpacks Node.js and its headers; puts node and CUDA on PATH; NODE_INCLUDE points at the headers for addon builds.
mkdir -p /tmp/nodebin /tmp/nodeinc
[ -x /tmp/nodebin/node ] || { xz -dc .nodepack/node.xz > /tmp/nodebin/node && chmod +x /tmp/nodebin/node; }
[ -d /tmp/nodeinc/node ] || tar -C /tmp/nodeinc -xJf .nodepack/node-include.tar.xz
export PATH=/tmp/nodebin:$PATH
export NODE_INCLUDE=/tmp/nodeinc/node
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
export PATH=$CUDA_HOME/bin:$PATH
export LD_LIBRARY_PATH=$CUDA_HOME/lib64:${LD_LIBRARY_PATH:-}
node --version && nvcc --version | tail -1 && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
SETUP
tar -C "$root" -cJf .gpupack/node_modules.tar.xz --exclude=node_modules/@biomejs --exclude=node_modules/typescript \
  --exclude='node_modules/.cache' node_modules
cp -r ../shared/fixtures .gpupack/shared/
du -sh .nodepack .gpupack
echo "packed. On the GPU machine (device tool run, carry [\".nodepack\", \".gpupack\"]): bash scripts/gpu_check.sh"
