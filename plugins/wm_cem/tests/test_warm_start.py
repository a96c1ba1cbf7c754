"""Warm start: the next decision starts from the previous solution, shifted one step."""

from __future__ import annotations

import numpy as np

from wm_cem import CEM, ICEM


def test_warm_start_shifts_the_previous_mean(box2_task, target_model, total_reward, decide_once):
    model = target_model(np.array([[0.5, 1.0], [-0.5, -1.0], [0.25, 0.5]], np.float32))
    planner = CEM(task=box2_task, objective_fn=total_reward, **model.parts(),
                  horizon=3, iterations=3, proposals=50, warm_start=True, seed=0)
    decide_once(planner)
    solution = planner.solution
    start = planner.start()
    np.testing.assert_array_equal(start.mean[:2], solution.mean[1:])
    np.testing.assert_array_equal(start.mean[2], [0.0, 0.0])  # middle of the bounds
    np.testing.assert_array_equal(start.stdev, planner.initial.stdev)


def test_without_warm_start_every_decision_starts_fresh(box2_task, target_model, total_reward, decide_once):
    model = target_model(np.ones((3, 2), np.float32))
    planner = CEM(task=box2_task, objective_fn=total_reward, **model.parts(),
                  horizon=3, iterations=2, proposals=50, seed=0)
    decide_once(planner)
    assert planner.start() is planner.initial


def test_reset_forgets_the_previous_episode(box2_task, target_model, total_reward, decide_once):
    model = target_model(np.ones((3, 2), np.float32))
    planner = ICEM(task=box2_task, objective_fn=total_reward, **model.parts(),
                   horizon=3, iterations=2, proposals=50, seed=0)
    decide_once(planner)
    planner.reset(seed=1)
    assert planner.start() is planner.initial and planner.kept_elites is None
