from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from wm_core import testing
from wm_core.contracts import ContractError, WorldModel
from wm_core.planners import Random
from wm_core.tasks.toy import PointTask


class CountingModel(WorldModel):
    """Counts observed rows; predicts zero rewards."""

    def reset(self, **kwargs):
        return {"rows": np.zeros(1, np.int64)}

    def observe(self, last_frames, last_actions, last_rewards, state):
        return {"rows": state["rows"] + len(last_frames)}

    def predict(self, future_actions, state):
        return {"reward": np.zeros(future_actions.shape[:2], np.float32)}


class MutatingModel(CountingModel):
    def predict(self, future_actions, state):
        state["rows"] += 1
        return super().predict(future_actions, state)


class InPlaceObserveModel(CountingModel):
    def observe(self, last_frames, last_actions, last_rewards, state):
        state["rows"] += len(last_frames)
        return state


class FlatRewardModel(CountingModel):
    def predict(self, future_actions, state):
        return {"reward": np.zeros(len(future_actions), np.float32)}


def test_a_correct_model_passes():
    testing.check_world_model(CountingModel(), PointTask())


@pytest.mark.parametrize("model, message", [
    (MutatingModel(), r"predict_fn mutated state\['rows'\]"),
    (InPlaceObserveModel(), r"observe_fn mutated state\['rows'\]"),
    (FlatRewardModel(), r"predict_fn returned reward of shape \(4,\), expected \[proposals, horizon\] = \(4, 3\)"),
])
def test_contract_violations_are_named(model, message):
    with pytest.raises(ContractError, match=message):
        testing.check_world_model(model, PointTask())


def test_planner_with_wrong_dtype_is_caught():
    class Float64Planner(Random):
        def __call__(self, *args):
            return np.zeros(1), None

    with pytest.raises(ContractError, match="action must be float32 \\[1\\], got ndarray float64"):
        testing.check_planner(Float64Planner(PointTask()), PointTask())


def test_objective_with_wrong_shape_is_caught():
    with pytest.raises(ContractError, match=r"objective_fn returned scores of shape \(5, 4\), expected \[proposals\] = \(5,\)"):
        testing.check_objective(lambda predictions: predictions["reward"])


def test_toy_task_passes_the_task_contract():
    testing.check_task(PointTask())
    testing.check_task(PointTask(discrete=True))


def test_core_imports_without_tensorflow():
    code = (
        "import sys, wm_core, wm_core.registry, wm_core.planners, wm_core.simulate, "
        "wm_core.objectives, wm_core.testing, wm_core.hooks, wm_core.tasks.toy\n"
        "assert 'tensorflow' not in sys.modules, 'wm_core imported tensorflow'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
