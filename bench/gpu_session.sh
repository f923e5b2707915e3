#!/usr/bin/env bash
# One lent-GPU session's checks for issue 18, in about 9 minutes of device time.
#
# Prepared here (no GPU needed), once per session, from the repository root:
#     echo /.whl/ >> .git/info/exclude; echo /.gpucache/ >> .git/info/exclude
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#         --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#         --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl lark z3-solver
#     OMP_NUM_THREADS=1 python bench/module_speed.py --exps 12 14 16 --tables 12 14 16 \
#         --threads 1 --cache .gpucache          # the CPU figures, and compiled networks to carry
# Then through the device tool: run(command="bash bench/gpu_session.sh", carry=[".whl",
# ".gpucache"], timeout_s=600) and give_back. The machine's python3 already holds torch (CUDA),
# numpy, networkx, scipy, safetensors, tqdm, pytest; lark and z3-solver travel as wheels.
#
# What it runs, each step under its own time limit so one slow step cannot eat the others:
#   1. the CUDA tests (-k cuda: modules, tree walk, event-driven paths, tensor exhaustive path);
#   2. bench/module_speed.py --device cuda  (SupModule, ConditionalModule vs the plain model);
#   3. bench/conditional_tables.py --exps 18 --device cuda  (the 2^18-row table);
#   4. bench/dense_compile.py --device cuda  (event-driven forward of the 1,000,000-pair family);
#   5. bench/exhaustive_blocks.py --rows 2:14,3:12 --device cuda --skip-delta  (the 8.4 M and
#      179 M-input domains on the tensor path).
# Everything lands under $OUT (log.txt, module_speed_cuda.json, exhaustive_blocks_cuda.json).

set -u
OUT=${OUT:-/tmp/gpu_session_out}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1

step() {          # step SECONDS TITLE COMMAND...: run with a limit, log everything
    local limit=$1 title=$2
    shift 2
    echo "=== $title (limit ${limit}s) $(date -u +%H:%M:%S)" | tee -a "$LOG"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
    echo "=== $title: exit ${PIPESTATUS[0]} after $((SECONDS - start))s" | tee -a "$LOG"
}

if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
CACHE=.gpucache
[ -d "$CACHE" ] || CACHE=/tmp/sup_bench

{ nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"; } \
    2>&1 | tee -a "$LOG"

step 150 "CUDA tests" python3 -m pytest -o addopts="" -q -p no:cacheprovider -k "cuda" \
    tests/test_backends.py tests/test_tree_module.py tests/test_tree_walk_fixed.py \
    tests/test_delta_paths.py tests/test_tensor_check.py tests/test_bench_device.py
step 120 "module speed" python3 bench/module_speed.py --device cuda --exps 12 14 16 \
    --tables 12 14 16 --cache "$CACHE" --json "$OUT/module_speed_cuda.json"
step 100 "conditional 2^18 table" python3 bench/conditional_tables.py --exps 18 --device cuda
step 60 "event-driven 1M pairs" python3 bench/dense_compile.py --device cuda
step 110 "exhaustive tensor path" python3 bench/exhaustive_blocks.py --rows 2:14,3:12 \
    --device cuda --skip-delta
cp bench/results/exhaustive_blocks_cuda.json "$OUT/" 2>/dev/null
echo "=== done $(date -u +%H:%M:%S)" | tee -a "$LOG"
