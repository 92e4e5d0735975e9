#!/usr/bin/env bash
# The GPU check, on a machine with a CUDA GPU: build the extension (CUDA included), then one stage. Each stage
# is sized for one 10-minute call; in order of priority:
#   test      GPU-only tests: every GPU backend vs the reference at real sizes, CUDA-graph replays drawing
#             fresh noise, annealed Langevin's graphed table (1 row, 5 rows, whole run per graph) == its fused
#             loop, the other samplers' graphed tables == their fused loop, GPU sampling == CPU reference,
#             batch-size independence; the ops benchmark (its Langevin row of sampler_update_ among them);
#             2000-image generate smoke runs (ald, heun)
#   sampler   the sampler per step, NCSNv2 CIFAR-10 ngf 128, batches 1/16/128/512: eager original algorithm,
#             torch.compile (default), ours (cuda/triton, graphed or not, graph of 1 step vs of all steps,
#             fp32/bf16)
#   samplers  the other samplers' whole runs (heun, dpmpp-2m, edm-ancestral) on our fast path against the original algorithm,
#             CIFAR-10 batches 1/16/128
#   forward   one NCSNv2 forward: eager, fused ops, channels_last, torch.compile; the per-op profile
#   ncsnpp    NCSN++ (cifar10_ncsnpp_continuous size, batches 16/128): group_norm_act against eager, the
#             forward (eager, ours, bf16, torch.compile) and the predictor-corrector sampler (the score-SDE
#             code's loop, eager and compiled, against ours in CUDA graphs); the NCSN++ GPU tests
#   large     the sampler at the largest power-of-two batch that fits (CIFAR-10)
#   celeba    the sampler on the CelebA 64 config, batches 1/16/128
#   modes     the sampler at batches 1 and 16 with torch.compile's reduce-overhead mode (its own CUDA graphs)
#   autotune  the sampler at batch 16 with torch.compile's max-autotune mode (its compile may take minutes)
#   all       everything above in turn (longer than one 10-minute call)
# Several stages in one call share one build: `gpu_check.sh test:240 sampler:170 forward:110` gives each
# stage the seconds after its colon (the build counts towards the first); a stage named without seconds gets
# GPU_CHECK_SECONDS (default 540; 'all': 7200).
# Results: benchmarks/results/<suite>_<gpu>.{json,md} (commit them); with $OUT set, copies and the log there.
# The GPU machine has no internet: it uses the Python that has torch, triton, pybind11 and pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 0 ] && set -- test
for arg in "$@"; do
  case "${arg%%:*}" in test|sampler|samplers|forward|ncsnpp|large|celeba|modes|autotune|all) ;;
    *) echo "unknown stage '${arg%%:*}' (test | sampler | samplers | forward | ncsnpp | large | celeba | modes |"\
            "autotune | all)"
       exit 2 ;;
  esac
  case "$arg" in *:*) [[ "${arg#*:}" =~ ^[0-9]+$ ]] || { echo "bad seconds in '$arg'"; exit 2; } ;; esac
done
stage=$(IFS=-; echo "${*%%:*}")
PY=${PYTHON:-python3}
LOG=${OUT:-/tmp}/gpu_check_${stage}.log
exec > >(tee "$LOG") 2>&1
export TRITON_INTERPRET=0 NCSN_FAST_CUDA=1 PYTHONUNBUFFERED=1
status=0
# Each stage keeps within its seconds, the build included in the first: every long step gets the time left
# of its stage and is interrupted (SIGINT) when it runs out; benchmarks write their results after every case,
# so what was measured is kept. Results written during this call are copied to $OUT as they come (the device
# tool returns at most 8 files: the log and this call's results).
START=$(date +%s)
budget_of() {  # budget_of STAGE[:SECONDS]
  case "$1" in *:*) echo "${1#*:}" ;; all) echo "${GPU_CHECK_SECONDS:-7200}" ;; *) echo "${GPU_CHECK_SECONDS:-540}" ;; esac
}
BUDGET=$(budget_of "$1")
STAMP=$(mktemp)
left() { echo $((BUDGET - ($(date +%s) - START))); }
copy_out() {
  if [ -n "${OUT:-}" ]; then find benchmarks/results -type f -newer "$STAMP" -exec cp {} "$OUT"/ \; ; fi
}
timed() {  # timed CMD...: run CMD with the time left, interrupted when it runs out
  local t
  t=$(left)
  if [ "$t" -le 15 ]; then echo "== skipped, no time left: $*"; status=1; return; fi
  timeout --signal=INT --kill-after=30 "$t" "$@" || status=1
}
bench() { timed "$PY" -m ncsn_fast.cli bench "$@" --device cuda; copy_out; }

echo "== environment"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
"$PY" -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"

echo "== build"
rm -rf build ncsn_fast/_C*.so
if ! "$PY" -m pip install --no-build-isolation --no-deps -q -e .; then echo "BUILD FAILED"; exit 1; fi
"$PY" -c "import torch, ncsn_fast._C as C, ncsn_fast.ops as ops
print('has_cuda', C.has_cuda(), 'devices', C.cuda_device_count())
print(ops.explain(torch.device('cuda')))"

run_stage() {
  case "$1" in
    test) timed "$PY" -m pytest -q -rfE --tb=short --durations=8 -m gpu tests/test_gpu.py -p no:cacheprovider
          bench ops
          timed "$PY" -m ncsn_fast.cli generate -n 2000 --out /tmp/gen_check --overwrite --device cuda \
            --batch-size auto --quiet
          timed "$PY" -m ncsn_fast.cli generate -n 2000 --out /tmp/gen_check_heun --overwrite --device cuda \
            --batch-size auto --quiet --sampler heun ;;
    samplers) bench sampler --models cifar10 --batches 1,16,128 --variants reference,samplers \
                --samplers heun,dpmpp-2m,edm-ancestral ;;
    sampler) bench sampler --models cifar10 --compile default ;;
    forward) bench forward --compile default
             timed "$PY" benchmarks/profile_forward.py --device cuda --ngf 128 --batch 128; copy_out ;;
    ncsnpp) timed "$PY" -m pytest -q -rfE --tb=short -m gpu tests/test_gpu.py -k "group_norm or ncsnpp" \
              -p no:cacheprovider
            bench ncsnpp --compile default ;;
    large) bench sampler --models cifar10 --batches max --compile default ;;
    celeba) bench sampler --models celeba --compile default ;;
    modes) bench sampler --models cifar10 --batches 1,16 --compile reduce-overhead ;;
    autotune) bench sampler --models cifar10 --batches 16 --compile max-autotune ;;
  esac
}
first=1
for arg in "$@"; do
  if [ "$first" = 0 ]; then START=$(date +%s); BUDGET=$(budget_of "$arg"); fi
  first=0
  if [ "${arg%%:*}" = all ]; then
    for s in test sampler samplers forward ncsnpp large celeba modes autotune; do echo "== stage $s"; run_stage "$s"; done
  else
    echo "== stage ${arg%%:*} ($(left) s)"; run_stage "${arg%%:*}"
  fi
done
copy_out
echo "== gpu_check $stage: exit status $status"
exit $status
