#!/usr/bin/env bash
# Set up a fresh machine: a virtual environment in .venv with the project and everything
# its server, Blender tests and development need. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[server,blender,qdrant,dev]"
echo "t2m is set up: activate with '. .venv/bin/activate'" >&2
