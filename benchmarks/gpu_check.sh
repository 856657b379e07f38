#!/usr/bin/env bash
# One prepared run on a CUDA machine: the MPM tests on the GPU, then the MPM and
# render benchmarks with --arch cuda. Logs and JSON go to $OUT (default /tmp/gpu_out).
# Where the machine lacks taichi/gymnasium/trimesh, put their cp312 wheels and a
# diffsim wheel in .whl/ (see README, "Benchmarks"); they are installed first.
# Usage: bash benchmarks/gpu_check.sh [tests-seconds] [bench-seconds]
set -uo pipefail
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
T_TESTS=${1:-150}; T_BENCH=${2:-240}
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit 1
fi
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
cd /tmp && python3 -c "import diffsim, taichi; print('diffsim from', diffsim.__file__)"; cd - >/dev/null
nvidia-smi -L
(cd /tmp && DIFFSIM_TEST_ARCH=cuda timeout "$T_TESTS" python3 -m pytest -q -p no:cacheprovider \
  --rootdir "$OLDPWD" --durations=10 "$OLDPWD/tests/test_mpm_gradients.py" "$OLDPWD/tests/test_mpm_physics.py") 2>&1 | tee "$OUT/gpu_tests.log"
timeout "$T_BENCH" python3 benchmarks/mpm.py --arch cuda --reps 5 --dims 2 3 3-1M \
  --json "$OUT/mpm_cuda.json" 2>&1 | tee "$OUT/mpm_cuda.log"
timeout 60 python3 benchmarks/render.py --arch cuda --json "$OUT/render_cuda.json" 2>&1 | tee "$OUT/render_cuda.log"
