#!/usr/bin/env bash
# One prepared run on a CUDA machine: tests on the GPU and the benchmarks with the CUDA
# backend. Logs and JSON go to $OUT (default /tmp/gpu_out).
# Where the machine lacks taichi/gymnasium/trimesh, put their cp312 wheels and a diffsim
# wheel in .whl/ (README, "Benchmarks"); they are installed first.
# Usage: bash benchmarks/gpu_check.sh [STAGE[:SECONDS] ...]
#   stages: mpm-grad (gradient tests only) mpm-tests fem-tests tactile-tests mpm-bench fem-bench tactile-bench pde-bench
#           render-bench (default: all, each with its own time limit)
set -uo pipefail
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
REPO=$(cd "$(dirname "$0")/.." && pwd)
if [ -d "$REPO/.whl" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$REPO"/.whl/*.whl && export PYTHONPATH=/tmp/site || exit 1
fi
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
nvidia-smi -L

gpu_tests() {  # name seconds files... ; from /tmp so the installed diffsim is imported
  local name=$1 secs=$2; shift 2
  (cd /tmp && DIFFSIM_TEST_ARCH=cuda timeout "$secs" python3 -m pytest -q -p no:cacheprovider \
    --rootdir "$REPO" --durations=5 "${@/#/$REPO/}") 2>&1 | tee "$OUT/$name.log" | tail -15
}

run_stage() {
  local stage=${1%%:*} secs=${1#*:}
  [ "$secs" = "$1" ] && secs=""
  echo "=== $stage"
  case $stage in
    mpm-grad) gpu_tests "$stage" "${secs:-60}" tests/test_mpm_gradients.py ;;
    mpm-tests) gpu_tests "$stage" "${secs:-90}" tests/test_mpm_gradients.py tests/test_mpm_physics.py ;;
    fem-tests) gpu_tests "$stage" "${secs:-120}" tests/test_fem_gradients.py tests/test_fem_physics.py ;;
    tactile-tests) gpu_tests "$stage" "${secs:-90}" tests/test_tactile.py ;;
    mpm-bench) timeout "${secs:-270}" python3 "$REPO/benchmarks/mpm.py" --arch cuda --reps 5 \
      --dims 2 3 3-1M --json "$OUT/mpm_cuda.json" 2>&1 | tee "$OUT/$stage.log" ;;
    fem-bench) timeout "${secs:-100}" python3 "$REPO/benchmarks/fem.py" --arch cuda --steps 5 \
      --json "$OUT/fem_cuda.json" 2>&1 | tee "$OUT/$stage.log" ;;
    tactile-bench) timeout "${secs:-90}" python3 "$REPO/benchmarks/tactile.py" --arch cuda \
      --steps 4 --optimize compile --json "$OUT/tactile_cuda.json" 2>&1 | tee "$OUT/$stage.log" ;;
    pde-bench) PYTHON=python3 timeout "${secs:-90}" bash "$REPO/benchmarks/pde_gpu.sh" 2>&1 \
      | tee "$OUT/$stage.log" ;;
    render-bench) timeout "${secs:-60}" python3 "$REPO/benchmarks/render.py" --arch cuda \
      --json "$OUT/render_cuda.json" 2>&1 | tee "$OUT/$stage.log" ;;
    *) echo "unknown stage $stage"; return 2 ;;
  esac
}

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(mpm-tests fem-tests tactile-tests mpm-bench fem-bench
                                   tactile-bench pde-bench render-bench)
for s in "${stages[@]}"; do run_stage "$s"; done
