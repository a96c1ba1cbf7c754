"""A tiny TD-MPC model on the point task, for fast tests."""

from __future__ import annotations

import pytest

from wm_core.tasks.toy import PointTask
from wm_tdmpc.networks import TDMPCModel

#: Small enough to build and train in seconds on a CPU.
TINY = dict(frame_stack=2, channels=8, units=16, layers=1, num_q=2, bins=11, horizon=3)


@pytest.fixture
def task() -> PointTask:
    return PointTask(length=6, size=64, speed=0.3, gauge=True)


@pytest.fixture
def tiny_model():
    """``tiny_model(task, **overrides)`` -> a fresh :class:`TDMPCModel`."""

    def make(task, **overrides) -> TDMPCModel:
        return TDMPCModel(task, **{**TINY, **overrides})

    return make
