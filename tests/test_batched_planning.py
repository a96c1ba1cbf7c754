"""Planning for several environments at once (``wm_core.planning.planners.batch_planner``).

The property every batched form keeps: slot ``s`` decides exactly what a
separate copy of the planner would, given the same episode seeds — an
episode's actions depend neither on its slot nor on the other slots.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from wm_core.api import spaces
from wm_core.planning import planners
from wm_core.api.contracts import BatchPlanner, ContractError, WorldModel, batched
from wm_core.models.oracle import OracleWorldModel
from wm_core.planning.objectives import TotalReward
from wm_core.tasks.toy import PointTask


def play_unbatched(planner, task, episode_seeds, steps):
    """Each episode with its own deep copy of ``planner``: actions ``[E][T, A]``."""
    traces = []
    for seed in episode_seeds:
        fresh = copy.deepcopy(planner)
        env = task.create_env()
        observation, _ = env.reset(seed=seed)
        fresh.reset(seed=seed, episode_index=seed)
        action, reward, actions = np.zeros(spaces.action_dim(task.action_space), np.float32), 0.0, []
        for _ in range(steps):
            action, _ = fresh(observation["image"], action, reward)
            actions.append(action)
            observation, reward, *_ = env.step(spaces.to_env_action(task.action_space, action))
        env.close()
        traces.append(np.stack(actions))
    return traces


def play_batched(batch, task, slot_seeds, steps, stagger=False):
    """Slot ``s`` plays the episode seeded ``slot_seeds[s]``; all slots decide
    together (``stagger``: slot ``s`` joins at step ``s``, so the deciding
    slots and their rows change).  Actions per slot ``[T, A]``."""
    size = spaces.action_dim(task.action_space)
    envs = [task.create_env() for _ in slot_seeds]
    observations = [env.reset(seed=seed)[0] for env, seed in zip(envs, slot_seeds)]
    for slot, seed in enumerate(slot_seeds):
        batch.reset_slot(slot, seed=seed, episode_index=seed)
    last = [(np.zeros(size, np.float32), 0.0) for _ in slot_seeds]
    actions = [[] for _ in slot_seeds]
    for step in range(steps + (len(slot_seeds) if stagger else 0)):
        slots = [
            slot for slot in range(len(slot_seeds))
            if (not stagger or step >= slot) and len(actions[slot]) < steps
        ]
        if stagger:
            slots = slots[::-1]  # rows in another order than slots
        if not slots:
            break
        chosen, predictions = batch.decide(
            slots,
            np.stack([observations[slot]["image"] for slot in slots]),
            np.stack([last[slot][0] for slot in slots]),
            np.array([last[slot][1] for slot in slots], np.float32),
        )
        assert chosen.dtype == np.float32 and chosen.shape == (len(slots), size)
        assert len(predictions) == len(slots)
        for row, slot in enumerate(slots):
            observation, reward, *_ = envs[slot].step(spaces.to_env_action(task.action_space, chosen[row]))
            observations[slot] = observation
            last[slot] = (chosen[row], reward)
            actions[slot].append(chosen[row])
    for env in envs:
        env.close()
    return [np.stack(trace) for trace in actions]


def cem(task, model, **kwargs):
    from wm_cem.cem import CEM

    options = dict(horizon=4, iterations=2, proposals=20, fraction=0.2, seed=7)
    options.update(kwargs)
    return CEM(
        predict_fn=model.predict_fn, observe_fn=model.observe_fn, reset_fn=model.reset_fn,
        task=task, objective_fn=TotalReward(), **options,
    )


def test_random_planner_batched_matches_separate_planners():
    task = PointTask()
    planner = planners.Random(task, seed=3)
    seeds = [11, 12, 13]
    batch = planners.batch_planner(planner, 3)
    assert isinstance(batch, BatchPlanner)
    separate = play_unbatched(planner, task, seeds, steps=5)
    together = play_batched(batch, task, seeds, steps=5)
    for one, other in zip(separate, together):
        np.testing.assert_array_equal(one, other)


def test_unseeded_slot_copies_draw_different_numbers():
    task = PointTask()
    batch = planners.batch_planner(planners.Random(task), 2)
    for slot in range(2):
        batch.reset_slot(slot, seed=0)
    actions, _ = batch.decide([0, 1], np.zeros((2, 64, 64, 3), np.uint8), np.zeros((2, 1), np.float32), np.zeros(2, np.float32))
    assert actions[0, 0] != actions[1, 0]


def test_slot_copies_share_model_functions_bound_methods_and_tf_functions():
    task = PointTask()
    model = OracleWorldModel(task)
    planner = cem(task, model)
    planner.extra_fn = lambda x: x  # any callable attribute is shared
    copies = planners.slot_copies(planner, 2)
    for duplicate in copies:
        assert duplicate is not planner and duplicate.rng is not planner.rng
        assert duplicate.predict_fn.__self__ is model  # the bound method's model is not copied
        assert duplicate.extra_fn is planner.extra_fn and duplicate.task is task
    tf = pytest.importorskip("tensorflow")
    function = tf.function(lambda x: x + 1)
    planner.predict_fn = function  # deepcopy alone would copy a tf.function
    assert planners.slot_copies(planner, 1)[0].predict_fn is function


@pytest.mark.parametrize("wrap", ["none", "noise", "epsilon", "randomizer", "cold"])
def test_cem_batched_matches_separate_cems_on_the_oracle(wrap):
    task = PointTask(length=10)
    planner = cem(task, OracleWorldModel(task))
    if wrap == "noise":
        planner = planners.GaussianRandomNoise(task, stdev=0.3, base_planner=planner, seed=1)
    elif wrap == "epsilon":
        planner = planners.EpsilonGreedy(task, epsilon=0.3, base_planner=planner, seed=1)
    elif wrap == "randomizer":
        planner = planners.Randomizer(task, rand_prob=0.5, base_planner=planner, seed=1)
    elif wrap == "cold":
        planner = planners.RandomColdStart(task, random_episodes=12, base_planner=planner, seed=1)
    seeds = [11, 12, 13]
    separate = play_unbatched(planner, task, seeds, steps=6)
    for stagger in (False, True):
        together = play_batched(planners.batch_planner(planner, 3), task, seeds, steps=6, stagger=stagger)
        for one, other in zip(separate, together):
            np.testing.assert_array_equal(one, other)
    # the same episode in another slot, next to other episodes: the same actions
    moved = play_batched(planners.batch_planner(planner, 3), task, [13, 11, 12], steps=6)
    np.testing.assert_array_equal(moved[0], separate[2])


def test_decide_rejects_bad_arguments():
    task = PointTask()
    batch = planners.batch_planner(planners.Random(task, seed=0), 2)
    images = np.zeros((2, 64, 64, 3), np.uint8)
    with pytest.raises(ContractError, match=r"slots must be distinct integers in \[0, 2\), got \[1, 1\]"):
        batch.decide([1, 1], images, np.zeros((2, 1), np.float32), np.zeros(2, np.float32))
    with pytest.raises(ContractError, match=r"prev_actions has shape \(2, 3\) \(float32\), expected float32 \[N, A\] with A = 1"):
        batch.decide([0, 1], images, np.zeros((2, 3), np.float32), np.zeros(2, np.float32))


def test_batched_fallback_stacks_predict_fn_rows():
    task = PointTask()
    model = OracleWorldModel(task)
    states = [model.reset(seed=seed) for seed in (1, 2)]
    actions = np.random.default_rng(0).uniform(-1, 1, (2, 5, 3, 1)).astype(np.float32)
    together = batched(model.predict_fn)(actions, states)
    assert together["reward"].shape == (2, 5, 3)
    for row in range(2):
        np.testing.assert_array_equal(together["reward"][row], model.predict(actions[row], states[row])["reward"])
    np.testing.assert_array_equal(model.predict_batch_fn(actions, states)["reward"], together["reward"])
    with pytest.raises(ContractError, match=r"\[N, P, H, A\] and N states"):
        batched(model.predict_fn)(actions, states[:1])


def test_world_model_base_has_a_batched_predict():
    class Sum(WorldModel):
        def predict(self, future_actions, state):
            return {"reward": future_actions.sum(-1) + state}

    actions = np.ones((3, 2, 4, 1), np.float32)
    rewards = Sum().predict_batch_fn(actions, [np.float32(s) for s in range(3)])["reward"]
    np.testing.assert_array_equal(rewards[:, 0, 0], [1.0, 2.0, 3.0])
