"""Tiny PlaNet models and synthetic episodes for fast tests."""

from __future__ import annotations

import os

import numpy as np
import pytest

from wm_tf.onednn import prefer_onednn

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
prefer_onednn()  # test modules import TensorFlow before the plugin, so set it here

from wm_core.data import npz  # noqa: E402
from wm_core.planning import planners  # noqa: E402
from wm_core.rollout import simulate  # noqa: E402
from wm_core.tasks.toy import PointTask  # noqa: E402

#: A model small enough that a train step takes milliseconds (64×64 frames).
TINY = dict(
    deter_size=16, stoch_size=4, hidden_size=16, embed_size=32, depth=4,
    reward_units=16, reward_layers=1,
)


def _point_episodes(task: PointTask, count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Random-action episodes of the moving-bar toy task (``length + 1`` rows each)."""
    episodes, _, _ = simulate.simulate(task, planners.Random(task, seed=seed), count, seed=seed)
    return episodes


@pytest.fixture
def tiny_sizes() -> dict[str, int]:
    """The :data:`TINY` model sizes (for subprocesses)."""
    return dict(TINY)


@pytest.fixture(scope="session")  # a stateless factory: module-scoped fixtures may use it
def tiny_model():
    """``tiny_model(task, **overrides)``: a :data:`TINY` RecurrentStateSpaceModel."""
    from wm_planet.model import RecurrentStateSpaceModel

    def make(task, **overrides):
        return RecurrentStateSpaceModel(task=task, **{**TINY, **overrides})

    return make


@pytest.fixture(scope="session")  # a pure function of its arguments
def point_episodes():
    """``point_episodes(task, count, seed=0)``: random-action toy episodes."""
    return _point_episodes


@pytest.fixture
def task() -> PointTask:
    return PointTask(length=20)


@pytest.fixture
def episodes_dir(tmp_path, task) -> str:
    directory = str(tmp_path / "episodes")
    npz.save_dictionaries(_point_episodes(task, 4), directory)
    return directory
