"""The shared search loop: validation, one predict call per iteration, what it returns."""

from __future__ import annotations

import numpy as np
import pytest

from wm_core.api.contracts import ContractError

from wm_cem import CEM, MPPI
from wm_cem.search import elite_count, top_indices

TARGET = np.array([[0.5, -1.0], [0.25, 1.5], [-0.75, 0.0]], np.float32)


def make_cem(box2_task, model, objective, **settings):
    defaults = dict(horizon=3, iterations=2, proposals=50, fraction=0.2, seed=0)
    return CEM(task=box2_task, objective_fn=objective, **model.parts(), **{**defaults, **settings})


@pytest.mark.parametrize(
    "setting, value, words",
    [
        ("proposals", 0, "proposals must be an integer >= 1, got 0"),
        ("horizon", 0, "horizon must be an integer >= 1, got 0"),
        ("iterations", 0, "iterations must be an integer >= 1, got 0"),
        ("iterations", 2.5, "iterations must be an integer >= 1, got 2.5"),
        ("fraction", 0.0, "fraction must be in (0, 1], got 0.0"),
        ("fraction", 1.5, "fraction must be in (0, 1], got 1.5"),
        ("fraction", 0.005, "fraction=0.005 of proposals=50 leaves 0 elites"),
        ("min_stdev", -0.1, "min_stdev must be >= 0, got -0.1"),
    ],
)
def test_bad_settings_are_rejected_by_name(box2_task, target_model, total_reward, setting, value, words):
    with pytest.raises(ValueError) as error:
        make_cem(box2_task, target_model(TARGET), total_reward, **{setting: value})
    assert words in str(error.value)


def test_elite_count_rounds_fraction_of_proposals():
    assert elite_count(1000, 0.1) == 100
    assert elite_count(10, 0.05) == 1  # half rounds up
    with pytest.raises(ValueError, match=r"fraction=0.04 of proposals=10 leaves 0 elites \(0.4 rounded\)"):
        elite_count(10, 0.04)
    assert elite_count(15, 0.1) == 2
    assert elite_count(1, 1.0) == 1


def test_top_indices_are_the_best_scores_best_first():
    scores = np.array([0.3, -1.0, 2.0, 0.9, 2.0, -5.0], np.float32)
    assert top_indices(scores, 3).tolist() in ([2, 4, 3], [4, 2, 3])
    assert top_indices(scores, 6)[-1] == 5
    assert scores[top_indices(scores, 6)].tolist() == sorted(scores.tolist(), reverse=True)


def test_every_iteration_is_one_predict_call_with_all_proposals(box2_task, target_model, total_reward, decide_once):
    model = target_model(TARGET)
    decide_once(make_cem(box2_task, model, total_reward, iterations=4, proposals=30))
    assert len(model.calls) == 4
    for actions, _ in model.calls:
        assert actions.shape == (30, 3, 2) and actions.dtype == np.float32


def test_proposals_stay_within_the_action_bounds(box2_task, target_model, total_reward, decide_once):
    model = target_model(TARGET * 10)  # optimum far outside the bounds
    decide_once(make_cem(box2_task, model, total_reward, iterations=3))
    actions = np.concatenate([actions for actions, _ in model.calls])
    assert actions[..., 0].min() >= -1 and actions[..., 0].max() <= 1
    assert actions[..., 1].min() >= -2 and actions[..., 1].max() <= 2


