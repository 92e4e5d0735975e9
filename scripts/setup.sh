#!/usr/bin/env bash
# Set-up on a fresh machine: .venv with CPU torch 2.13, numpy<2.4, triton 3.6 and ncsn_fast (editable).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
# torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
# numpy<2.4: the Triton interpreter breaks on loops with run-time bounds under numpy 2.4.
"${PIP[@]}" install "torch==2.13.0" "numpy<2.4" "triton==3.6.0"
"${PIP[@]}" install -e ".[test]"
echo "ncsn_fast is installed in .venv (activate with: . .venv/bin/activate)"
