"""Run as a script: save random-action cartpole-swingup episodes (action repeat 8).

``python cartpole_episodes.py DIRECTORY COUNT SEED``.  A separate process
because MuJoCo's Mesa renderer (llvmpipe) and TensorFlow both bundle LLVM
and crash when loaded into one process; this one never imports TensorFlow.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")

from wm_core import npz, planners, simulate, tasks  # noqa: E402


def main(directory: str, count: int, seed: int) -> None:
    task = tasks.DeepMindControl("cartpole", "swingup", action_repeat=8)
    episodes, _, _ = simulate.simulate(task, planners.Random(task, seed=seed), count, seed=seed)
    npz.save_dictionaries(episodes, directory)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
