#!/usr/bin/env bash
# The GPU check: on a machine with a CUDA GPU, build the extension (CUDA included), run the GPU-only
# tests, and benchmark the fused ops and the network forward (torch.compile as the baseline).
# Writes benchmarks/results/*_<gpu>.{json,md} (commit them); if $OUT is set, copies them and the log there.
# The GPU machine has no internet: it uses the Python that has torch, triton, pybind11 and pytest.
# Usage: bash scripts/gpu_check.sh [--no-bench]
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOG=${OUT:-/tmp}/gpu_check.log
exec > >(tee "$LOG") 2>&1
export TRITON_INTERPRET=0 NCSN_FAST_CUDA=1 PYTHONUNBUFFERED=1
status=0

echo "== environment"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
"$PY" -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"

echo "== build"
rm -rf build ncsn_fast/_C*.so
if ! "$PY" -m pip install --no-build-isolation --no-deps -q -e .; then echo "BUILD FAILED"; exit 1; fi
"$PY" -c "import torch, ncsn_fast._C as C, ncsn_fast.ops as ops
print('has_cuda', C.has_cuda(), 'devices', C.cuda_device_count())
print(ops.explain(torch.device('cuda')))"

echo "== gpu tests"
"$PY" -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider || status=1

if [ "${1:-}" != "--no-bench" ]; then
  echo "== benchmarks"
  "$PY" -m ncsn_fast.cli bench all --device cuda --compile default || status=1
fi
if [ -n "${OUT:-}" ]; then cp benchmarks/results/*.md benchmarks/results/*.json "$OUT"/ 2>/dev/null || true; fi
echo "== gpu_check exit status $status"
exit $status
