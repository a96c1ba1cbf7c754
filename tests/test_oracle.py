"""The oracle world model: exact replay of the real environment's rewards."""

from __future__ import annotations

import copy
import importlib
import os
import signal
import sys
import textwrap

import numpy as np
import pytest

from wm_core import tasks
from wm_core.api import registry, spaces
from wm_core.api.contracts import ContractError
from wm_core.models.oracle import OracleWorldModel
from wm_core.tasks.process import WorkerDiedError
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


# -- rollout_workers: batched predictions in a pool of simulator workers ------------------


def observed_states(oracle, task, seeds, steps=3):
    """One state per seed: reset with the seed, then ``steps`` rows of a recorded episode."""
    states = []
    for index, seed in enumerate(seeds):
        images, actions, rewards = record_episode(
            task, seed, bounded_actions(task, (steps,), seed=100 + index)
        )
        states.append(oracle.observe(images, actions, rewards, oracle.reset(seed=seed)))
    return states


def one_by_one(oracle, future_actions, states):
    """``predict`` state by state, stacked: what every batched row must equal."""
    rows = [oracle.predict(actions, state) for actions, state in zip(future_actions, states)]
    return {key: np.stack([row[key] for row in rows]) for key in rows[0]}


def assert_unchanged(states, befores):
    for state, before in zip(states, befores):
        np.testing.assert_array_equal(state["rows_seen"], before["rows_seen"])
        assert sorted(state["simulator"]) == sorted(before["simulator"])
        for key, value in before["simulator"].items():
            assert state["simulator"][key].dtype == value.dtype
            np.testing.assert_array_equal(state["simulator"][key], value)


def worker_is_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("render", [False, True], ids=["rewards", "rendered"])
def test_rollout_workers_give_the_in_process_predictions_row_for_row(render):
    task = tasks.PointTask(length=30, size=16)
    pooled = OracleWorldModel(task, render=render, rollout_workers=2)
    alone = OracleWorldModel(task, render=render)
    try:
        states = observed_states(pooled, task, seeds=[3, 4, 5])  # more states than workers
        befores = copy.deepcopy(states)
        future_actions = bounded_actions(task, (3, 6, 5), seed=8)
        together = pooled.predict_batch(future_actions, states)
        assert pooled.pool is not None and pooled.pool.num_envs == 2
        expected = one_by_one(alone, future_actions, states)
        assert sorted(together) == (["image", "reward"] if render else ["reward"])
        assert together["reward"].dtype == np.float32 and together["reward"].shape == (3, 6, 5)
        np.testing.assert_array_equal(together["reward"], expected["reward"])
        if render:
            assert together["image"].dtype == np.uint8
            assert together["image"].shape == (3, 6, 5, 16, 16, 3)
            np.testing.assert_array_equal(together["image"], expected["image"])
        assert not np.array_equal(together["reward"][0], together["reward"][1])  # rows differ
        assert_unchanged(states, befores)
        # Again on the same pool, in another order: the rows follow the states.
        again = pooled.predict_batch(future_actions[::-1], states[::-1])
        np.testing.assert_array_equal(again["reward"], expected["reward"][::-1])
        assert_unchanged(states, befores)
    finally:
        pooled.close()
        alone.close()


def test_rollout_workers_render_dm_control_frames_like_the_private_copy():
    task = tasks.DeepMindControl("cartpole", "swingup", action_repeat=4)
    pooled = OracleWorldModel(task, render=True, rollout_workers=2)
    try:
        states = observed_states(pooled, task, seeds=[0, 1, 2], steps=2)
        future_actions = bounded_actions(task, (3, 2, 3), seed=9)
        together = pooled.predict_batch(future_actions, states)
        expected = one_by_one(pooled, future_actions, states)  # the private copy
        np.testing.assert_array_equal(together["reward"], expected["reward"])
        np.testing.assert_array_equal(together["image"], expected["image"])
        assert together["image"].shape == (3, 2, 3, 64, 64, 3)
    finally:
        pooled.close()


