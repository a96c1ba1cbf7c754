"""Planner overhead per decision at PlaNet settings, against a PlaNet-sized model.

Measures, in the same run and process:

* **planner overhead**: one decision of CEM / MPPI / iCEM (horizon 12,
  10 iterations, 1000 proposals, top 100, action dim 6) with a trivial
  ``predict_fn`` that returns zero rewards — sampling, objective, elite
  selection, refits and the shape checks, i.e. everything but the model;
* **model time**: one call of a PlaNet-sized ``predict_fn`` stand-in on the
  same ``[1000, 12, 6]`` proposals (NumPy float32, see :func:`planet_stand_in`).

It prints medians over repeats and ``overhead = planner / (10 × predict)``,
the planner's share of a decision's model time (target: <= 5 %).

Run: ``python benchmarks/bench_planner.py [--quick]``.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import gymnasium as gym
import numpy as np

from wm_core.planning.objectives import DiscountedReward

from wm_cem import CEM, ICEM, MPPI

from processor import run_script

HORIZON, ITERATIONS, PROPOSALS, FRACTION, ACTION_DIM = 12, 10, 1000, 0.1, 6
DETERMINISTIC, STOCHASTIC, HIDDEN = 200, 30, 200


class _Task:
    name = "bench:box6"
    action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)


def planet_stand_in(seed: int = 0) -> Callable:
    """A ``predict_fn`` with the arithmetic of PlaNet's RSSM imagination.

    Per proposal and step: ``[stochastic 30 + action 6] -> dense 200`` (ReLU),
    a GRU cell of 200 units on that input, the prior ``200 -> dense 200 ->
    60`` (mean and stdev of a 30-d Gaussian, sampled), and the reward head
    ``[deterministic 200 + stochastic 30 = 230] -> 200 -> 200 -> 1``.
    About 0.39 M multiply-adds per proposal-step, 4.6 G per call at
    ``[1000, 12, 6]``.  Random float32 weights; the outputs are meaningless.
    """
    rng = np.random.default_rng(seed)

    def dense(inputs: int, outputs: int) -> np.ndarray:
        return (rng.standard_normal((inputs, outputs)) / np.sqrt(inputs)).astype(np.float32)

    embed = dense(STOCHASTIC + ACTION_DIM, HIDDEN)
    gates = dense(HIDDEN + DETERMINISTIC, 3 * DETERMINISTIC)
    prior_hidden, prior_out = dense(DETERMINISTIC, HIDDEN), dense(HIDDEN, 2 * STOCHASTIC)
    reward_1 = dense(DETERMINISTIC + STOCHASTIC, HIDDEN)
    reward_2, reward_out = dense(HIDDEN, HIDDEN), dense(HIDDEN, 1)

    def sigmoid(x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-x))

    def predict_fn(actions: np.ndarray, state) -> dict[str, np.ndarray]:
        proposals, horizon, _ = actions.shape
        deterministic = np.zeros((proposals, DETERMINISTIC), np.float32)
        stochastic = np.zeros((proposals, STOCHASTIC), np.float32)
        rewards = np.empty((proposals, horizon), np.float32)
        for step in range(horizon):
            hidden = np.maximum(np.concatenate([stochastic, actions[:, step]], 1) @ embed, 0)
            reset, update, candidate = np.split(
                np.concatenate([hidden, deterministic], 1) @ gates, 3, axis=1
            )
            candidate = np.tanh(sigmoid(reset) * candidate)
            update = sigmoid(update)
            deterministic = update * candidate + (1 - update) * deterministic
            mean, stdev = np.split(np.maximum(deterministic @ prior_hidden, 0) @ prior_out, 2, axis=1)
            noise = rng.standard_normal(mean.shape, dtype=np.float32)
            stochastic = mean + np.logaddexp(0, stdev) * noise
            features = np.concatenate([deterministic, stochastic], 1)
            head = np.maximum(np.maximum(features @ reward_1, 0) @ reward_2, 0)
            rewards[:, step] = (head @ reward_out)[:, 0]
        return {"reward": rewards}

    return predict_fn


PLANNERS = {"CEM": CEM, "MPPI": MPPI, "ICEM": ICEM}


def _zero_predict(actions: np.ndarray, state) -> dict[str, np.ndarray]:
    return {"reward": np.zeros(actions.shape[:2], np.float32)}


def _seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _decision(planner_class: type) -> Callable[[], object]:
    planner = planner_class(
        predict_fn=_zero_predict,
        observe_fn=lambda frames, actions, rewards, state: state,
        reset_fn=lambda **kwargs: None,
        task=_Task(),
        objective_fn=DiscountedReward(),
        horizon=HORIZON,
        iterations=ITERATIONS,
        proposals=PROPOSALS,
        fraction=FRACTION,
        seed=0,
    )
    planner.reset(seed=0)
    return lambda: planner.plan(planner.state)


def main(quick: bool = False) -> dict[str, float]:
    """Print and return the medians (seconds) and overhead fractions.

    Each repeat times one predict call and one decision of every planner,
    interleaved, so that a busy machine slows all of them alike.
    """
    repeats = 3 if quick else 9
    proposals = np.random.default_rng(0).uniform(
        -1, 1, (PROPOSALS, HORIZON, ACTION_DIM)
    ).astype(np.float32)
    predict_fn = planet_stand_in()
    runs = {"predict": lambda: predict_fn(proposals, None)}
    runs.update({name: _decision(planner) for name, planner in PLANNERS.items()})
    for run in runs.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(_seconds(run))
    medians = {name: statistics.median(values) for name, values in times.items()}
    model_per_decision = ITERATIONS * medians["predict"]
    results = {"predict_call_s": medians["predict"], "model_per_decision_s": model_per_decision}
    print(
        f"settings: horizon {HORIZON}, {ITERATIONS} iterations, {PROPOSALS} proposals, "
        f"top {int(FRACTION * PROPOSALS)}, action dim {ACTION_DIM}; medians of {repeats} repeats"
    )
    print(f"PlaNet-sized predict stand-in: {medians['predict'] * 1e3:8.1f} ms per call, "
          f"{model_per_decision * 1e3:8.1f} ms per decision ({ITERATIONS} calls)")
    for name in PLANNERS:
        overhead = medians[name]
        fraction = overhead / model_per_decision
        results[f"{name.lower()}_overhead_s"] = overhead
        results[f"{name.lower()}_overhead_fraction"] = fraction
        print(f"{name:5s} planner overhead:  {overhead * 1e3:8.1f} ms per decision "
              f"= {100 * fraction:5.2f} % of model time (target <= 5 %)")
    return results


if __name__ == "__main__":
    run_script(main, __doc__, "fewer repeats")
