"""TD-MPC + MPPI learns to act from pixels on the point task.

The agent sees frames only.  ``train_eval_loop`` collects 5 random seed
episodes, then 8 iterations of one noisy MPPI episode and 100 updates; the
trained agent (MPPI over the model's rewards and terminal value, with 16
policy-prior proposals) then plays 10 held-out start states, as do the
oracle with the same MPPI on the true simulator's rewards and the random
planner (:func:`wm_core.evaluation.scoring.score_against_references`).  Each
run must close at least 75 % of the random -> oracle gap.  The suite runs
seed 0 of the plain one-pixel bar, the harder drawing (each run costs
minutes); ``benchmarks/learning_point.py`` runs three seeds of both drawings.
"""

from __future__ import annotations

import pytest

from wm_cem.mppi import MPPI
from wm_core.evaluation.scoring import learnable_point_task, score_against_references
from wm_core.loops import train_eval
from wm_core.planning import objectives, planners
from wm_core.tasks.toy import PointTask
from wm_tdmpc.networks import TDMPCModel
from wm_tdmpc.world_model import TDMPC

DISCOUNT = 0.9
# No random shift: the point's position is where its bar is drawn, and a shift of up to 4
# pixels moves it by up to 0.125, an eighth of the reward's range.  Without it the plain bar
# closed 88 / 98 / 99 / 99 / 93 % of the gap on seeds 0-4, with it 74 / 95 / 96 / 94 / 93 %
# (2026-12-07, AMD EPYC with avx512 and avx512_bf16, one core); without it and with the
# dynamics' LayerNorm, 91 / 97 / 98 / 99 / 99 %.
SIZES = dict(frame_stack=1, channels=8, units=64, discount=DISCOUNT, shift_pad=0)


def make_mppi(task, model, seed: int, prior: bool = True) -> MPPI:
    """The agent's MPPI (``prior``: with the model's value and proposals), or the oracle's."""
    objective = objectives.DiscountedReturnWithValue if prior else objectives.DiscountedReward
    return MPPI.over(
        model, task, objective(DISCOUNT), horizon=3, iterations=4, proposals=100, fraction=0.2,
        temperature=0.5, min_stdev=0.05, warm_start=True, seed=seed, policy_proposals=16 if prior else 0,
    )


def learn(task, directory, seed: int):
    """The trained agent's score against the references."""
    world_model = TDMPC(
        task, str(directory / "model"), TDMPCModel(task, seed=seed, **SIZES),
        train_steps=100, batch=32, learning_rate=1e-3, seed=seed,
    )
    agent = make_mppi(task, world_model, seed)
    train_eval.train_eval_loop(
        task=task, train_planner=planners.GaussianRandomNoise(task, 0.3, agent, seed=seed),
        eval_planner=agent, train_fn=world_model.train_fn, seed_episodes=5, num_iterations=8,
        eval_every_n_iterations=8, num_eval_episodes=1, episodes_dir=str(directory / "episodes"),
        model_dir=world_model.model_dir, seed=seed,
    )
    return score_against_references(task, agent, lambda oracle: make_mppi(task, oracle, seed, prior=False))


DRAWINGS = {
    "gauge": learnable_point_task,
    "plain": lambda: PointTask(length=20, size=64, speed=0.3),
}


@pytest.mark.slow
@pytest.mark.parametrize("drawing", ["plain"])  # both drawings, three seeds: the benchmark
def test_tdmpc_mppi_closes_most_of_the_gap_to_the_oracle(tmp_path, drawing):
    score = learn(DRAWINGS[drawing](), tmp_path, seed=0)
    print(f"{drawing}, seed 0: {score}")
    assert score.gap_closed >= 0.75, str(score)
