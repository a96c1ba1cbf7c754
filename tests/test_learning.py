from __future__ import annotations

import numpy as np
import pytest

from wm_core.planning import objectives
from wm_core.evaluation.scoring import LearningScore, learnable_point_task, score_against_references
from wm_core.models.oracle import OracleWorldModel
from wm_core.planning.planners import ModelPlanner, Random


class GreedyPlanner(ModelPlanner):
    """Tries full left, stay and full right for one step; takes the best predicted."""

    CHOICES = np.array([[[-1.0]], [[0.0]], [[1.0]]], np.float32)

    def __init__(self, task, world_model):
        super().__init__(task, world_model.predict_fn, world_model.observe_fn,
                         world_model.reset_fn, objectives.TotalReward(), seed=0)

    def plan(self, state):
        predictions = self.predict_fn(self.CHOICES, state)
        return self.CHOICES[int(np.argmax(self.objective_fn(predictions))), 0], predictions


def test_gap_closed_is_the_agents_share_of_the_random_to_oracle_gap():
    assert LearningScore(agent=14.0, random=6.0, oracle=22.0).gap_closed == 0.5
    assert LearningScore(agent=4.0, random=6.0, oracle=22.0).gap_closed == -0.125
    assert np.isnan(LearningScore(agent=1.0, random=3.0, oracle=3.0).gap_closed)
    assert "50% of the gap" in str(LearningScore(agent=14.0, random=6.0, oracle=22.0))


def test_the_oracle_as_agent_closes_the_whole_gap():
    task = learnable_point_task(length=8)
    oracle = OracleWorldModel(task)
    score = score_against_references(
        task, GreedyPlanner(task, oracle), lambda model: GreedyPlanner(task, model), episodes=6)
    assert score.gap_closed == 1.0
    assert score.oracle > score.random + 1.0


def test_random_actions_as_agent_close_none_of_it():
    task = learnable_point_task(length=8)
    score = score_against_references(
        task, Random(task, seed=99), lambda model: GreedyPlanner(task, model),
        episodes=20, random_repeats=20)
    assert abs(score.gap_closed) < 0.25


def test_references_play_the_agents_start_states():
    task = learnable_point_task(length=8)
    first = score_against_references(task, Random(task, seed=1), lambda m: GreedyPlanner(task, m),
                                     episodes=3, seed=5)
    again = score_against_references(task, Random(task, seed=1), lambda m: GreedyPlanner(task, m),
                                      episodes=3, seed=5)
    assert first == again
    moved = score_against_references(task, Random(task, seed=1), lambda m: GreedyPlanner(task, m),
                                     episodes=3, seed=50)
    assert moved.oracle != pytest.approx(first.oracle)


def test_learnable_task_draws_a_gauge_that_grows_with_the_position():
    env = learnable_point_task().create_env()
    env.reset(seed=0)
    lit = []
    for position in (-0.5, 0.0, 0.5):
        env.set_sim_state({**env.get_sim_state(), "position": np.asarray(position)})
        lit.append(int((env.render_image()[0, :, 0] > 0).sum()))
    assert lit[0] < lit[1] < lit[2]
    assert lit[1] == 33  # columns 0..32: the centre column round(31.5) and all left of it
