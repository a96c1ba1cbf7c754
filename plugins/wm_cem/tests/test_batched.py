"""Batched search: several environment slots decided together, one
``predict_batch_fn`` call per iteration, each slot as a separate planner."""

from __future__ import annotations

import numpy as np
import pytest

from wm_core.api.contracts import ContractError
from wm_core.planning.planners import GaussianRandomNoise, batch_planner

from wm_cem import CEM, ICEM, MPPI
from wm_cem.search import BatchedSearch

IMAGE = np.zeros((64, 64, 3), np.uint8)


class ShiftedTargetModel:
    """Reward ``-sum_a (action - target[j] - shift)**2``; the shift is the
    episode seed / 10, so every slot has its own optimum.  Records the
    batched calls."""

    def __init__(self, target, discrete=False):
        self.target = np.asarray(target, np.float32)
        self.discrete = discrete
        self.calls, self.batch_calls = [], []

    def reset_fn(self, seed=0, **kwargs):
        return {"steps": np.zeros((), np.int64), "shift": np.float32(seed / 10)}

    def observe_fn(self, frames, actions, rewards, state):
        return {"steps": state["steps"] + len(frames), "shift": state["shift"]}

    def _reward(self, actions, shift):
        target = self.target[: actions.shape[-2]]
        if self.discrete:
            index = int(round(float(shift) * 10)) % target.shape[-1]
            return np.einsum("...ha,ha->...h", actions, np.roll(target, index, axis=-1)).astype(np.float32)
        return (-np.square(actions - target - shift).sum(-1)).astype(np.float32)

    def predict_fn(self, actions, state):
        self.calls.append(actions.shape)
        return {"reward": self._reward(actions, state["shift"])}

    def predict_batch_fn(self, actions, states):
        self.batch_calls.append(actions.shape)
        shifts = np.array([state["shift"] for state in states], np.float32)
        if self.discrete:
            return {"reward": np.stack([self._reward(a, s) for a, s in zip(actions, shifts)])}
        return {"reward": self._reward(actions, shifts[:, None, None, None])}

    def parts(self, batched=True):
        parts = dict(predict_fn=self.predict_fn, observe_fn=self.observe_fn, reset_fn=self.reset_fn)
        if batched:
            parts["predict_batch_fn"] = self.predict_batch_fn
        return parts


def make(kind, task, model, total_reward, **settings):
    options = dict(horizon=4, iterations=3, proposals=30, fraction=0.2, seed=5)
    if kind is ICEM:
        options.update(population_decay=1.5, keep_elites=0.5)
    return kind(task=task, objective_fn=total_reward, **model.parts(), **{**options, **settings})


def separate(planner, seeds, steps):
    """Each seed's episode with its own copy of the planner (unbatched)."""
    from wm_core.planning.planners import slot_copies

    traces = []
    for seed in seeds:
        alone = slot_copies(planner, 1)[0]
        alone.reset(seed=seed)
        action, trace = np.zeros(planner.action_dim, np.float32), []
        for _ in range(steps):
            action, prediction = alone(IMAGE, action, 0.0)
            trace.append((action, prediction))
        traces.append(trace)
    return traces


def together(batch, seeds, steps, order=None):
    """All seeds' episodes in one batch planner (slot ``s``: ``seeds[s]``);
    ``order`` lists the slots deciding at each step."""
    for slot, seed in enumerate(seeds):
        batch.reset_slot(slot, seed=seed)
    last = {slot: np.zeros(batch.action_dim, np.float32) for slot in range(len(seeds))}
    traces = {slot: [] for slot in range(len(seeds))}
    for step in range(steps):
        slots = order[step] if order else list(range(len(seeds)))
        actions, predictions = batch.decide(
            slots, np.stack([IMAGE] * len(slots)), np.stack([last[s] for s in slots]),
            np.zeros(len(slots), np.float32),
        )
        for row, slot in enumerate(slots):
            last[slot] = actions[row]
            traces[slot].append((actions[row], predictions[row]))
    return [traces[slot] for slot in range(len(seeds))]


@pytest.mark.parametrize("kind", [CEM, MPPI, ICEM])
def test_one_batched_call_per_iteration_and_the_decisions_of_separate_planners(kind, box_task, total_reward):
    model = ShiftedTargetModel(np.full((4, 1), 0.2, np.float32))
    planner = make(kind, box_task, model, total_reward, warm_start=True)
    batch = batch_planner(planner, 3)
    assert isinstance(batch, BatchedSearch)
    seeds = [1, 4, 7]
    batched_traces = together(batch, seeds, steps=3)
    assert len(model.batch_calls) == 3 * 3 and not model.calls  # steps x iterations, no per-slot calls
    assert all(shape[0] == 3 for shape in model.batch_calls)
    separate_traces = separate(planner, seeds, steps=3)
    for one, other in zip(separate_traces, batched_traces):
        for (action, prediction), (batched_action, batched_prediction) in zip(one, other):
            np.testing.assert_array_equal(action, batched_action)
            np.testing.assert_array_equal(prediction["reward"], batched_prediction["reward"])
    # each slot found its own optimum (target + shift)
    finals = [trace[-1][0][0] for trace in batched_traces]
    assert finals[0] < finals[1] < finals[2]


