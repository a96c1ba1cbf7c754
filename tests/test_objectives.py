from __future__ import annotations

import numpy as np
import pytest

from wm_core.api.contracts import ContractError
from wm_core.planning.objectives import DiscountedReward, TotalReward
from wm_core.testing import ObjectiveContract


def test_discounted_reward_matches_hand_computed_discounts():
    rewards = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 10.0]], np.float32)
    scores = DiscountedReward(discount=0.5)({"reward": rewards})
    # 1 + 0.5*2 + 0.25*3 = 2.75 ; 0.25 * 10 = 2.5
    np.testing.assert_allclose(scores, [2.75, 2.5])
    assert scores.dtype == np.float32


def test_discount_changes_the_ranking_of_late_rewards():
    rewards = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.2]], np.float32)
    assert np.argmax(DiscountedReward(discount=0.9)({"reward": rewards})) == 0
    assert np.argmax(TotalReward()({"reward": rewards})) == 1


def test_total_reward_is_plain_sum():
    rewards = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(TotalReward()({"reward": rewards}), [3.0, 12.0])


def test_missing_reward_key_names_the_keys():
    with pytest.raises(ContractError, match="no 'reward'.*image"):
        DiscountedReward()({"image": np.zeros((1, 1, 2, 2, 3), np.uint8)})


def test_wrong_reward_rank_is_rejected():
    with pytest.raises(ContractError, match=r"\[proposals, horizon\].*\(4,\)"):
        DiscountedReward()({"reward": np.zeros(4, np.float32)})


@pytest.mark.parametrize("discount", [-0.1, 1.5])
def test_discount_outside_unit_interval_is_rejected(discount):
    with pytest.raises(ValueError, match=str(discount)):
        DiscountedReward(discount=discount)


class TestDiscountedRewardContract(ObjectiveContract):
    @pytest.fixture
    def objective(self):
        return DiscountedReward(0.9)
