#!/usr/bin/env bash
# Create .venv and install interp with everything the tests and notebooks need.
# torch is installed first when missing (a plain `torch` requirement would pull a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "torch==2.13.0" || .venv/bin/python -m pip install -q "torch>=2.4"
fi
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/interp models
