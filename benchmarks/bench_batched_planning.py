"""Planning decisions per second for 1, 2 and 4 environments: batched vs one by one.

A seeded CEM decides for ``n`` environment slots of the point task
(:class:`wm_core.tasks.PointTask`, 64x64 frames), two ways:

* **one by one**: :class:`wm_core.planning.planners.PlannerPerSlot` — a copy of the
  planner per slot, called in turn (``n`` ``predict_fn`` calls per
  iteration): what planning for ``n`` environments costs without batching;
* **batched**: ``batch_planner(cem, n)``, a :class:`wm_cem.search.
  BatchedSearch` — one ``predict_batch_fn`` call per iteration for all
  slots.

World models: the ground-truth oracle (:class:`wm_core.models.oracle.
OracleWorldModel`, whose batched predict is a loop over its one simulator
copy, so batching saves only the planner's own per-call work), and, when
``wm_planet`` imports, a small untrained PlaNet (TensorFlow on the CPU) with
its ``predict_batch_fn`` — one rollout of ``n x P`` proposals — or, if that
PlaNet has none yet, the loop (the line says which).

Only planning is timed: each timed run is ``steps`` decisions of every slot
(the point task's environments step in microseconds, in both variants);
untimed decisions first compile TensorFlow's functions for each batch
shape.  The ``n`` and the two variants are interleaved within every repeat;
we print the median decisions/s (decisions of all slots per second) and its
ratio to one-by-one planning for the same ``n`` measured in the same run,
with the processor's flags (``processor.py``) before and after.

    .venv/bin/python benchmarks/bench_batched_planning.py [--quick] [--no-planet]
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import numpy as np

from processor import describe

NUM_ENVS = (1, 2, 4)


def _run(task: Any, batch: Any, slots: int, steps: int, warmup: int) -> float:
    """Seconds for ``steps`` decisions of all ``slots`` (after ``warmup`` untimed ones)."""
    from wm_core.api import spaces

    envs = [task.create_env() for _ in range(slots)]
    try:
        observations = [env.reset(seed=slot)[0] for slot, env in enumerate(envs)]
        for slot in range(slots):
            batch.reset_slot(slot, seed=slot, episode_index=slot)
        actions = np.zeros((slots, spaces.action_dim(task.action_space)), np.float32)
        rewards = np.zeros(slots, np.float32)
        started = None
        for step in range(warmup + steps):
            if step == warmup:
                started = time.perf_counter()
            actions, _ = batch.decide(
                list(range(slots)), np.stack([o["image"] for o in observations]), actions, rewards
            )
            for slot, env in enumerate(envs):
                observations[slot], rewards[slot], *_ = env.step(
                    spaces.to_env_action(task.action_space, actions[slot])
                )
        return time.perf_counter() - started
    finally:
        for env in envs:
            env.close()


def _measure(task: Any, planner: Any, repeats: int, steps: int, warmup: int) -> dict[tuple[str, int], list[float]]:
    """Decisions per second, ``{(variant, n): [one per repeat]}``."""
    from wm_core.planning.planners import PlannerPerSlot, batch_planner

    makers = {"one by one": PlannerPerSlot, "batched": batch_planner}
    rates: dict[tuple[str, int], list[float]] = {}
    for _ in range(repeats):
        for slots in NUM_ENVS:
            for variant, make in makers.items():
                seconds = _run(task, make(planner, slots), slots, steps, warmup)
                rates.setdefault((variant, slots), []).append(slots * steps / seconds)
    return rates


def _report(name: str, rates: dict[tuple[str, int], list[float]], repeats: int) -> dict[str, float]:
    medians = {key: statistics.median(values) for key, values in rates.items()}
    print(f"{name} (median of {repeats}; decisions/s, all slots together):", flush=True)
    results = {}
    for slots in NUM_ENVS:
        alone, together = medians[("one by one", slots)], medians[("batched", slots)]
        print(
            f"  {slots} env{'s' if slots > 1 else ' '}: one by one {alone:7.2f}, batched {together:7.2f} "
            f"({together / alone:.2f}x one by one; {together / medians[('one by one', 1)]:.2f}x one env)",
            flush=True,
        )
        results[f"batched_ratio_{slots}"] = together / alone
    return results


def main(quick: bool = False, planet: bool = True) -> dict[str, dict[str, float]]:
    from wm_cem.cem import CEM
    from wm_core.models.oracle import OracleWorldModel
    from wm_core.planning.objectives import DiscountedReward
    from wm_core.tasks.toy import PointTask

    repeats, steps, warmup = (3, 4, 1) if quick else (5, 8, 2)
    results = {}
    task = PointTask(length=100)
    oracle = OracleWorldModel(task)
    sizes = dict(horizon=8, iterations=3, proposals=100) if quick else dict(horizon=12, iterations=5, proposals=200)
    label = f"{sizes['proposals']}x{sizes['iterations']} h{sizes['horizon']}"
    settings = dict(fraction=0.1, seed=0, **sizes)
    try:
        planner = CEM.over(oracle, task, DiscountedReward(), **settings)
        results["oracle"] = _report(f"oracle + CEM {label}, point task (the oracle's batched predict is a loop)",
                                    _measure(task, planner, repeats, steps, warmup), repeats)
    finally:
        oracle.close()

    if planet:
        try:
            from wm_planet.planet import PlaNet, RecurrentStateSpaceModel
        except ImportError as error:
            print(f"PlaNet: skipped, wm_planet does not import ({error})", flush=True)
            return results
        network = RecurrentStateSpaceModel(task=task, deter_size=32, stoch_size=8, hidden_size=32,
                                           embed_size=64, depth=8, reward_units=32, reward_layers=1)
        model = PlaNet(task, model=network)
        own = "predict_batch" in vars(model) or type(model).predict_batch is not _base_predict_batch()
        how = "its predict_batch_fn, one rollout of n x P" if own else "NO predict_batch yet: the loop"
        planner = CEM.over(model, task, DiscountedReward(), **settings)
        results["planet"] = _report(f"small PlaNet + CEM {label}, point task (untrained, CPU; {how})",
                                    _measure(task, planner, repeats, steps, warmup), repeats)
    return results


def _base_predict_batch() -> Any:
    from wm_core.api.contracts import WorldModel

    return WorldModel.predict_batch


if __name__ == "__main__":
    print(describe(), flush=True)
    main(quick="--quick" in sys.argv, planet="--no-planet" not in sys.argv)
    print(describe(), flush=True)
