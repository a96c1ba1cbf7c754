"""wm_core.models.base: the checks, the checkpoint pick-up and the batched default a model plugin inherits."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import numpy as np
import pytest

from wm_core.api.contracts import ContractError
from wm_core.models.base import ArraySpec, CheckpointPoller, WorldModelBase, check_state, temporary_model_dir
from wm_core.tasks.toy import PointTask
from wm_core.testing import check_world_model


class Counter(WorldModelBase):
    """State: the frames seen, ``count int64 []``; predicts reward ``count + sum of actions so far``."""

    def __init__(self, model_dir: str | None = None):
        self.action_dim, self.frame_shape, self.model_dir = 1, (64, 64, 3), model_dir
        self.restored: list[str] = []

    def state_spec(self):
        return {"count": ArraySpec((), np.int64)}

    def initial_state(self, **kwargs):
        return {"count": np.int64(0)}

    def update_state(self, frames, actions, rewards, state):
        return {"count": np.int64(state["count"] + len(frames))}

    def rollout(self, future_actions, state):
        return {"reward": (state["count"] + np.cumsum(future_actions[..., 0], axis=1)).astype(np.float32)}

    def restore_checkpoint(self, directory):
        self.restored.append(directory)


def rows(count: int = 1):
    return np.zeros((count, 64, 64, 3), np.uint8), np.zeros((count, 1), np.float32), np.zeros(count, np.float32)


def test_a_minimal_plugin_honours_the_contract_with_the_default_batched_predict():
    check_world_model(Counter(), PointTask(), deterministic=True)


def test_predict_batch_stacks_one_rollout_per_state_by_default():
    model = Counter()
    states = [{"count": np.int64(2)}, {"count": np.int64(5)}]
    actions = np.ones((2, 1, 3, 1), np.float32)
    np.testing.assert_array_equal(model.predict_batch_fn(actions, states)["reward"], [[[3, 4, 5]], [[6, 7, 8]]])


def test_state_checks_name_the_model_the_function_and_the_entry():
    model = Counter()
    message = r"Counter predict_fn: state\['count'\] is float64 \(\), expected int64 \[\]"
    with pytest.raises(ContractError, match=message):
        model.predict_fn(np.zeros((1, 1, 1), np.float32), {"count": np.float64(0)})
    message = r"Counter observe_fn: the state must be a dict with keys \['count'\], got \['n'\]"
    with pytest.raises(ContractError, match=message):
        model.observe_fn(*rows(), {"n": np.int64(0)})
    with pytest.raises(ContractError, match=r"Counter predict_batch_fn \(state 1\)"):
        model.predict_batch_fn(np.zeros((2, 1, 1, 1), np.float32), [{"count": np.int64(0)}, {}])


def test_argument_checks_come_before_the_plugin_sees_anything():
    model = Counter()
    state = model.reset_fn(seed=0)
    with pytest.raises(ContractError, match=r"Counter observe_fn: last_frames has frames of shape \(32, 32, 3\)"):
        model.observe_fn(np.zeros((1, 32, 32, 3), np.uint8), *rows()[1:], state)
    with pytest.raises(ContractError, match=r"Counter predict_fn: future_actions has shape \(0, 3, 1\)"):
        model.predict_fn(np.zeros((0, 3, 1), np.float32), state)
    with pytest.raises(ContractError, match="2 rows of proposals but 1 states"):
        model.predict_batch_fn(np.zeros((2, 1, 1, 1), np.float32), [state])


def test_reset_checks_the_plugins_initial_state():
    model = Counter()
    model.initial_state = lambda **kwargs: {"count": np.int32(0)}
    with pytest.raises(ContractError, match=r"Counter reset_fn \(its initial_state\): state\['count'\] is int32"):
        model.reset_fn(seed=0)


def test_observe_restores_once_per_new_checkpoint(tmp_path):
    model = Counter(str(tmp_path))
    state = model.reset_fn(seed=0)
    model.observe_fn(*rows(), state)
    assert model.restored == []  # no checkpoint file yet
    (tmp_path / "checkpoint").write_text("one")
    model.observe_fn(*rows(), state)
    model.observe_fn(*rows(), state)
    assert model.restored == [str(tmp_path)]
    (tmp_path / "checkpoint.tmp").write_text("two!")
    os.replace(tmp_path / "checkpoint.tmp", tmp_path / "checkpoint")  # how savers replace it
    model.observe_fn(*rows(), state)
    assert model.restored == [str(tmp_path)] * 2


def test_poller_sees_a_replaced_file_and_ignores_an_unchanged_one(tmp_path):
    path = str(tmp_path / "state")
    poller = CheckpointPoller()
    assert not poller.changed(path)
    (tmp_path / "state").write_text("a")
    assert poller.changed(path) and not poller.changed(path)


def test_check_state_allows_any_size_where_the_spec_says_none():
    spec = {"image": ArraySpec((None, 2), np.uint8)}
    assert check_state({"image": np.zeros((5, 2), np.uint8)}, spec)["image"].shape == (5, 2)
    with pytest.raises(ContractError, match=r"expected uint8 \[\?, 2\]"):
        check_state({"image": np.zeros((5, 3), np.uint8)}, spec)


def test_a_temporary_model_dir_goes_with_its_owner():
    owner = Counter()
    path = temporary_model_dir(owner, "wm-test-")
    open(os.path.join(path, "checkpoint"), "w").close()
    assert os.path.basename(path).startswith("wm-test-") and os.listdir(path) == ["checkpoint"]
    del owner
    gc.collect()
    assert not os.path.exists(path)


def test_a_temporary_model_dir_goes_when_the_interpreter_exits():
    script = ("from wm_core.models.base import temporary_model_dir\n"
              "class Owner: pass\n"
              "owner = Owner()\n"
              "print(temporary_model_dir(owner, 'wm-test-'))\n")
    path = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip()
    assert os.path.basename(path).startswith("wm-test-") and not os.path.exists(path)