def test_discrete_cem_batched_equals_separate(discrete_task, total_reward):
    target = np.eye(3, dtype=np.float32)[[0, 2, 1, 0]]
    model = ShiftedTargetModel(target, discrete=True)
    planner = make(CEM, discrete_task, model, total_reward, proposals=6, iterations=1, fraction=0.34)
    batched_traces = together(batch_planner(planner, 3), [0, 1, 2], steps=3)
    for one, other in zip(separate(planner, [0, 1, 2], steps=3), batched_traces):
        for (action, prediction), (batched_action, batched_prediction) in zip(one, other):
            np.testing.assert_array_equal(action, batched_action)
            np.testing.assert_array_equal(prediction["reward"], batched_prediction["reward"])


def test_slots_that_do_not_decide_keep_their_state(box_task, total_reward):
    """Slots decide in changing subsets and orders; each still acts as alone."""
    model = ShiftedTargetModel(np.full((4, 1), -0.3, np.float32))
    planner = make(ICEM, box_task, model, total_reward)
    order = [[0, 1, 2], [2], [1, 0], [0, 2, 1], [1]]
    batched_traces = together(batch_planner(planner, 3), [2, 5, 8], steps=5, order=order)
    decided = {slot: sum(slot in slots for slots in order) for slot in range(3)}
    alone = separate(planner, [2, 5, 8], steps=max(decided.values()))
    for slot in range(3):
        assert len(batched_traces[slot]) == decided[slot]
        for (action, _), (batched_action, _) in zip(alone[slot], batched_traces[slot]):
            np.testing.assert_array_equal(action, batched_action)
    assert [shape[0] for shape in model.batch_calls[::3]] == [3, 1, 2, 3, 1]


def test_without_a_batched_form_the_fallback_loops_over_predict_fn(box_task, total_reward):
    model = ShiftedTargetModel(np.zeros((4, 1), np.float32))
    planner = CEM(task=box_task, objective_fn=total_reward, **model.parts(batched=False),
                  horizon=4, iterations=2, proposals=20, seed=0)
    batch = batch_planner(planner, 2)
    together(batch, [0, 1], steps=1)
    assert not model.batch_calls and len(model.calls) == 2 * 2


def test_plan_predictions_are_one_batched_call_per_decision(box_task, total_reward):
    model = ShiftedTargetModel(np.zeros((4, 1), np.float32))
    plan_calls = []

    def plan_predict_batch_fn(actions, states):
        plan_calls.append(actions.shape)
        rewards = model.predict_batch_fn(actions, states)["reward"]
        return {"reward": rewards, "image": np.zeros((*actions.shape[:3], 8, 8, 3), np.uint8)}

    planner = make(CEM, box_task, model, total_reward, plan_predict_fn=model.predict_fn,
                   plan_predict_batch_fn=plan_predict_batch_fn)
    traces = together(batch_planner(planner, 2), [0, 1], steps=2)
    assert plan_calls == [(2, 1, 4, 1)] * 2
    for trace in traces:
        for action, prediction in trace:
            assert prediction["image"].shape == (4, 8, 8, 3) and prediction["reward"].shape == (4,)


def test_a_wrong_batched_prediction_is_named(box_task, total_reward):
    model = ShiftedTargetModel(np.zeros((4, 1), np.float32))
    planner = make(CEM, box_task, model, total_reward)
    planner.predict_batch_fn = lambda actions, states: {"reward": np.zeros(actions.shape[1:3], np.float32)}
    batch = batch_planner(planner, 2)
    with pytest.raises(ContractError, match=r"predict_batch_fn returned reward of shape \(30, 4\), "
                                            r"expected \[batch, proposals, horizon\] = \(2, 30, 4\)"):
        together(batch, [0, 1], steps=1)


def test_noise_wrapper_around_cem_stays_batched(box_task, total_reward):
    model = ShiftedTargetModel(np.zeros((4, 1), np.float32))
    noisy = GaussianRandomNoise(box_task, stdev=0.2, base_planner=make(CEM, box_task, model, total_reward), seed=3)
    batched_traces = together(batch_planner(noisy, 2), [0, 1], steps=2)
    assert len(model.batch_calls) == 2 * 3 and not model.calls
    for one, other in zip(separate(noisy, [0, 1], steps=2), batched_traces):
        for (action, _), (batched_action, _) in zip(one, other):
            np.testing.assert_array_equal(action, batched_action)
