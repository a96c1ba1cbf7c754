"""A short PlaNet training run's loss curve, to compare code versions (same data, same seed).

    .venv/bin/python benchmarks/loss_curve.py [--steps 200] [--every 20] [--seed 0] [--data DIR]

Trains the README's CPU-sized model (configs/planet_cem_cartpole_swingup_cpu.gin:
deter 64, stoch 16, hidden 64, embed 256, depth 16; batch 16 x 25, Adam 1e-3,
sampled latents and dequantisation noise as published) on random-policy
episodes of the toy task (``wm_core.tasks.toy.PointTask``, 24 episodes of 50 steps,
written to ``--data`` once and reused, so two code versions train on the
same chunks), and prints the mean of each metric over every ``--every``
steps, and the wall time per step.  Run it on two versions of the code
(e.g. a ``git worktree`` of the old commit on ``PYTHONPATH``): both start
from the same initial weights (``--seed`` seeds them).  Compare
the columns; a change that keeps the maths (up to float rounding) gives the
same curve within seed-to-seed noise (run a second ``--seed`` for that
scale).  ``--keras-layers`` computes the conv layers with the Keras layers
instead of the fast formulations (``wm_planet.networks``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from wm_tf.onednn import prefer_onednn

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
prefer_onednn()  # as the plugins ask for when imported first (wm_tf.onednn)

import numpy as np  # noqa: E402
import tf_keras  # noqa: E402

from processor import describe  # noqa: E402
from wm_core.data import npz, sampling  # noqa: E402
from wm_core.planning import planners  # noqa: E402
from wm_core.rollout import simulate  # noqa: E402
from wm_core.tasks.toy import PointTask  # noqa: E402
from wm_planet.model import RecurrentStateSpaceModel  # noqa: E402
from wm_planet.training import Trainer  # noqa: E402

CPU_SIZES = dict(deter_size=64, stoch_size=16, hidden_size=64, embed_size=256, depth=16, reward_units=64)
BATCH, DURATION, EPISODES, LENGTH = 16, 25, 24, 50


def episodes(directory: str) -> str:
    """Random-policy toy episodes in ``directory`` (written once, seed 0)."""
    if not os.path.isdir(directory) or not npz.episode_paths(directory):
        task = PointTask(length=LENGTH)
        data, _, _ = simulate.simulate(task, planners.Random(task, seed=0), EPISODES, seed=0)
        npz.save_dictionaries(data, directory)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "wm_loss_curve_episodes"))
    parser.add_argument("--keras-layers", action="store_true")
    parser.add_argument("--json", help="also write the curve here")
    args = parser.parse_args()
    print(describe(), flush=True)
    chunks = sampling.ChunkIterator(episodes(args.data), BATCH, DURATION, seed=args.seed)
    tf_keras.utils.set_random_seed(args.seed)  # the initial weights (Python, NumPy and TF seeds)
    model = RecurrentStateSpaceModel(task=PointTask(length=LENGTH), seed=args.seed, **CPU_SIZES)
    model.encoder.fast = model.decoder.fast = not args.keras_layers
    curve, window, times = [], [], []
    with tempfile.TemporaryDirectory() as model_dir:
        trainer = Trainer(model, model_dir)
        for step in range(1, args.steps + 1):
            batch = next(chunks)
            start = time.perf_counter()
            window.append(trainer.train_step(batch))
            times.append(time.perf_counter() - start)
            if step % args.every == 0:
                means = {key: float(np.mean([m[key] for m in window])) for key in window[0]}
                curve.append({"step": step, **means})
                print(f"steps {step - args.every + 1:4d}-{step:4d}: " + ", ".join(
                    f"{key} {value:.2f}" for key, value in means.items()), flush=True)
                window = []
    print(f"median step {np.median(times[1:]) * 1e3:.0f} ms (first step {times[0]:.1f} s)")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(curve, file)


if __name__ == "__main__":
    main()
