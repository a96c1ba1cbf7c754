#!/usr/bin/env bash
# Set up from nothing (scripts/setup.sh), then run every test: core and plugins.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL="${MUJOCO_GL:-egl}"
# Three workers, a test file per worker at a time: most tests wait on process start-up,
# TensorFlow tracing or tiny single-threaded models, and with two workers the two cores
# were busy 1.87 of 2 on average; a third fills the waits (2 AVX2 cores, same tree:
# 601 s with 2 workers, 574 s with 3).
# Files go out in collection order (pyproject's testpaths: the plugins' few long files
# first), not xdist's default of the files with the most tests first, which left the
# longest single-test files for last and one worker idle at the end.
exec .venv/bin/python -m pytest -q -n 3 --dist loadfile --no-loadscope-reorder "$@"
