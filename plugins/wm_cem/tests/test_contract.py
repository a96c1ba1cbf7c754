"""Each planner honours the planner contract of :mod:`wm_core.testing`."""

from __future__ import annotations

import numpy as np
import pytest

from wm_core.testing import PlannerContract

from wm_cem import CEM, ICEM, MPPI

SETTINGS = dict(horizon=4, iterations=3, proposals=40, seed=0)


@pytest.fixture
def model(target_model, task):
    size = task.action_space.n if hasattr(task.action_space, "n") else 1
    discrete = hasattr(task.action_space, "n")
    target = np.eye(size, dtype=np.float32)[[0, 2, 1, 0]] if discrete else np.full((4, 1), 0.3, np.float32)
    return target_model(target, discrete=discrete)


class TestCEMOnBoxActions(PlannerContract):
    @pytest.fixture
    def task(self, box_task):
        return box_task

    @pytest.fixture
    def planner(self, task, model, total_reward):
        return CEM(task=task, objective_fn=total_reward, **model.parts(), **SETTINGS)


class TestCEMOnDiscreteActions(PlannerContract):
    @pytest.fixture
    def task(self, discrete_task):
        return discrete_task

    @pytest.fixture
    def planner(self, task, model, total_reward):
        return CEM(task=task, objective_fn=total_reward, **model.parts(), fraction=0.25, warm_start=True, **SETTINGS)


class TestMPPIOnBoxActions(PlannerContract):
    @pytest.fixture
    def task(self, box_task):
        return box_task

    @pytest.fixture
    def planner(self, task, model, total_reward):
        return MPPI(task=task, objective_fn=total_reward, **model.parts(), fraction=1.0, **SETTINGS)


class TestMPPIOnDiscreteActions(PlannerContract):
    @pytest.fixture
    def task(self, discrete_task):
        return discrete_task

    @pytest.fixture
    def planner(self, task, model, total_reward):
        return MPPI(task=task, objective_fn=total_reward, **model.parts(), **SETTINGS)


class TestICEMOnBoxActions(PlannerContract):
    @pytest.fixture
    def task(self, box_task):
        return box_task

    @pytest.fixture
    def planner(self, task, model, total_reward):
        return ICEM(task=task, objective_fn=total_reward, **model.parts(), fraction=0.25, **SETTINGS)
