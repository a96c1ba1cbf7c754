from __future__ import annotations

import copy

import numpy as np
import pytest

from wm_core import hookimpl
from wm_core.api.hooks import Hooks, create_plugin_manager
from wm_core.planning.planners import Planner, Random
from wm_core.rollout.simulate import simulate
from wm_core.tasks.toy import PointEnv, PointTask

HORIZON = 3


class LookaheadPlanner(Planner):
    """Mirrors the env (same seed) and predicts rewards of a fixed plan exactly.

    Records the episode row it was given at each decision.
    """

    def __init__(self, task):
        super().__init__(task, seed=0)
        self.received = []

    def reset(self, **kwargs):
        self.mirror = PointEnv(**self.task.kwargs)
        self.mirror.reset(seed=kwargs["seed"])

    def __call__(self, prev_image, prev_action, prev_reward):
        self.received.append((prev_image.copy(), prev_action.copy(), prev_reward))
        if len(self.received) > 1:  # keep the mirror in step with the real env
            self.mirror.step(prev_action)
        plan = [np.array([0.7], np.float32), np.array([-0.4], np.float32), np.array([1.0], np.float32)]
        rollout = copy.deepcopy(self.mirror)
        rewards = [rollout.step(action)[1] for action in plan]
        return plan[0], {"reward": np.array(rewards, np.float32)}


class Recorder:
    def __init__(self):
        self.events = []

    @hookimpl
    def wm_episode_start(self, phase, episode_index, seed):
        self.events.append(("start", phase, episode_index, seed))

    @hookimpl
    def wm_planner_decided(self, phase, episode_index, step, action, prediction):
        self.events.append(("decided", step))

    @hookimpl
    def wm_episode_end(self, phase, episode_index, episode, predictions, score):
        self.events.append(("end", episode_index, len(predictions), score))


def test_episode_format_and_dynamics():
    task = PointTask(length=6)
    (episode,), predictions, score = simulate(task, Random(task, seed=0), num_episodes=1, seed=4)
    assert set(episode) == {"image", "action", "reward", "state", "seed"}
    assert episode["seed"].dtype == np.int64 and (episode["seed"] == 4).all()
    assert episode["image"].shape == (7, 64, 64, 3) and episode["image"].dtype == np.uint8
    assert episode["action"].shape == (7, 1) and episode["action"].dtype == np.float32
    assert episode["reward"].shape == (7,) and episode["reward"].dtype == np.float32
    assert not episode["action"][0].any() and episode["reward"][0] == 0.0
    position = episode["state"][:, 0]
    expected = np.clip(position[:-1] + 0.1 * episode["action"][1:, 0], -1, 1)
    np.testing.assert_allclose(position[1:], expected, atol=1e-6)
    np.testing.assert_allclose(episode["reward"][1:], 1 - np.abs(position[1:] - 0.5), atol=1e-6)
    assert len(predictions[0]) == 6
    assert score == pytest.approx(float(episode["reward"].sum()))


def test_planner_gets_row_t_and_prediction_j_refers_to_row_t_plus_1_plus_j():
    task = PointTask(length=8)
    planner = LookaheadPlanner(task)
    (episode,), (predictions,), _ = simulate(task, planner, num_episodes=1, seed=1)
    for t, (image, action, reward) in enumerate(planner.received):
        np.testing.assert_array_equal(image, episode["image"][t])
        np.testing.assert_array_equal(action, episode["action"][t])
        assert reward == pytest.approx(episode["reward"][t])
    # The first planned action is the one applied, so prediction row 0 is exact.
    for t, prediction in enumerate(predictions):
        assert prediction["reward"][0] == pytest.approx(episode["reward"][t + 1], abs=1e-6)


def test_same_seed_same_episodes_and_seeds_advance_per_episode():
    task = PointTask(length=5)
    first, _, score_a = simulate(task, Random(task, seed=0), num_episodes=2, seed=10)
    second, _, score_b = simulate(task, Random(task, seed=0), num_episodes=2, seed=10)
    for a, b in zip(first, second):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert score_a == score_b
    assert first[0]["state"][0] != first[1]["state"][0]
    assert score_a == pytest.approx(np.mean([e["reward"].sum() for e in first]))


def test_discrete_actions_are_stored_one_hot():
    task = PointTask(discrete=True, length=4)
    (episode,), _, _ = simulate(task, Random(task, seed=0), seed=0)
    np.testing.assert_array_equal(episode["action"][1:].sum(1), np.ones(4))
    moves = np.argmax(episode["action"][1:], 1) - 1.0
    position = episode["state"][:, 0]
    np.testing.assert_allclose(position[1:], np.clip(position[:-1] + 0.1 * moves, -1, 1), atol=1e-6)


def test_hooks_see_every_episode_and_decision():
    task = PointTask(length=3)
    recorder = Recorder()
    hooks = Hooks(create_plugin_manager(load_entry_points=False, plugins=(recorder,)))
    episodes, _, _ = simulate(task, Random(task, seed=0), num_episodes=2, seed=5, phase="eval", hooks=hooks)
    scores = [float(e["reward"].sum()) for e in episodes]
    assert recorder.events == [
        ("start", "eval", 0, 5), ("decided", 0), ("decided", 1), ("decided", 2), ("end", 0, 3, scores[0]),
        ("start", "eval", 1, 6), ("decided", 0), ("decided", 1), ("decided", 2), ("end", 1, 3, scores[1]),
    ]


def test_num_episodes_must_be_positive():
    with pytest.raises(ValueError, match="num_episodes must be an integer >= 1, got 0"):
        simulate(PointTask(), Random(PointTask()), num_episodes=0)


def test_a_given_environment_is_reused_and_left_open():
    task = PointTask(length=3)
    env = task.create_env()
    closed = []
    env.close = lambda: closed.append(True)
    first, _, _ = simulate(task, Random(task, seed=0), seed=2, env=env)
    second, _, _ = simulate(task, Random(task, seed=0), seed=2, env=env)
    np.testing.assert_array_equal(first[0]["state"], second[0]["state"])
    assert closed == []