def test_acts_with_the_refitted_mean_not_the_best_sample(box2_task, target_model, total_reward, decide_once):
    model = target_model(TARGET)
    action, _ = decide_once(make_cem(box2_task, model, total_reward, iterations=1, proposals=40, fraction=0.25))
    (actions, predictions), = model.calls
    scores = predictions["reward"].sum(-1)
    elites = np.argsort(scores)[::-1][:10]
    np.testing.assert_allclose(action, actions[elites, 0].mean(0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(action, actions[elites[0], 0])


def test_returns_the_best_last_iteration_proposals_prediction(box2_task, target_model, total_reward, decide_once):
    model = target_model(TARGET)
    _, prediction = decide_once(make_cem(box2_task, model, total_reward, iterations=3))
    actions, predictions = model.calls[-1]
    best = np.argmax(predictions["reward"].sum(-1))
    assert prediction.keys() == {"reward"}
    np.testing.assert_array_equal(prediction["reward"], predictions["reward"][best])
    assert prediction["reward"].shape == (3,)


def test_plan_predict_fn_predicts_the_plan_acted_on_once_per_decision(
    box2_task, target_model, total_reward, decide_once
):
    model, plan_model = target_model(TARGET), target_model(TARGET)
    planner = make_cem(box2_task, model, total_reward, iterations=2, proposals=40, fraction=0.25)
    planner.plan_predict_fn = plan_model.predict_fn
    action, prediction = decide_once(planner)
    (plan, predictions), = plan_model.calls
    np.testing.assert_array_equal(plan, planner.solution.plan()[None])
    np.testing.assert_array_equal(plan[0, 0], action)
    np.testing.assert_array_equal(prediction["reward"], predictions["reward"][0])
    assert len(model.calls) == 2


def test_wrong_reward_shape_names_received_and_expected(box2_task, total_reward, decide_once):
    class ExtraAxis:
        def parts(self):
            return dict(
                reset_fn=lambda **kw: None,
                observe_fn=lambda *args: None,
                predict_fn=lambda actions, state: {"reward": np.zeros((*actions.shape[:2], 1), np.float32)},
            )

    with pytest.raises(ContractError, match=r"reward of shape \(50, 3, 1\), expected \[proposals, horizon\] = \(50, 3\)"):
        decide_once(make_cem(box2_task, ExtraAxis(), total_reward))


def test_wrong_leading_dims_of_other_predictions_are_named(box2_task, total_reward, decide_once):
    class ShortImages:
        def parts(self):
            return dict(
                reset_fn=lambda **kw: None,
                observe_fn=lambda *args: None,
                predict_fn=lambda actions, state: {
                    "reward": np.zeros(actions.shape[:2], np.float32),
                    "image": np.zeros((len(actions), 2, 8, 8, 3), np.uint8),
                },
            )

    with pytest.raises(ContractError, match=r"'image' of shape \(50, 2, 8, 8, 3\), expected leading dims"):
        decide_once(make_cem(box2_task, ShortImages(), total_reward))


def test_missing_reward_is_reported(box2_task, total_reward, decide_once):
    class NoReward:
        def parts(self):
            return dict(reset_fn=lambda **kw: None, observe_fn=lambda *args: None,
                        predict_fn=lambda actions, state: {"image": np.zeros(actions.shape[:2])})

    with pytest.raises(ContractError, match=r"must return a dict with 'reward'.*\['image'\]"):
        decide_once(make_cem(box2_task, NoReward(), total_reward))


def test_nan_scores_are_reported_with_count_and_index(box2_task, target_model, decide_once):
    def objective(predictions):
        scores = predictions["reward"].sum(-1)
        scores[[3, 7]] = np.nan
        return scores

    with pytest.raises(ContractError, match=r"NaN or infinite scores for 2 of 50 proposals \(first at index 3"):
        decide_once(make_cem(box2_task, target_model(TARGET), objective))


def test_wrong_score_shape_is_reported(box2_task, target_model, decide_once):
    with pytest.raises(ContractError, match=r"scores of shape \(50, 3\), expected \[proposals\] = \(50,\)"):
        decide_once(make_cem(box2_task, target_model(TARGET), lambda predictions: predictions["reward"]))


def test_state_is_observed_once_per_step_and_passed_to_predict(box2_task, total_reward):
    seen = []

    def predict_fn(actions, state):
        seen.append(int(state["steps"]))
        return {"reward": np.zeros(actions.shape[:2], np.float32)}

    planner = CEM(
        predict_fn=predict_fn,
        observe_fn=lambda frames, actions, rewards, state: {"steps": state["steps"] + 1},
        reset_fn=lambda **kw: {"steps": 0},
        task=box2_task, objective_fn=total_reward, horizon=2, iterations=2, proposals=10,
    )
    planner.reset(seed=0)
    for _ in range(3):
        planner(np.zeros((64, 64, 3), np.uint8), np.zeros(2, np.float32), 0.0)
    assert seen == [1, 1, 2, 2, 3, 3]


def test_over_wires_the_models_functions_and_settings_win(box2_task, target_model, total_reward, decide_once):
    model = target_model(TARGET)
    model.predict_batch_fn = lambda actions, states: {"reward": np.zeros(actions.shape[:3], np.float32)}
    model.propose_fn = lambda state, horizon, count, seed=0: np.zeros((count, horizon, 2), np.float32)
    cem = CEM.over(model, box2_task, total_reward, horizon=3, proposals=50, policy_proposals=2, seed=0)
    wired = ("predict_fn", "observe_fn", "reset_fn", "predict_batch_fn", "propose_fn")
    assert [getattr(cem, name) == getattr(model, name) for name in wired] == [True] * 5
    assert (cem.horizon, cem.proposals, cem.policy_proposals, cem.objective_fn) == (3, 50, 2, total_reward)
    settings = dict(horizon=3, iterations=2, proposals=50, fraction=0.2, seed=0)  # make_cem's
    over = CEM.over(target_model(TARGET), box2_task, total_reward, **settings)
    by_hand = make_cem(box2_task, target_model(TARGET), total_reward)
    np.testing.assert_array_equal(decide_once(over)[0], decide_once(by_hand)[0])
    # Functions the model lacks stay unset; a setting naming a model function wins.
    bare = MPPI.over(target_model(TARGET), box2_task, total_reward)
    assert isinstance(bare, MPPI) and (bare.predict_batch_fn, bare.propose_fn) == (None, None)
    assert CEM.over(model, box2_task, total_reward, predict_batch_fn=None).predict_batch_fn is None
