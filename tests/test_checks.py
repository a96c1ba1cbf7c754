"""The contract checks of ``wm_core.api.checks``: what passes, what they convert,
and what their messages say."""

from __future__ import annotations

import re

import numpy as np
import pytest

from wm_core.api import checks
from wm_core.api.contracts import ContractError


def episode(steps=3, **changes):
    data = {
        "image": np.zeros((steps + 1, 8, 8, 3), np.uint8),
        "action": np.zeros((steps + 1, 2), np.float32),
        "reward": np.zeros(steps + 1, np.float32),
    }
    data.update(changes)
    return data


def test_check_episode_returns_the_steps_and_names_what_is_wrong():
    assert checks.check_episode(episode(3)) == 3
    assert checks.check_episode(episode(0)) == 0
    with pytest.raises(ContractError, match=r"episode 2 key 'action' must be float32 with 2 dims, got float64 \(4, 2\)"):
        checks.check_episode(episode(action=np.zeros((4, 2))), "episode 2")
    with pytest.raises(ContractError, match=r"key 'discount' has 3 rows but 'image' has 4"):
        checks.check_episode(episode(discount=np.ones(3, np.float32)))
    with pytest.raises(ContractError, match=r"lacks key\(s\) \['reward'\]"):
        checks.check_episode({k: v for k, v in episode().items() if k != "reward"})
    with pytest.raises(ContractError, match="has no rows"):
        checks.check_episode(episode(-1))


def test_check_observe_args_converts_to_the_contract_dtypes():
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    got = checks.check_observe_args(frames, np.zeros((2, 1)), [0, 1.5], action_dim=1, frame_shape=(8, 8, 3))
    assert [array.dtype for array in got] == [np.uint8, np.float32, np.float32]
    assert got[2].tolist() == [0.0, 1.5]


@pytest.mark.parametrize("frames, actions, rewards, message", [
    (np.zeros((2, 8, 8, 3), np.float32), np.zeros((2, 1)), np.zeros(2),
     r"M.observe: last_frames must be uint8 \[T, H, W, C\], got float32 \(2, 8, 8, 3\)"),
    (np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 3)), np.zeros(2),
     r"M.observe: last_actions has shape \(2, 3\) \(float64\), expected float32 \[T, A\] with A = 1"),
    (np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 1), np.int64), np.zeros(2),
     r"last_actions has shape \(2, 1\) \(int64\), expected float32"),
    (np.zeros((2, 8, 8, 3), np.uint8), np.zeros((3, 1)), np.zeros(2),
     r"got 2 frames, actions \(3, 1\) and rewards \(2,\); expected T = 2 rows of each"),
    (np.zeros((0, 8, 8, 3), np.uint8), np.zeros((0, 1)), np.zeros(0), "no observed frame"),
    (np.zeros((1, 4, 4, 3), np.uint8), np.zeros((1, 1)), np.zeros(1),
     r"frames of shape \(4, 4, 3\), expected \(8, 8, 3\)"),
    (np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 1)), np.array([True]), r"last_rewards must be float32 \[T\], got bool"),
])
def test_check_observe_args_says_what_was_expected_and_what_came(frames, actions, rewards, message):
    with pytest.raises(ContractError, match=message):
        checks.check_observe_args(frames, actions, rewards, frame_shape=(8, 8, 3), action_dim=1, where="M.observe")


def test_check_future_actions_plain_and_batched():
    assert checks.check_future_actions(np.zeros((4, 3, 2)), 2).dtype == np.float32
    assert checks.check_future_actions(np.zeros((5, 4, 3, 2), np.float32), 2, batch=True).shape == (5, 4, 3, 2)
    with pytest.raises(ContractError, match=r"predict: future_actions has shape \(4, 3, 2\) \(float64\), expected float32 \[N, P, H, A\] with A = 2"):
        checks.check_future_actions(np.zeros((4, 3, 2)), 2, "predict", batch=True)


def test_check_predictions_lenient_converts_strict_refuses():
    loose = {"reward": np.zeros((4, 3), np.float64), "image": np.zeros((4, 3, 2, 2, 3), np.uint8)}
    assert checks.check_predictions(loose, 4, 3)["reward"].dtype == np.float32
    with pytest.raises(ContractError, match=r"predict_fn returned predictions\['reward'\] of dtype float64, expected float32 \[P, H\]"):
        checks.check_predictions(loose, 4, 3, strict=True)
    with pytest.raises(ContractError, match=r"returned predictions\['reward'\] as list, expected a NumPy array"):
        checks.check_predictions({"reward": [[0.0] * 3] * 4}, 4, 3, strict=True)


