from __future__ import annotations

import numpy as np
import pytest

from wm_core.planning import planners
from wm_core.testing import PlannerContract
from wm_core.tasks.toy import PointTask

IMAGE = np.zeros((64, 64, 3), np.uint8)


class ConstantPlanner(planners.Planner):
    """Always the same action; counts calls and resets."""

    def __init__(self, task, action):
        super().__init__(task)
        self.action = np.asarray(action, np.float32)
        self.calls = self.resets = 0

    def reset(self, **kwargs):
        self.resets += 1

    def __call__(self, prev_image, prev_action, prev_reward):
        self.calls += 1
        return self.action.copy(), {"reward": np.ones(3, np.float32)}


def decide(planner, episodes=1, steps=1):
    decisions = []
    for episode in range(episodes):
        planner.reset(seed=episode)
        for _ in range(steps):
            decisions.append(planner(IMAGE, np.zeros(planner.action_dim, np.float32), 0.0))
    return decisions


def test_random_planner_respects_bounds_and_is_seeded():
    task = PointTask()
    actions = [a for a, _ in decide(planners.Random(task, seed=3), steps=200)]
    assert min(a.min() for a in actions) >= -1.0 and max(a.max() for a in actions) <= 1.0
    again = [a for a, _ in decide(planners.Random(task, seed=3), steps=200)]
    np.testing.assert_array_equal(actions, again)


def test_random_cold_start_is_random_for_exactly_the_first_episodes():
    task = PointTask()
    base = ConstantPlanner(task, [0.25])
    planner = planners.RandomColdStart(task, random_episodes=2, base_planner=base, seed=0)
    decisions = decide(planner, episodes=4, steps=5)
    cold, warm = decisions[:10], decisions[10:]
    assert all(prediction is None for _, prediction in cold)
    assert all(action[0] == 0.25 for action, _ in warm)
    assert base.calls == 10 and base.resets == 2


def test_gaussian_noise_has_the_requested_spread_and_stays_in_bounds():
    task = PointTask()
    base = ConstantPlanner(task, [0.0])
    noisy = planners.GaussianRandomNoise(task, stdev=0.3, base_planner=base, seed=0)
    actions = np.array([a for a, _ in decide(noisy, steps=4000)])
    assert abs(actions.mean()) < 0.02
    assert abs(actions.std() - 0.3) < 0.02
    clipped = planners.GaussianRandomNoise(task, stdev=5.0, base_planner=ConstantPlanner(task, [0.9]), seed=0)
    wide = np.array([a for a, _ in decide(clipped, steps=500)])
    assert wide.min() >= -1.0 and wide.max() <= 1.0 and (wide == 1.0).mean() > 0.4


def test_gaussian_noise_keeps_discrete_actions_one_hot():
    task = PointTask(discrete=True)
    base = ConstantPlanner(task, [0.0, 1.0, 0.0])
    noisy = planners.GaussianRandomNoise(task, stdev=1.0, base_planner=base, seed=0)
    actions = np.array([a for a, _ in decide(noisy, steps=500)])
    np.testing.assert_array_equal(actions.sum(1), np.ones(500))
    assert 0.3 < actions[:, 1].mean() < 0.9  # the base action still wins most often


def test_epsilon_greedy_replaces_about_epsilon_of_the_steps_and_always_calls_base():
    task = PointTask()
    base = ConstantPlanner(task, [0.5])
    planner = planners.EpsilonGreedy(task, epsilon=0.2, base_planner=base, seed=1)
    actions = np.array([a[0] for a, _ in decide(planner, steps=5000)])
    assert abs((actions != 0.5).mean() - 0.2) < 0.02
    assert base.calls == 5000


def test_randomizer_decides_per_episode():
    task = PointTask()
    base = ConstantPlanner(task, [0.5])
    planner = planners.Randomizer(task, rand_prob=0.3, base_planner=base, seed=2)
    episodes = np.array([a[0] for a, _ in decide(planner, episodes=1000, steps=3)]).reshape(1000, 3)
    random = (episodes != 0.5).all(axis=1)
    assert (random | (episodes == 0.5).all(axis=1)).all()
    assert abs(random.mean() - 0.3) < 0.05
    assert base.resets == 1000


