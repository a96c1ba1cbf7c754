"""iCEM specifics: population decay, elite carry-over, the mean in the last population."""

from __future__ import annotations

import numpy as np
import pytest

from wm_cem import ICEM
from wm_cem.search import top_indices

TARGET = np.array([[0.5, 1.0], [-0.5, -1.0], [0.25, 0.5], [0.0, 0.0]], np.float32)


def make_icem(task, model, objective, **settings):
    defaults = dict(horizon=4, iterations=5, proposals=100, fraction=0.1, seed=0)
    return ICEM(task=task, objective_fn=objective, **model.parts(), **{**defaults, **settings})


def test_population_decays_down_to_twice_the_elites(box2_task, target_model, total_reward, decide_once):
    model = target_model(TARGET)
    planner = make_icem(box2_task, model, total_reward, population_decay=2.0)
    decide_once(planner)
    assert [planner.population_size(i) for i in range(5)] == [100, 50, 25, 20, 20]
    assert [len(actions) for actions, _ in model.calls] == [100, 50, 25, 20, 20]


def test_no_decay_keeps_the_population(box2_task, target_model, total_reward):
    planner = make_icem(box2_task, target_model(TARGET), total_reward, population_decay=1.0)
    assert [planner.population_size(i) for i in range(5)] == [100] * 5


def test_best_elites_carry_over_to_the_next_iteration(box2_task, target_model, total_reward, decide_once):
    model = target_model(TARGET)
    planner = make_icem(box2_task, model, total_reward, keep_elites=0.3)  # 3 of 10 elites
    decide_once(planner)
    for (previous, predicted), (current, _) in zip(model.calls[:-2], model.calls[1:-1]):
        best = previous[top_indices(predicted["reward"].sum(-1), 3)]
        np.testing.assert_array_equal(current[-3:], best)


def test_the_mean_joins_the_last_iteration(box2_task, target_model, total_reward, decide_once):
    model = target_model(TARGET)
    planner = make_icem(box2_task, model, total_reward, momentum=0.0)
    decide_once(planner)
    before_last = model.calls[-2]
    elites = before_last[0][top_indices(before_last[1]["reward"].sum(-1), 10)]
    np.testing.assert_allclose(model.calls[-1][0][-1], elites.mean(0), rtol=1e-5, atol=1e-6)


def test_next_decision_starts_with_the_shifted_elites(box2_task, target_model, total_reward):
    model = target_model(TARGET)
    planner = make_icem(box2_task, model, total_reward, iterations=2, keep_elites=0.2)
    planner.reset(seed=0)
    image = np.zeros((64, 64, 3), np.uint8)
    planner(image, np.zeros(2, np.float32), 0.0)
    kept = planner.kept_elites.copy()
    planner(image, np.zeros(2, np.float32), 0.0)
    first_of_next = model.calls[2][0]
    np.testing.assert_array_equal(first_of_next[-2:, :3], kept[:, 1:])


def test_momentum_blends_old_and_fitted(box2_task, target_model, total_reward):
    planner = make_icem(box2_task, target_model(TARGET), total_reward, momentum=0.25)
    elites = np.tile(TARGET, (10, 1, 1))
    refitted = planner.refit(planner.initial, elites, np.zeros(10, np.float32))
    np.testing.assert_allclose(refitted.mean, 0.75 * TARGET, rtol=1e-6)
    np.testing.assert_allclose(refitted.stdev, 0.25 * planner.initial.stdev, rtol=1e-6)


def test_discrete_tasks_are_rejected_with_a_pointer_to_cem(discrete_task, target_model, total_reward):
    with pytest.raises(TypeError, match=r"ICEM needs a Box action space.*Discrete\(3\).*Use CEM"):
        make_icem(discrete_task, target_model(TARGET), total_reward)


@pytest.mark.parametrize(
    "setting, value, words",
    [
        ("beta", -1.0, "beta must be >= 0, got -1.0"),
        ("population_decay", 0.5, "population_decay must be >= 1, got 0.5"),
        ("keep_elites", 1.5, "keep_elites must be in [0, 1], got 1.5"),
        ("momentum", 1.0, "momentum must be in [0, 1), got 1.0"),
    ],
)
def test_bad_icem_settings_are_rejected_by_name(box2_task, target_model, total_reward, setting, value, words):
    with pytest.raises(ValueError) as error:
        make_icem(box2_task, target_model(TARGET), total_reward, **{setting: value})
    assert words in str(error.value)
