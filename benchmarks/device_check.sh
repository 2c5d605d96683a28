#!/usr/bin/env bash
# The GPU path, measured: benchmarks/device_check.sh [--smoke] [OUT_DIR] (see benchmarks/device_check.py).
# On a fresh GPU machine: python3 -m venv .venv && .venv/bin/pip install torch -e ".[dev]" first.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec "$PY" benchmarks/device_check.py "$@"
