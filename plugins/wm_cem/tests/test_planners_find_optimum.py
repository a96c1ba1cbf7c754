"""CEM, MPPI and iCEM reach the known optimum of a fake world model.

The fake model's reward at step ``j`` is ``-|action_j - target_j|^2`` (or 1 for
the target's one-hot action), so the best plan is ``target`` itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from wm_cem import CEM, ICEM, MPPI

# Horizon 5, two action dims inside Box([-1, -2], [1, 2]), away from the middle.
TARGET = np.array(
    [[0.6, -1.5], [-0.8, 1.0], [0.3, 1.7], [0.9, -0.4], [-0.5, -1.2]], np.float32
)
TOLERANCE = 0.05  # max |mean - target| over every step and action dim

PLANNERS = {
    "cem": lambda **kw: CEM(**kw, fraction=0.1),
    "mppi": lambda **kw: MPPI(**kw, fraction=0.1, temperature=1.0),
    # iCEM keeps the elite count K fixed while the population decays to 2K:
    # a small K keeps the selection sharp (Pinneri et al. use K=10).
    "icem": lambda **kw: ICEM(**kw, fraction=0.05, beta=0.0),
}


@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_continuous_planner_reaches_the_optimum(name, box2_task, target_model, total_reward, decide_once):
    model = target_model(TARGET)
    planner = PLANNERS[name](
        task=box2_task, objective_fn=total_reward, **model.parts(),
        horizon=5, iterations=10, proposals=400, seed=0,
    )
    action, prediction = decide_once(planner)
    assert np.abs(planner.solution.mean - TARGET).max() < TOLERANCE
    np.testing.assert_allclose(action, TARGET[0], atol=TOLERANCE)
    assert action.dtype == np.float32 and action.shape == (2,)
    assert prediction["reward"].sum() > -0.1  # the best last proposal is near the target too


def test_icem_with_red_noise_reaches_a_smooth_optimum(box2_task, target_model, total_reward, decide_once):
    smooth = np.array([[0.6, -1.5], [0.7, -1.0], [0.8, -0.3], [0.9, 0.4], [0.9, 1.2]], np.float32)
    model = target_model(smooth)
    planner = ICEM(
        task=box2_task, objective_fn=total_reward, **model.parts(),
        horizon=5, iterations=15, proposals=400, fraction=0.05, beta=2.0, seed=0,
    )
    decide_once(planner)
    assert np.abs(planner.solution.mean - smooth).max() < TOLERANCE


def test_optimum_outside_the_bounds_ends_on_the_bound(box2_task, target_model, total_reward, decide_once):
    model = target_model(np.tile([[3.0, -5.0]], (4, 1)))
    planner = CEM(task=box2_task, objective_fn=total_reward, **model.parts(), horizon=4, iterations=8, proposals=300, seed=0)
    action, _ = decide_once(planner)
    np.testing.assert_allclose(action, [1.0, -2.0], atol=0.05)


@pytest.mark.parametrize("name", ["cem", "mppi"])
def test_discrete_planner_finds_the_best_sequence_with_many_elites(name, target_model, total_reward, decide_once):
    import gymnasium as gym

    class Task:
        name = "fake:discrete4"
        action_space = gym.spaces.Discrete(4)

    best = np.array([2, 0, 3, 3, 1, 0])
    model = target_model(np.eye(4, dtype=np.float32)[best], discrete=True)
    planner = PLANNERS[name](
        task=Task(), objective_fn=total_reward, **model.parts(),
        horizon=6, iterations=8, proposals=300, seed=0,
    )
    assert planner.elite_count == 30
    action, prediction = decide_once(planner)
    np.testing.assert_array_equal(planner.solution.probabilities.argmax(-1), best)
    np.testing.assert_array_equal(action, np.eye(4, dtype=np.float32)[best[0]])
    np.testing.assert_array_equal(prediction["reward"], np.ones(6, np.float32))
    for actions, _ in model.calls:  # every proposal a one-hot sequence
        assert actions.shape == (300, 6, 4)
        np.testing.assert_array_equal(actions.sum(-1), 1.0)