def test_check_predictions_names_shapes_keys_and_non_finite_rewards():
    with pytest.raises(ContractError, match=r"must return a dict with 'reward' \[P, H\]; got \['image'\]"):
        checks.check_predictions({"image": np.zeros((4, 3))}, 4, 3)
    with pytest.raises(ContractError, match=r"returned reward of shape \(3, 4\), expected \[proposals, horizon\] = \(4, 3\)"):
        checks.check_predictions({"reward": np.zeros((3, 4), np.float32)}, 4, 3)
    with pytest.raises(ContractError, match=r"returned 'image' of shape \(4, 2, 8, 8, 3\), expected leading dims"):
        checks.check_predictions({"reward": np.zeros((4, 3), np.float32), "image": np.zeros((4, 2, 8, 8, 3), np.uint8)}, 4, 3)
    reward = np.zeros((4, 3), np.float32)
    reward[2, 1] = np.nan
    with pytest.raises(ContractError, match=r"returned 1 NaN or infinite rewards of 12 \(first at index \(2, 1\)\)"):
        checks.check_predictions({"reward": reward}, 4, 3)


def test_check_predictions_batched_leading_dims():
    batch = {"reward": np.zeros((2, 4, 3), np.float32)}
    assert checks.check_predictions(batch, 4, 3, "predict_batch_fn", batch=2)["reward"].shape == (2, 4, 3)
    with pytest.raises(ContractError, match=r"predict_batch_fn returned reward of shape \(2, 4, 3\), expected \[batch, proposals, horizon\] = \(3, 4, 3\)"):
        checks.check_predictions(batch, 4, 3, "predict_batch_fn", batch=3)


def test_check_plan_prediction_is_one_row():
    one = checks.check_plan_prediction({"reward": np.zeros(5, np.float32), "image": np.zeros((5, 2, 2, 3), np.uint8)})
    assert one["image"].shape == (5, 2, 2, 3)
    with pytest.raises(ContractError, match=r"CEM \(its prediction as proposal 1 of 1\) returned predictions\['image'\] float32"):
        checks.check_plan_prediction({"reward": np.zeros(5, np.float32), "image": np.zeros((5, 2, 2, 3), np.float32)}, "CEM", strict=True)


def test_check_scores():
    assert checks.check_scores(np.arange(3.0), 3).dtype == np.float32
    with pytest.raises(ContractError, match=r"returned scores of dtype float64, expected float32 \[proposals\] = \(3,\)"):
        checks.check_scores(np.arange(3.0), 3, strict=True)
    with pytest.raises(ContractError, match=r"objective_fn returned scores of shape \(3, 1\), expected \[proposals\] = \(3,\)"):
        checks.check_scores(np.zeros((3, 1)), 3)
    with pytest.raises(ContractError, match=r"NaN or infinite scores for 2 of 4 proposals \(first at index 1\)"):
        checks.check_scores(np.array([0, np.inf, 1, np.nan]), 4)


def test_check_action():
    low, high = np.float32([-1]), np.float32([1])
    checks.check_action(np.float32([0.5]), 1, low, high, False)
    with pytest.raises(ContractError, match=r"action must be float32 \[1\], got ndarray float64 \(1,\)"):
        checks.check_action(np.zeros(1), 1, low, high, False)
    with pytest.raises(ContractError, match="outside"):
        checks.check_action(np.float32([2]), 1, low, high, False)
    with pytest.raises(ContractError, match="not one-hot"):
        checks.check_action(np.float32([0.5, 0.5]), 2, np.zeros(2), np.ones(2), True)


def test_check_decide_args():
    slots, images, actions, rewards = checks.check_decide_args(
        (2, 0), np.zeros((2, 4, 4, 3), np.uint8), np.zeros((2, 1)), [1, 2], num_slots=3, action_dim=1
    )
    assert slots == [2, 0] and actions.dtype == rewards.dtype == np.float32
    with pytest.raises(ContractError, match=r"slots must be distinct integers in \[0, 3\), got \[3\]"):
        checks.check_decide_args([3], np.zeros((1, 4, 4, 3), np.uint8), np.zeros((1, 1)), [0], 3, 1)
    with pytest.raises(ContractError, match=r"prev_images must be uint8 \[N, H, W, C\] with N = 2 slots, got uint8 \(1, 4, 4, 3\)"):
        checks.check_decide_args([0, 1], np.zeros((1, 4, 4, 3), np.uint8), np.zeros((2, 1)), [0, 0], 3, 1)
    with pytest.raises(ContractError, match=r"prev_rewards must be float32 \[N\] = \(2,\), got shape \(3,\)"):
        checks.check_decide_args([0, 1], np.zeros((2, 4, 4, 3), np.uint8), np.zeros((2, 1)), [0, 0, 0], 3, 1)


def test_check_int_at_least_gives_an_int_and_names_what_it_refuses():
    assert checks.check_int_at_least("n", 3) == 3
    assert type(checks.check_int_at_least("n", np.int64(2))) is int
    assert checks.check_int_at_least("n", 2.0) == 2
    assert checks.check_int_at_least("seed", 0, minimum=0) == 0
    assert checks.check_num_envs(4) == 4
    for bad in (0, -1, True, 1.5, float("nan"), float("inf"), "3", None):
        with pytest.raises(ValueError, match=r"^n must be an integer >= 1, got " + re.escape(repr(bad)) + "$"):
            checks.check_int_at_least("n", bad)
    with pytest.raises(ValueError, match=r"^num_sequences must be an integer >= 2, got 1$"):
        checks.check_int_at_least("num_sequences", 1, minimum=2)
