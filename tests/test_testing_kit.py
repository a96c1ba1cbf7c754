from __future__ import annotations

import subprocess
import sys

import gin
import numpy as np
import pytest

from wm_core import testing
from wm_core.api.contracts import ContractError, WorldModel
from wm_core.planning.planners import Random
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
        "import sys, wm_core, wm_core.api.registry, wm_core.planning.planners, wm_core.rollout.simulate, "
        "wm_core.planning.objectives, wm_core.testing, wm_core.api.hooks, wm_core.tasks.toy\n"
        "assert 'tensorflow' not in sys.modules, 'wm_core imported tensorflow'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class SeedRewardModel(CountingModel):
    """Reward = the episode seed + the action: states of different episodes differ."""

    def reset(self, seed=0, **kwargs):
        return {"rows": np.zeros(1, np.int64), "seed": np.float32(seed)}

    def observe(self, last_frames, last_actions, last_rewards, state):
        return {"rows": state["rows"] + len(last_frames), "seed": state["seed"]}

    def predict(self, future_actions, state):
        return {"reward": (future_actions.sum(-1) + state["seed"]).astype(np.float32)}


class SwappedBatchModel(SeedRewardModel):
    """A batched form that answers for the states in the wrong order."""

    def predict_batch(self, future_actions, states):
        return super().predict_batch(future_actions, list(states)[::-1])


class NoisyModel(SeedRewardModel):
    def predict(self, future_actions, state):
        noise = np.random.default_rng().normal(size=future_actions.shape[:2]).astype(np.float32)
        return {"reward": super().predict(future_actions, state)["reward"] + noise}


def test_the_batched_form_is_compared_with_predict_fn_state_by_state():
    testing.check_world_model(SeedRewardModel(), PointTask())  # the base class's loop
    with pytest.raises(ContractError, match=r"predict_batch_fn row 0 differs from predict_fn\(future_actions\[0\], states\[0\]\): 'reward' at \(0, 0\)"):
        testing.check_world_model(SwappedBatchModel(), PointTask())


def test_a_batched_form_with_wrong_shapes_is_named():
    class FlatBatch(SeedRewardModel):
        def predict_batch(self, future_actions, states):
            return {"reward": np.zeros(future_actions.shape[1:3], np.float32)}

    with pytest.raises(ContractError, match=r"predict_batch_fn returned reward of shape \(4, 3\), expected \[batch, proposals, horizon\] = \(3, 4, 3\)"):
        testing.check_world_model(FlatBatch(), PointTask())


def test_stochastic_models_are_checked_for_shapes_only():
    testing.check_world_model(NoisyModel(), PointTask())  # detected: two predict_fn calls differ
    testing.check_world_model(NoisyModel(), PointTask(), deterministic=False)
    with pytest.raises(ContractError, match="predict_fn gave different predictions for the same actions and state"):
        testing.check_world_model(NoisyModel(), PointTask(), deterministic=True)


def test_a_batched_planner_that_mixes_up_slots_is_caught():
    from wm_core.planning.planners import PlannerPerSlot

    class Mixed(PlannerPerSlot):
        def decide(self, slots, prev_images, prev_actions, prev_rewards):
            actions, predictions = super().decide(slots, prev_images, prev_actions, prev_rewards)
            return actions[::-1].copy(), predictions[::-1]

    class SeededRandom(Random):
        def batched(self, num_slots):
            return Mixed(self, num_slots)

    testing.check_planner(Random(PointTask(), seed=1), PointTask())
    with pytest.raises(ContractError, match=r"batched planner: slot 0 chose \[.*\] at step 0, the planner alone chose"):
        testing.check_planner(SeededRandom(PointTask(), seed=1), PointTask())
    testing.check_planner(SeededRandom(PointTask(), seed=1), PointTask(), deterministic=False)


def test_clean_gin_config_starts_empty_and_clears_a_locked_config():
    gin.parse_config("wm.PointTask.length = 7")  # a binding an earlier test left
    with testing.clean_gin_config():
        assert PointTask().kwargs["length"] == 20  # the default: the binding is gone
        gin.parse_config("wm.PointTask.length = 3")
        assert PointTask().kwargs["length"] == 3
        gin.finalize()  # locked, as wm_core.loops.config.configure leaves it
    assert PointTask().kwargs["length"] == 20
    gin.parse_config("wm.PointTask.length = 5")  # unlocked again
    assert PointTask().kwargs["length"] == 5
    gin.clear_config()
