"""The oracle world model: exact replay of the real environment's rewards."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from wm_core import registry, spaces, tasks
from wm_core.contracts import ContractError
from wm_core.oracle import OracleWorldModel
from wm_core.testing import WorldModelContract

TASKS = {
    "pendulum": lambda: tasks.Gym("Pendulum-v1"),
    "cartpole": lambda: tasks.Gym("CartPole-v1"),
    "dmc": lambda: tasks.DeepMindControl("cartpole", "swingup", action_repeat=4),
}


@pytest.fixture(scope="module", params=sorted(TASKS))
def task(request):
    return TASKS[request.param]()


def record_episode(task, seed, action_vectors):
    """Play ``action_vectors [T, A]`` in a real env: images, actions and rewards, ``T+1`` rows."""
    env = task.create_env()
    observation, _ = env.reset(seed=seed)
    images, rewards = [observation["image"]], [0.0]
    for vector in action_vectors:
        observation, reward, terminated, truncated, _ = env.step(
            spaces.to_env_action(task.action_space, vector)
        )
        images.append(observation["image"])
        rewards.append(reward)
        assert not (terminated or truncated), "pick actions that keep the episode going"
    actions = np.concatenate([np.zeros((1, action_vectors.shape[1]), np.float32), action_vectors])
    return np.stack(images), actions, np.asarray(rewards, np.float32)


def bounded_actions(task, shape, seed):
    """Random action vectors; Box ones kept small so CartPole-like tasks survive."""
    rng = np.random.default_rng(seed)
    return spaces.sample_action_vectors(task.action_space, rng, shape)


def test_predictions_equal_the_real_rewards_of_the_same_actions(task):
    actions = bounded_actions(task, (8,), seed=0)
    images, episode_actions, rewards = record_episode(task, 11, actions)
    oracle = OracleWorldModel(task)
    state = oracle.reset(seed=11)
    state = oracle.observe(images[:4], episode_actions[:4], rewards[:4], state)  # rows 0..3
    proposals = bounded_actions(task, (5, 5), seed=1)
    proposals[2] = actions[3:8]  # rows 4..8 of the episode
    predictions = oracle.predict(proposals, state)
    assert predictions["reward"].dtype == np.float32
    assert predictions["reward"].shape == (5, 5)
    np.testing.assert_allclose(predictions["reward"][2], rewards[4:], rtol=0, atol=1e-6)


def test_observing_one_row_at_a_time_matches_observing_all_at_once(task):
    actions = bounded_actions(task, (4,), seed=2)
    images, episode_actions, rewards = record_episode(task, 5, actions)
    oracle = OracleWorldModel(task)
    one_by_one = oracle.reset(seed=5)
    for row in range(5):
        one_by_one = oracle.observe(
            images[row : row + 1], episode_actions[row : row + 1], rewards[row : row + 1], one_by_one
        )
    all_at_once = oracle.observe(images, episode_actions, rewards, oracle.reset(seed=5))
    assert int(one_by_one["rows_seen"]) == int(all_at_once["rows_seen"]) == 5
    for key in one_by_one["simulator"]:
        np.testing.assert_array_equal(one_by_one["simulator"][key], all_at_once["simulator"][key])


def test_predict_leaves_the_state_bitwise_unchanged(task):
    oracle = OracleWorldModel(task)
    images, actions, rewards = record_episode(task, 0, bounded_actions(task, (2,), seed=3))
    state = oracle.observe(images, actions, rewards, oracle.reset(seed=0))
    before = copy.deepcopy(state)
    first = oracle.predict(bounded_actions(task, (4, 6), seed=4), state)
    second = oracle.predict(bounded_actions(task, (4, 6), seed=4), state)
    for key, value in before["simulator"].items():
        assert state["simulator"][key].dtype == value.dtype
        np.testing.assert_array_equal(state["simulator"][key], value)
    np.testing.assert_array_equal(state["rows_seen"], before["rows_seen"])
    np.testing.assert_array_equal(first["reward"], second["reward"])


def test_identical_proposals_get_identical_rewards(task):
    oracle = OracleWorldModel(task)
    state = oracle.reset(seed=2)
    plan = bounded_actions(task, (1, 6), seed=5)
    rewards = oracle.predict(np.repeat(plan, 3, axis=0), state)["reward"]
    np.testing.assert_array_equal(rewards, np.repeat(rewards[:1], 3, axis=0))


def test_rewards_are_zero_after_termination_within_a_rollout():
    task = tasks.Gym("CartPole-v1")
    push_right = np.tile(np.array([0.0, 1.0], np.float32), (1, 40, 1))
    env = task.create_env()
    env.reset(seed=0)
    steps_until_fall = 0
    while True:
        steps_until_fall += 1
        if env.step(np.int64(1))[2]:
            break
    oracle = OracleWorldModel(task)
    rewards = oracle.predict(push_right, oracle.reset(seed=0))["reward"][0]
    expected = np.zeros(40, np.float32)
    expected[:steps_until_fall] = 1.0
    np.testing.assert_array_equal(rewards, expected)
    # A second rollout reaches the same terminal reward: the post-termination
    # counter was restored, not left over from the first rollout.
    np.testing.assert_array_equal(oracle.predict(push_right, oracle.reset(seed=0))["reward"][0], expected)


def test_rendered_predictions_are_the_real_frames():
    task = tasks.DeepMindControl("cartpole", "swingup", action_repeat=2)
    actions = bounded_actions(task, (3,), seed=6)
    images, episode_actions, rewards = record_episode(task, 4, actions)
    oracle = OracleWorldModel(task, render=True)
    state = oracle.observe(images[:1], episode_actions[:1], rewards[:1], oracle.reset(seed=4))
    predictions = oracle.predict(np.stack([actions, actions[::-1]]), state)
    assert predictions["image"].dtype == np.uint8
    assert predictions["image"].shape == (2, 3, 64, 64, 3)
    np.testing.assert_array_equal(predictions["image"][0], images[1:])


def test_observe_detects_a_copy_reset_with_another_seed():
    task = tasks.Gym("Pendulum-v1")
    images, actions, rewards = record_episode(task, 1, bounded_actions(task, (2,), seed=7))
    oracle = OracleWorldModel(task)
    with pytest.raises(ContractError, match="out of step at episode row 1"):
        oracle.observe(images, actions, rewards, oracle.reset(seed=2))


def test_reset_without_a_seed_is_refused():
    with pytest.raises(ContractError, match="needs seed="):
        OracleWorldModel(tasks.Gym("Pendulum-v1")).reset()


def test_predict_rejects_actions_of_the_wrong_size():
    oracle = OracleWorldModel(tasks.Gym("CartPole-v1"))
    with pytest.raises(ContractError, match=r"shape \(2, 3, 1\).*A = 2"):
        oracle.predict(np.zeros((2, 3, 1), np.float32), oracle.reset(seed=0))


def test_observe_checks_its_arguments_with_the_shared_checks():
    oracle = OracleWorldModel(tasks.Gym("Pendulum-v1"))
    state = oracle.reset(seed=0)
    frames, actions = np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 1), np.float32)
    with pytest.raises(ContractError, match=r"OracleWorldModel.observe \(task .*\): last_frames must be uint8 \[T, H, W, C\], got float32"):
        oracle.observe(frames.astype(np.float32), actions, np.zeros(2), state)
    with pytest.raises(ContractError, match=r"got 2 frames, actions \(2, 1\) and rewards \(3,\)"):
        oracle.observe(frames, actions, np.zeros(3), state)


def test_oracle_is_registered_as_a_world_model():
    assert registry.load("world_models", "oracle") is OracleWorldModel


class TestOracleContract(WorldModelContract):
    @pytest.fixture
    def world_model(self, task):
        return OracleWorldModel(task)
