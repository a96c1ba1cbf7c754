"""simulate's episode loop with the random planner vs a raw dm_control loop.

Both run the same number of control steps and 64×64 renders of
cartpole-swingup (action repeat 4), interleaved, several repeats each; we
print the median episodes/s of each and their ratio (target >= 0.95: the
library adds no measurable cost to a real environment).  Environments are
built once, outside the timing: ours renders in its worker process
(``wm_core.tasks.process``), so the ratio includes the pipe round trips.

    .venv/bin/python benchmarks/bench_simulate.py [--quick]
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

from processor import run_script

os.environ.setdefault("MUJOCO_GL", "egl")

ACTION_REPEAT = 4


def _raw_episode(environment, seed: int) -> None:
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


def main(quick: bool = False) -> dict[str, float]:
    from dm_control import suite

    from wm_core.planning.planners import Random
    from wm_core.rollout.simulate import run_episode
    from wm_core.tasks import DeepMindControl

    time_limit, repeats = (2.5, 3) if quick else (10.0, 5)
    raw_env = suite.load("cartpole", "swingup", task_kwargs={"time_limit": time_limit})
    task = DeepMindControl("cartpole", "swingup", action_repeat=ACTION_REPEAT, time_limit=time_limit)
    our_env = task.create_env()
    planner = Random(task, seed=0)
    runners = (
        (lambda seed: _raw_episode(raw_env, seed), []),
        (lambda seed: run_episode(our_env, planner, seed), []),
    )
    for seed in range(repeats + 1):  # the first round warms up the GL contexts
        for runner, times in runners:
            start = time.perf_counter()
            runner(seed)
            times.append(time.perf_counter() - start)
    our_env.close()
    raw, ours = runners[0][1][1:], runners[1][1][1:]
    raw_rate, our_rate = 1 / statistics.median(raw), 1 / statistics.median(ours)
    ratio = our_rate / raw_rate
    print(f"simulate: raw dm_control loop {raw_rate:.3f} episodes/s, simulate(Random) {our_rate:.3f} "
          f"episodes/s (median of {repeats}, {time_limit:g} s episodes): ratio {ratio:.3f} (target >= 0.95)")
    return {"simulate_vs_raw_ratio": ratio}


if __name__ == "__main__":
    run_script(main, __doc__)