def test_a_single_state_and_the_default_do_not_start_workers():
    task = tasks.PointTask(length=30, size=16)
    default = OracleWorldModel(task)
    pooled = OracleWorldModel(task, rollout_workers=2)
    states = observed_states(default, task, seeds=[1, 2])
    actions = bounded_actions(task, (2, 4, 3), seed=10)
    np.testing.assert_array_equal(
        default.predict_batch(actions, states)["reward"], one_by_one(default, actions, states)["reward"]
    )
    assert default.pool is None
    pooled.predict_batch(actions[:1], states[:1])
    pooled.predict(actions[0], states[0])
    assert pooled.pool is None
    pooled.close()
    default.close()


def test_close_ends_the_rollout_workers():
    task = tasks.PointTask(length=30, size=16)
    oracle = OracleWorldModel(task, rollout_workers=2)
    states = observed_states(oracle, task, seeds=[1, 2, 3])
    actions = bounded_actions(task, (3, 4, 2), seed=11)
    first = oracle.predict_batch(actions, states)
    pids = [env.pid for env in oracle.pool.envs]
    assert not any(worker_is_gone(pid) for pid in pids)
    oracle.close()
    assert oracle.pool is None
    assert all(worker_is_gone(pid) for pid in pids)
    oracle.close()  # twice is fine
    # A later call starts fresh workers (the states still hold all they need).
    np.testing.assert_array_equal(oracle.predict_batch(actions, states)["reward"], first["reward"])
    assert not set(env.pid for env in oracle.pool.envs) & set(pids)
    oracle.close()


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2", None])
def test_a_bad_number_of_rollout_workers_is_a_value_error(bad):
    with pytest.raises(ValueError, match="rollout_workers must be an int >= 0"):
        OracleWorldModel(tasks.PointTask(), rollout_workers=bad)


def test_a_dead_rollout_worker_is_a_clear_error_and_the_next_batch_gets_a_fresh_pool():
    task = tasks.PointTask(length=30, size=16)
    oracle = OracleWorldModel(task, rollout_workers=2)
    try:
        states = observed_states(oracle, task, seeds=[1, 2, 3])
        actions = bounded_actions(task, (3, 4, 2), seed=12)
        expected = oracle.predict_batch(actions, states)
        victim = oracle.pool.envs[1].pid
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(WorkerDiedError, match=r"rollout worker of slot 1 .*died while rolling out row"):
            oracle.predict_batch(actions, states)
        assert oracle.pool is None
        assert all(worker_is_gone(pid) for pid in [victim])
        np.testing.assert_array_equal(oracle.predict_batch(actions, states)["reward"], expected["reward"])
    finally:
        oracle.close()


# A point task whose goal is drawn at reset and is not in the snapshot (as
# reacher's target): the pool's copies are right only if they were reset with
# the oracle's seed.  A module on sys.path, so the workers can import it too.
GOAL_TASK = textwrap.dedent('''
    import numpy as np
    from wm_core.tasks.toy import PointEnv, PointTask

    class GoalEnv(PointEnv):
        def _reset_simulator(self, seed):
            super()._reset_simulator(seed)
            self.goal = float(self.np_random.uniform(-1.0, 1.0))

    class GoalTask(PointTask):
        def create_env(self):
            return GoalEnv(**self.kwargs)
''')


@pytest.fixture
def goal_task(tmp_path, monkeypatch):
    (tmp_path / "wm_oracle_goal_task.py").write_text(GOAL_TASK)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("wm_oracle_goal_task").GoalTask(length=30, size=16)
    sys.modules.pop("wm_oracle_goal_task", None)


def test_the_rollout_workers_are_reset_with_the_oracles_seed(goal_task):
    oracle = OracleWorldModel(goal_task, rollout_workers=2)
    try:
        actions = bounded_actions(goal_task, (3, 4, 5), seed=13)
        for seed in (5, 6):  # a second episode: the workers follow the new seed
            state = oracle.reset(seed=seed)
            states = [state, state, state]
            together = oracle.predict_batch(actions, states)
            np.testing.assert_array_equal(
                together["reward"], one_by_one(oracle, actions, states)["reward"]
            )
    finally:
        oracle.close()


class TestOracleContractWithRolloutWorkers(WorldModelContract):
    @pytest.fixture
    def task(self):
        return tasks.PointTask(length=30, size=16)

    @pytest.fixture
    def world_model(self, task):
        oracle = OracleWorldModel(task, render=True, rollout_workers=2)
        yield oracle
        oracle.close()
