#!/usr/bin/env bash
# Set up from nothing (scripts/setup.sh), then run every test: core and plugins.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL="${MUJOCO_GL:-egl}"
exec .venv/bin/python -m pytest -q "$@"
