"""wm-cem is found by name through entry points and configured through gin."""

from __future__ import annotations

import gin
import pytest

from wm_core.api import registry
from wm_core.testing import clean_gin_config

from wm_cem import CEM, ICEM, MPPI


@pytest.mark.parametrize("name, planner", [("cem", CEM), ("mppi", MPPI), ("icem", ICEM)])
def test_planners_load_by_entry_point_name(name, planner):
    assert name in registry.available("planners")
    assert registry.load("planners", name) is planner


@pytest.fixture
def clean_gin():
    with clean_gin_config():
        yield


def test_gin_bindings_configure_each_planner(clean_gin, box2_task, target_model, total_reward):
    gin.parse_config("""
        cem.CEM.horizon = 7
        cem.CEM.fraction = 0.2
        mppi.MPPI.temperature = 0.3
        icem.ICEM.beta = 1.5
    """)
    parts = dict(task=box2_task, objective_fn=total_reward, **target_model([[0, 0]]).parts(), proposals=10)
    cem = CEM(**parts)
    assert (cem.horizon, cem.elite_count, cem.iterations) == (7, 2, 10)
    assert MPPI(**parts).temperature == 0.3
    assert ICEM(**parts).beta == 1.5
