#!/usr/bin/env bash
# Set up from nothing (scripts/setup.sh), then run every test: core and plugins.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL="${MUJOCO_GL:-egl}"
# Two workers, a test file per worker at a time: most tests wait on process start-up,
# TensorFlow tracing or tiny single-threaded models, so two cores run two files at once.
exec .venv/bin/python -m pytest -q -n 2 --dist loadfile "$@"
