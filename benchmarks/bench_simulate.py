"""simulate() with the random planner vs a raw dm_control step-and-render loop.

Both run the same number of control steps and 64×64 renders of
cartpole-swingup (action repeat 4), interleaved, several repeats each; we
print the median episodes/s of each and their ratio (target >= 0.95: the
library adds no measurable cost to a real environment).

    .venv/bin/python benchmarks/bench_simulate.py [--quick]
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

ACTION_REPEAT = 4


def _raw_episode(time_limit: float, seed: int) -> None:
    from dm_control import suite

    environment = suite.load("cartpole", "swingup", task_kwargs={"random": seed, "time_limit": time_limit})
    spec = environment.action_spec()
    rng = np.random.default_rng(seed)
    step = environment.reset()
    frames = [environment.physics.render(64, 64, camera_id=0)]
    while not step.last():
        action = rng.uniform(spec.minimum, spec.maximum)
        for _ in range(ACTION_REPEAT):
            step = environment.step(action)
            if step.last():
                break
        frames.append(environment.physics.render(64, 64, camera_id=0))
    environment.close()


def _simulate_episode(time_limit: float, seed: int) -> None:
    from wm_core.planners import Random
    from wm_core.simulate import simulate
    from wm_core.tasks import DeepMindControl

    task = DeepMindControl("cartpole", "swingup", action_repeat=ACTION_REPEAT, time_limit=time_limit)
    simulate(task, Random(task, seed=seed), num_episodes=1, seed=seed)


def main(quick: bool = False) -> dict[str, float]:
    time_limit, repeats = (2.5, 3) if quick else (10.0, 5)
    raw, ours = [], []
    _simulate_episode(0.1, 0)  # warm up imports and the GL context
    _raw_episode(0.1, 0)
    for repeat in range(repeats):
        for runner, times in ((_raw_episode, raw), (_simulate_episode, ours)):
            start = time.perf_counter()
            runner(time_limit, repeat)
            times.append(time.perf_counter() - start)
    raw_rate, our_rate = 1 / statistics.median(raw), 1 / statistics.median(ours)
    ratio = our_rate / raw_rate
    print(f"simulate: raw dm_control loop {raw_rate:.3f} episodes/s, simulate(Random) {our_rate:.3f} "
          f"episodes/s (median of {repeats}, {time_limit:g} s episodes): ratio {ratio:.3f} (target >= 0.95)")
    return {"simulate_vs_raw_ratio": ratio}


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
