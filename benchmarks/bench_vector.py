"""Whole-loop environment steps per second with 1, 2 and 4 environments.

``simulate(..., num_envs=n)`` on DeepMind Control cartpole-swingup from
64×64 pixels (action repeat 8: every step is 8 physics steps and one MuJoCo
render), for

* **random**: the random planner — the loop is render-bound;
* **oracle + CEM**: CEM 50 proposals × 3 iterations, horizon 5, over the
  ground-truth :class:`~wm_core.models.oracle.OracleWorldModel` with
  ``rollout_workers`` left at 0 (the default of ``configs/base/oracle_cem.gin``)
  and CEM given only ``predict_fn`` (its batched form is
  ``batched(predict_fn)``): every slot's rollouts run in the oracle's one
  simulator worker, so planning for ``n`` environments runs one slot after
  the other;
* **oracle + CEM, parallel rollouts**: the same CEM over an oracle with
  ``rollout_workers=n`` and given its ``predict_batch_fn``
  (``OracleWorldModel.predict_batch``), which rolls the slots' proposals out
  in a pool of ``n`` simulator workers at once (what
  ``configs/base/oracle_cem.gin`` does with ``rollout_workers = num_envs``),
  to show what planning in parallel buys (``n = 1``: no pool);
* optionally (``--planet``) a tiny untrained PlaNet + CEM (TensorFlow on the
  CPU; 8-by-16 sizes), its batched predict one TensorFlow call for all slots.

Environments are built once per ``n``, outside the timing (a ``VectorEnv``
for ``n > 1``, the task's own worker for ``n = 1``), and warmed up with one
episode; each timed call collects 4 episodes (random: 63 steps each; the
planners: 5 steps each), so 4 environments run all of them side by side.  The
``n`` are interleaved within every repeat; we print the median steps/s over
the repeats, its ratio to ``n = 1`` measured in the same run, and the CPU
time per step of the whole loop (this process and its workers: what running
``n`` environments costs on top of the work itself) (targets on 2
cores: 4 environments >= 1.6x for random and oracle + CEM), with the
processor's flags (``processor.py``) before and after, and the CPU headroom
before and after: how much more work two busy processes get done than one
at that moment (on a machine other jobs share, the ceiling of any speed-up).

    .venv/bin/python benchmarks/bench_vector.py [--quick] [--planet] [--random-only]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any, Callable


from processor import describe

os.environ.setdefault("MUJOCO_GL", "egl")

NUM_ENVS = (1, 2, 4)
EPISODES = 4
TARGET = 1.6


_SPIN = (
    "import time\n"
    "end, count = time.perf_counter() + {seconds}, 0\n"
    "while time.perf_counter() < end: count += 1\n"
    "print(count)\n"
)


def cpu_headroom(seconds: float = 2.0, processes: int = 2) -> float:
    """How much more ``processes`` busy Python processes get done than one, now.

    The ceiling of any speed-up from several environment workers at this
    moment: 2.0 on two idle cores, ~1.0 when other jobs take the second core.
    """
    import subprocess

    def run(count: int) -> int:
        spinners = [subprocess.Popen([sys.executable, "-c", _SPIN.format(seconds=seconds)],
                                     stdout=subprocess.PIPE, text=True) for _ in range(count)]
        return sum(int(spinner.communicate()[0]) for spinner in spinners)

    return run(processes) / run(1)


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its live children (the workers)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == me or int(fields[1]) == me:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _cem(task: Any, model: Any, **settings: Any):
    """CEM 50x3 h5 over ``model``'s functions (``settings`` override)."""
    from wm_core.planning import objectives
    from wm_cem.cem import CEM

    defaults = dict(horizon=5, iterations=3, proposals=50, fraction=0.1, seed=0)
    return CEM.over(model, task, objectives.DiscountedReward(), **{**defaults, **settings})


def _measure(
    task: Any, planner_for: Callable[[int], Any], repeats: int
) -> tuple[dict[int, list[float]], dict[int, list[float]]]:
    """Steps/s and CPU ms/step (this process and its workers) per ``n`` over
    ``repeats`` rounds, the ``n`` interleaved in each round."""
    from wm_core.rollout.simulate import simulate
    from wm_core.tasks.vector import VectorEnv

    envs = {n: task.create_env() if n == 1 else VectorEnv(task, n) for n in NUM_ENVS}
    rates: dict[int, list[float]] = {n: [] for n in NUM_ENVS}
    cpu: dict[int, list[float]] = {n: [] for n in NUM_ENVS}
    try:
        for n in NUM_ENVS:  # warm-up: GL contexts, imports, caches
            simulate(task, planner_for(n), 1, seed=10_000, env=envs[n], num_envs=n)
        for round_ in range(repeats):
            for n in NUM_ENVS:
                planner = planner_for(n)
                start, cpu_start = time.perf_counter(), _cpu_seconds()
                episodes, _, _ = simulate(task, planner, EPISODES, seed=round_ * EPISODES,
                                          env=envs[n], num_envs=n)
                seconds, cpu_seconds = time.perf_counter() - start, _cpu_seconds() - cpu_start
                steps = sum(len(e["reward"]) - 1 for e in episodes)
                rates[n].append(steps / seconds)
                cpu[n].append(1000 * cpu_seconds / steps)
    finally:
        for env in envs.values():
            env.close()
    return rates, cpu


