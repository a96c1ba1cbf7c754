"""Is an agent learning?  Its score between the random planner and the oracle.

A learned world model is judged by what a planner achieves with it, on the
same start states, against two references:

* **random** — uniformly random actions (the floor);
* **oracle** — the *same* planner planning with the ground-truth simulator
  (:class:`~wm_core.models.oracle.OracleWorldModel`): what a perfect world model
  would give this planner (the ceiling).

``gap_closed = (agent - random) / (oracle - random)``: 0 is no better than
random, 1 is as good as a perfect model.  The agent and the oracle play the
episodes with environment seeds ``seed .. seed + episodes - 1``; the random
planner plays each of those start states ``random_repeats`` times (random
returns vary much more than planned ones, and it costs no model).

:func:`learnable_point_task` is the pixel task the learning tests and the
learning benchmark use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from wm_core.models.oracle import OracleWorldModel
from wm_core.planning.planners import Planner, Random
from wm_core.rollout.simulate import simulate
from wm_core.tasks.toy import PointTask

__all__ = ["LearningScore", "learnable_point_task", "score_against_references"]

PlannerFactory = Callable[[OracleWorldModel], Planner]


@dataclass(frozen=True)
class LearningScore:
    """Mean undiscounted returns of the agent and its two references."""

    agent: float
    random: float
    oracle: float

    @property
    def gap_closed(self) -> float:
        """``(agent - random) / (oracle - random)``; ``nan`` if the references tie."""
        gap = self.oracle - self.random
        return (self.agent - self.random) / gap if gap else float("nan")

    def __str__(self) -> str:
        return (
            f"agent {self.agent:.2f}, random {self.random:.2f}, oracle {self.oracle:.2f}: "
            f"{100 * self.gap_closed:.0f}% of the gap closed"
        )


def learnable_point_task(length: int = 20, size: int = 64) -> PointTask:
    """The point task drawn as a gauge on ``size x size`` frames, moving 0.3 per step.

    Frames only (the agent never sees the position).  The gauge makes a
    frame predicted at a wrong position overlap the true one in proportion
    to the error (a frame error that shrinks smoothly with the position
    error); at speed 0.3 random actions wander over the whole line, so the
    seed episodes show every position and reward, and a planner reaches the
    goal from anywhere in at most 5 steps.
    """
    return PointTask(length=length, size=size, speed=0.3, gauge=True)


def score_against_references(
    task: Any,
    agent: Planner,
    planner_for: PlannerFactory,
    episodes: int = 10,
    seed: int = 10_000,
    random_repeats: int = 10,
) -> LearningScore:
    """Play ``agent``, the oracle and the random planner from the same start states.

    :param agent: the planner under test (e.g. CEM over a trained model).
    :param planner_for: builds the agent's planner around a world model; it
        is given the oracle, so the ceiling uses the same search.
    :param episodes: episodes for the agent and the oracle.
    :param seed: environment seed of the first episode (keep it apart from
        the seeds training used).
    :param random_repeats: random-planner episodes per start state.
    """
    oracle = OracleWorldModel(task)
    try:
        oracle_score = simulate(task, planner_for(oracle), episodes, seed=seed)[2]
    finally:
        oracle.close()
    random_scores = [
        simulate(task, Random(task, seed=repeat), episodes, seed=seed)[2]
        for repeat in range(random_repeats)
    ]
    return LearningScore(
        agent=simulate(task, agent, episodes, seed=seed)[2],
        random=float(np.mean(random_scores)),
        oracle=oracle_score,
    )