@pytest.mark.parametrize("wrapper, argument", [
    (planners.EpsilonGreedy, {"epsilon": 1.5}),
    (planners.Randomizer, {"rand_prob": -0.1}),
    (planners.GaussianRandomNoise, {"stdev": -1.0}),
    (planners.RandomColdStart, {"random_episodes": -1}),
])
def test_wrapper_arguments_are_validated(wrapper, argument):
    task = PointTask()
    (name, value), = argument.items()
    with pytest.raises(ValueError, match=f"{name}.*{value}"):
        wrapper(task, base_planner=planners.Random(task), **argument)


def test_model_planner_threads_state_through_observe():
    task = PointTask()
    seen = []

    def reset_fn(**kwargs):
        return {"rows": np.zeros((), np.int64), "seed": np.asarray(kwargs["seed"])}

    def observe_fn(frames, actions, rewards, state):
        seen.append((frames.shape, actions.shape, rewards.shape))
        return {**state, "rows": state["rows"] + len(frames)}

    class CountingPlanner(planners.ModelPlanner):
        def plan(self, state):
            return np.full(1, float(state["rows"]), np.float32), None

    planner = CountingPlanner(task, None, observe_fn, reset_fn, objective_fn=None)
    actions = [a[0] for a, _ in decide(planner, steps=3)]
    assert actions == [1.0, 2.0, 3.0]
    assert seen[0] == ((1, 64, 64, 3), (1, 1), (1,))
    assert int(planner.state["seed"]) == 0


class TestRandomPlannerContract(PlannerContract):
    @pytest.fixture(params=[False, True], ids=["box", "discrete"])
    def task(self, request):
        return PointTask(discrete=request.param)

    @pytest.fixture
    def planner(self, task):
        return planners.GaussianRandomNoise(task, 0.3, planners.Random(task, seed=0), seed=1)


SEEDED_PLANNERS = {
    "random": lambda task: planners.Random(task, seed=7),
    "cold start": lambda task: planners.RandomColdStart(task, 5, ConstantPlanner(task, [0.0]), seed=7),
    "gaussian noise": lambda task: planners.GaussianRandomNoise(task, 0.3, ConstantPlanner(task, [0.0]), seed=7),
    "epsilon greedy": lambda task: planners.EpsilonGreedy(task, 0.5, ConstantPlanner(task, [0.0]), seed=7),
    "randomizer": lambda task: planners.Randomizer(task, 0.5, ConstantPlanner(task, [0.0]), seed=7),
}


@pytest.mark.parametrize("make", SEEDED_PLANNERS.values(), ids=SEEDED_PLANNERS.keys())
def test_an_episodes_random_draws_depend_only_on_the_seeds(make):
    task = PointTask()

    def actions(episode_seeds):
        planner, episodes = make(task), []
        for episode_seed in episode_seeds:
            planner.reset(seed=episode_seed)
            episodes.append([planner(IMAGE, np.zeros(1, np.float32), 0.0)[0] for _ in range(20)])
        return np.array(episodes)

    uninterrupted = actions([10, 11, 12, 13])
    np.testing.assert_array_equal(actions([12, 13]), uninterrupted[2:])  # as after a resume
    assert len({episode.tobytes() for episode in uninterrupted}) == 4  # episodes differ


def test_a_wrapper_and_its_base_with_one_seed_draw_different_numbers():
    task = PointTask()
    base = planners.Random(task, seed=7)
    wrapper = planners.EpsilonGreedy(task, 0.5, base, seed=7)
    wrapper.reset(seed=0)
    assert base.rng.random() != wrapper.rng.random()


def test_random_cold_start_skips_ahead_when_episodes_are_numbered():
    task = PointTask()
    base = ConstantPlanner(task, [0.25])
    planner = planners.RandomColdStart(task, random_episodes=5, base_planner=base, seed=0)
    planner.reset(seed=0, episode_index=7)  # a resumed run, past its random episodes
    action, _ = planner(IMAGE, np.zeros(1, np.float32), 0.0)
    assert action[0] == 0.25 and base.resets == 1
