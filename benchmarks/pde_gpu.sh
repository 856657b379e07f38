#!/usr/bin/env bash
# The PDE benchmark (benchmarks/pde.py) on a CUDA GPU, about a minute: WENO5 reference vs
# MPPDE/FNO rollouts (E1, nx=100, batch 128), MGPCG pressure projection vs CG and scipy,
# Taichi smoke vs FNO-2D/U-Net, ds.MPM vs GNS. Both sides of each comparison run on the GPU
# (torch on cuda, Taichi with arch=cuda); scipy stays on the CPU.
#
#   benchmarks/pde_gpu.sh                 # quick (E1 only, nx=100, 64^2 projection)
#   benchmarks/pde_gpu.sh --full          # all families and resolutions (several minutes)
#   PYTHON=/path/to/python benchmarks/pde_gpu.sh
#
# Needs a CUDA build of torch next to taichi and diffsim (e.g. DIFFSIM_TORCH=torch ./dev setup).
# Writes nothing; prints the tables (keep them: tee out/pde_gpu.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
quick=(--quick)
if [ "${1:-}" = "--full" ]; then quick=(); shift; fi
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'torch sees no CUDA device: install a CUDA build of torch')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
export DIFFSIM_ARCH=cuda OMP_NUM_THREADS=1
exec "$PY" benchmarks/pde.py --device cuda "${quick[@]}" --repeats 3 --batch 128 --sections abcd "$@"
