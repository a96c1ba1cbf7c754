#!/usr/bin/env bash
# Set up from nothing (scripts/setup.sh), then run every test: core and plugins.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL="${MUJOCO_GL:-egl}"
# wm uses Keras 2 (tf_keras) only. Without this, `import tensorflow` also loads Keras 3
# for `tf.keras` (~1.2-1.7 s of CPU in each of the suite's ~70 TensorFlow processes).
export TF_USE_LEGACY_KERAS="${TF_USE_LEGACY_KERAS:-1}"
# Two workers, a test file per worker at a time: most tests wait on process start-up,
# TensorFlow tracing or tiny single-threaded models, so two cores run two files at once.
# (A third worker measured 574 and 616 s against 597 and 601 s with two: no clear gain.)
# Files go out in collection order (the root conftest.py puts the few long files
# first), not xdist's default of the files with the most tests first, which left the
# longest single-test files for last and one worker idle at the end.
exec .venv/bin/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder "$@"
