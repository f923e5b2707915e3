#!/usr/bin/env bash
# One lent-GPU session's checks for issue 18, in about 9 minutes of device time.
#
# Prepared here (no GPU needed), once per session, from the repository root:
#     echo /.whl/ >> .git/info/exclude
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#         --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#         --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl lark z3-solver
#     OMP_NUM_THREADS=1 python bench/module_speed.py --exps 12 14 16 --tables 12 14 16 --threads 1
# (the CPU figures to compare with). Then through the device tool:
#     run(command="bash bench/gpu_session.sh", carry=[".whl"], timeout_s=600), then give_back.
# The machine's python3 already holds torch (CUDA), numpy, networkx, scipy, safetensors, tqdm and
# pytest; lark and z3-solver travel as wheels (38 MB of the 64 MiB a call may carry, so the
# compiled networks, 180 MB, are compiled there: about 30 s).
#
# What it runs, each step under its own time limit so one slow step cannot eat the others:
#   1. the CUDA tests (-k cuda: modules, tree walk, event-driven paths, tensor exhaustive path);
#   2. bench/module_speed.py --device cuda  (SupModule, ConditionalModule vs the plain model);
#   3. bench/conditional_tables.py --exps 18 --device cuda  (the 2^18-row table);
#   3b. bench/bitcheck_speed.py --device cuda  (the compiler's exactness criterion on the GPU);
#   4. bench/dense_compile.py --device cuda  (event-driven forward of the 1,000,000-pair family);
#   5. bench/exhaustive_blocks.py --rows 2:14,3:12 --device cuda --skip-delta  (the 8.4 M and
#      179 M-input domains on the tensor path).
# Everything lands under $OUT (log.txt, module_speed_cuda.json, exhaustive_blocks_cuda.json).
# Rehearsal without a GPU: `DEVICE=cpu OUT=/tmp/rehearsal bash bench/gpu_session.sh` runs the
# same steps on the CPU (slower: some steps reach their limits).

set -u
OUT=${OUT:-/tmp/gpu_session_out}
DEVICE=${DEVICE:-cuda}
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
CACHE=/tmp/sup_bench

{ nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available()
    and torch.cuda.get_device_name(0))"; } 2>&1 | tee -a "$LOG"

step 110 "CUDA tests" python3 -m pytest -o addopts="" -q -p no:cacheprovider -k "cuda" \
    tests/test_backends.py tests/test_tree_module.py tests/test_tree_walk_fixed.py \
    tests/test_delta_paths.py tests/test_tensor_check.py tests/test_bench_device.py tests/test_kernels.py \
    tests/test_bitcheck_torch.py
step 140 "module speed" python3 bench/module_speed.py --device $DEVICE --exps 12 14 16 \
    --tables 12 14 16 --cache "$CACHE" --json "$OUT/module_speed_$DEVICE.json"
step 90 "conditional 2^18 table" python3 bench/conditional_tables.py --exps 18 --device $DEVICE
step 40 "compile criterion" python3 bench/bitcheck_speed.py --device $DEVICE --exps 14,16,18
step 60 "event-driven 1M pairs" python3 bench/dense_compile.py --device $DEVICE
KEEP=$(mktemp)        # a CPU rehearsal must not overwrite the stored CPU rows
cp bench/results/exhaustive_blocks.json "$KEEP"
step 100 "exhaustive tensor path" python3 bench/exhaustive_blocks.py --rows 2:14,3:12 \
    --device "$DEVICE" --skip-delta
cp "$KEEP" bench/results/exhaustive_blocks.json
[ "$DEVICE" = cuda ] && cp bench/results/exhaustive_blocks_cuda.json "$OUT/"
echo "=== done $(date -u +%H:%M:%S)" | tee -a "$LOG"
