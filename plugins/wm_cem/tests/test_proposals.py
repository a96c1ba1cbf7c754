"""A world model's action proposals (``propose_fn``, ``policy_proposals``) join the population.

The fake model rewards one action sequence only (a needle: every step
within 1e-3 of it), which random sampling of a 4-step plan never hits.  A
planner given proposals that contain the needle acts with its first step; a
planner without proposals, or with a broken prior that proposes anything
else, does not.
"""

from __future__ import annotations

import numpy as np
import pytest

from wm_core.testing import PlannerContract

from wm_cem import CEM, ICEM, MPPI

NEEDLE = np.array([[0.731], [-0.412], [0.188], [0.905]], np.float32)
SETTINGS = dict(horizon=4, iterations=4, proposals=40, fraction=0.025, seed=0)


class NeedleModel:
    """Reward 1 per step when the whole plan is within 1e-3 of ``NEEDLE``, else 0;
    ``propose_fn`` proposes ``proposal`` (and records its calls)."""

    def __init__(self, proposal: np.ndarray = NEEDLE):
        self.proposal = proposal
        self.proposals_made: list[tuple[int, int, int]] = []

    def reset_fn(self, **kwargs):
        return {"steps": np.zeros((), np.int64)}

    def observe_fn(self, frames, actions, rewards, state):
        return {"steps": state["steps"] + len(frames)}

    def predict_fn(self, actions, state):
        hit = np.all(np.abs(actions - NEEDLE[: actions.shape[1]]) < 1e-3, axis=(1, 2))
        return {"reward": np.repeat(hit[:, None], actions.shape[1], 1).astype(np.float32)}

    def propose_fn(self, state, horizon, count, seed=0):
        self.proposals_made.append((horizon, count, seed))
        return np.repeat(self.proposal[None, :horizon], count, 0)

    def parts(self, proposals: bool = True) -> dict:
        parts = {"predict_fn": self.predict_fn, "observe_fn": self.observe_fn, "reset_fn": self.reset_fn}
        if proposals:
            parts["propose_fn"] = self.propose_fn
        return parts


PLANNERS = {"cem": CEM, "mppi": MPPI, "icem": ICEM}


@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_planners_act_on_the_proposals_of_the_model(name, box_task, total_reward, decide_once):
    model = NeedleModel()
    planner = PLANNERS[name](task=box_task, objective_fn=total_reward, **model.parts(),
                             policy_proposals=2, **SETTINGS)
    action, prediction = decide_once(planner)
    np.testing.assert_allclose(action, NEEDLE[0], atol=0.01)
    np.testing.assert_array_equal(prediction["reward"], np.ones(4, np.float32))
    assert model.proposals_made and all(call[:2] == (4, 2) for call in model.proposals_made)


@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_without_proposals_or_with_a_broken_prior_the_needle_is_missed(
    name, box_task, total_reward, decide_once
):
    broken = NeedleModel(proposal=np.zeros_like(NEEDLE))
    for model, proposals in ((NeedleModel(), 0), (broken, 2)):
        planner = PLANNERS[name](task=box_task, objective_fn=total_reward, **model.parts(),
                                 policy_proposals=proposals, **SETTINGS)
        action, prediction = decide_once(planner)
        assert abs(float(action[0]) - float(NEEDLE[0, 0])) > 0.05
        assert not prediction["reward"].any()


def test_proposals_without_a_propose_fn_are_a_clear_error(box_task, total_reward):
    with pytest.raises(ValueError, match="policy_proposals=3 but was given no propose_fn"):
        MPPI(task=box_task, objective_fn=total_reward, **NeedleModel().parts(proposals=False),
             policy_proposals=3, **SETTINGS)
    with pytest.raises(ValueError, match="policy_proposals must be an integer >= 0"):
        CEM(task=box_task, objective_fn=total_reward, **NeedleModel().parts(), policy_proposals=-1,
            **SETTINGS)


def test_proposals_are_drawn_once_per_decision_with_the_planners_seed(box_task, total_reward, decide_once):
    seeds = []
    for _ in range(2):
        model = NeedleModel()
        decide_once(MPPI(task=box_task, objective_fn=total_reward, **model.parts(), policy_proposals=2,
                         **SETTINGS))
        assert len(model.proposals_made) == 1
        seeds.append(model.proposals_made[0][2])
    assert seeds[0] == seeds[1]


class TestMPPIWithProposalsHonoursThePlannerContract(PlannerContract):
    @pytest.fixture
    def task(self, box_task):
        return box_task

    @pytest.fixture
    def planner(self, task, total_reward):
        return MPPI(task=task, objective_fn=total_reward, **NeedleModel().parts(), policy_proposals=2,
                    warm_start=True, **SETTINGS)
