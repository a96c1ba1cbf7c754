from __future__ import annotations

import numpy as np
import pytest

from wm_core.testing import ObjectiveContract
from wm_example import RewardAbove


class TestRewardAboveContract(ObjectiveContract):
    @pytest.fixture
    def objective(self):
        return RewardAbove(threshold=0.0)


def test_counts_steps_above_the_threshold():
    rewards = np.array([[0.95, 0.5, 0.91], [0.1, 0.2, 0.3]], np.float32)
    np.testing.assert_array_equal(RewardAbove(0.9)({"reward": rewards}), [2.0, 0.0])
