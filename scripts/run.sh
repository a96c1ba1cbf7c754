#!/usr/bin/env bash
# Set up from nothing (scripts/setup.sh), then run the main job: a small
# PlaNet + CEM experiment that learns from pixels (point task) on a 2-core CPU.
# Extra arguments go to wm-run (e.g. --gin_param 'wm.train_eval_loop.num_iterations=2').
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL="${MUJOCO_GL:-egl}"
.venv/bin/wm-run --gin_file configs/planet_cem_point_cpu.gin --output_dir runs/main "$@"
echo "TensorBoard: .venv/bin/tensorboard --logdir runs/main/summaries"
