"""Fakes for the planner tests: world models whose optimal plan is known."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

from wm_core.planning.objectives import TotalReward
from wm_core.tasks.toy import PointTask


class TargetModel:
    """Reward ``-sum_a (action - target[j])**2`` at step ``j``: best plan = ``target``.

    For one-hot actions, ``target`` ``[H, n]`` is one-hot too and the reward
    is 1 where the action matches, 0 elsewhere.  Records every
    ``predict_fn`` call (actions and predictions) in ``calls``.
    """

    def __init__(self, target: np.ndarray, discrete: bool = False):
        self.target = np.asarray(target, np.float32)
        self.discrete = discrete
        self.calls: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []

    def reset_fn(self, **kwargs: Any) -> dict[str, np.ndarray]:
        return {"steps": np.zeros((), np.int64)}

    def observe_fn(self, frames, actions, rewards, state):
        return {"steps": state["steps"] + len(frames)}

    def predict_fn(self, actions: np.ndarray, state) -> dict[str, np.ndarray]:
        horizon = actions.shape[1]
        target = self.target[:horizon]
        if self.discrete:
            reward = np.einsum("pha,ha->ph", actions, target)
        else:
            reward = -np.square(actions - target).sum(-1)
        predictions = {"reward": reward.astype(np.float32)}
        self.calls.append((actions.copy(), predictions))
        return predictions

    def parts(self) -> dict[str, Callable]:
        return {
            "predict_fn": self.predict_fn,
            "observe_fn": self.observe_fn,
            "reset_fn": self.reset_fn,
        }


def decide(planner) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One decision from a fresh episode (image and reward are ignored by the fakes)."""
    planner.reset(seed=0)
    image = np.zeros((64, 64, 3), np.uint8)
    return planner(image, np.zeros(planner.action_dim, np.float32), 0.0)


@pytest.fixture
def box_task() -> PointTask:
    """``Box(-1, 1, (1,))`` point task (real env, for the contract kit)."""
    return PointTask(discrete=False, length=4)


@pytest.fixture
def discrete_task() -> PointTask:
    """``Discrete(3)`` point task; actions are one-hot ``[3]``."""
    return PointTask(discrete=True, length=4)


@pytest.fixture
def box2_task():
    """A task with ``Box([-1, -2], [1, 2])`` actions (two dims, unequal bounds)."""
    import gymnasium as gym

    class Task:
        name = "fake:box2"
        action_space = gym.spaces.Box(np.array([-1, -2], np.float32), np.array([1, 2], np.float32))

    return Task()


@pytest.fixture
def target_model() -> type[TargetModel]:
    return TargetModel


@pytest.fixture
def decide_once() -> Callable:
    return decide


@pytest.fixture
def total_reward() -> TotalReward:
    return TotalReward()