def _report(
    name: str, measured: tuple[dict[int, list[float]], dict[int, list[float]]], target: float | None
) -> dict[str, float]:
    rates, cpu = measured
    medians = {n: statistics.median(values) for n, values in rates.items()}
    cpu_medians = {n: statistics.median(values) for n, values in cpu.items()}
    parts = [f"{n} env{'s' if n > 1 else ''} {medians[n]:.2f} steps/s ({medians[n] / medians[1]:.2f}x, "
             f"{cpu_medians[n]:.0f} CPU ms/step)" for n in NUM_ENVS]
    goal = f"; target 4 envs >= {target}x" if target else ""
    repeats = len(next(iter(rates.values())))
    print(f"{name}: {', '.join(parts)} (median of {repeats}{goal})", flush=True)
    key = name.split(" (")[0].replace(" + ", "_").replace(", ", "_").replace(" ", "_")
    return {
        f"{key}_ratio_4": medians[4] / medians[1],
        **{f"{key}_steps_per_s_{n}": medians[n] for n in NUM_ENVS},
        **{f"{key}_cpu_ms_per_step_{n}": cpu_medians[n] for n in NUM_ENVS},
    }


def _oracle_cases(repeats: int) -> dict[str, float]:
    from wm_core.models.oracle import OracleWorldModel
    from wm_core.tasks import DeepMindControl

    results: dict[str, float] = {}
    task = DeepMindControl("cartpole", "swingup", action_repeat=8, time_limit=0.4)
    oracle = OracleWorldModel(task)
    try:
        rates = _measure(task, lambda n: _cem(task, oracle, predict_batch_fn=None), repeats)
        results.update(_report("oracle + CEM 50x3 h5 (one rollout worker)", rates, TARGET))
    finally:
        oracle.close()
    # One oracle per n, its pool of n rollout workers started by the warm-up episode.
    oracles = {n: OracleWorldModel(task, rollout_workers=n if n > 1 else 0) for n in NUM_ENVS}
    try:
        rates = _measure(task, lambda n: _cem(task, oracles[n]), repeats)
        results.update(_report("oracle + CEM 50x3 h5, parallel rollouts (rollout_workers = n)", rates, TARGET))
    finally:
        for model in oracles.values():
            model.close()
    return results


def main(quick: bool = False, planet: bool = False, planners: bool = True) -> dict[str, float]:
    from wm_core.planning.planners import Random
    from wm_core.tasks import DeepMindControl

    repeats = 2 if quick else 3
    results: dict[str, float] = {"cpu_headroom_before": cpu_headroom()}
    print(f"CPU headroom: 2 busy processes do {results['cpu_headroom_before']:.2f}x the work of 1 "
          "(the ceiling of a speed-up from several workers right now)", flush=True)

    task = DeepMindControl("cartpole", "swingup", action_repeat=8, time_limit=2.5 if quick else 5.0)
    rates = _measure(task, lambda n: Random(task, seed=0), repeats)
    results.update(_report("random", rates, TARGET))

    if planners:
        results.update(_oracle_cases(repeats))

    if planet:
        from wm_planet.planet import PlaNet, RecurrentStateSpaceModel

        task = DeepMindControl("cartpole", "swingup", action_repeat=8, time_limit=1.0)
        network = RecurrentStateSpaceModel(task=task, deter_size=16, stoch_size=4, hidden_size=16,
                                           embed_size=32, depth=4, reward_units=16, reward_layers=1)
        model = PlaNet(task, model=network)
        rates = _measure(task, lambda n: _cem(task, model, horizon=12, iterations=5, proposals=200), repeats)
        results.update(_report("tiny PlaNet + CEM 200x5 h12 (untrained, CPU)", rates, None))
    results["cpu_headroom_after"] = cpu_headroom()
    print(f"CPU headroom after: {results['cpu_headroom_after']:.2f}x", flush=True)
    return results


if __name__ == "__main__":
    print(describe(), flush=True)
    main(quick="--quick" in sys.argv, planet="--planet" in sys.argv,
         planners="--random-only" not in sys.argv)
    print(describe())
