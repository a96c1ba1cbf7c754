"""PlaNet + CEM learns to act from pixels: most of the random-to-oracle gap closed.

On :func:`wm_core.evaluation.scoring.learnable_point_task` the agent sees frames only.
``train_eval_loop`` collects 5 random seed episodes, then 4 iterations of
one noisy CEM episode and 50 training updates; the trained agent then plays
10 held-out start states, as do the oracle with the same CEM and the random
planner (:func:`wm_core.evaluation.scoring.score_against_references`).  Each seed must
close at least 75 % of the gap, and the models must rank action sequences
better than chance: on the mean over the three seeds (no seed worse than chance),
since one seed's figure moves with the processor's arithmetic (seed 2: 0.27 on one
AVX2 AMD EPYC, 0.06 on another, where it closed 80 % of the gap).  Training on
actions shifted by one step fails both (seed 2: 41 % of the gap, rank correlation 0.05).  Rewards shifted by one
step pass on this task (79 % and 0.72 on seed 0): the reward follows the
position, which moves 0.3 per step, so a one-step lag still points at the goal.
"""

from __future__ import annotations


import pytest
import tf_keras

from wm_cem.cem import CEM
from wm_core.loops import train_eval
from wm_core.planning import objectives, planners
from wm_core.evaluation import evaluate_planner
from wm_core.evaluation.scoring import learnable_point_task, score_against_references
from wm_planet import planet

# Mean rank correlation of predicted vs true returns over 20 held-out states, averaged over
# the seeds: 0 is chance (one seed's standard error ~0.04 here).  Measured on seeds 0/1/2 (AMD EPYC, avx2):
# 0.72/0.58/0.27 (94/91/87 % of the gap) with TensorFlow's oneDNN kernels and wm_planet.noise's
# streams; 0.79/0.65/0.22 with oneDNN before those; with Eigen's 0.84 (seed 0) and 0.37 (seed 2).
# Another AMD EPYC (avx2, no avx512), 2026-12-07: 0.90/0.55/0.06 (90/91/80 %).
RANK_CORRELATION = 0.15
SIZES = dict(deter_size=32, stoch_size=8, hidden_size=32, embed_size=256, depth=8, reward_units=32)


def make_cem(task, model, seed: int) -> CEM:
    return CEM.over(model, task, objectives.DiscountedReward(), horizon=8, iterations=5, proposals=200,
                    fraction=0.1, seed=seed)


@pytest.mark.slow
def test_planet_cem_closes_most_of_the_gap_to_the_oracle(tmp_path):
    correlations = []
    for seed in (0, 1, 2):
        score, quality = learn_and_score(tmp_path / f"seed{seed}", seed)
        figures = {name: round(quality[name], 2) for name in ("rank_correlation", "normalized_regret")}
        print(f"seed {seed}: {score}; planning quality {figures}")
        assert score.gap_closed >= 0.75, f"seed {seed}: {score}"
        assert quality["rank_correlation"] > 0.0, f"seed {seed}: {quality}"
        correlations.append(quality["rank_correlation"])
    assert sum(correlations) / len(correlations) >= RANK_CORRELATION, correlations


def learn_and_score(directory, seed: int):
    """Train PlaNet + CEM on the point task; its score against the references and its mean planning quality."""
    tf_keras.utils.set_random_seed(seed)
    task = learnable_point_task()
    world_model = planet.PlaNet(
        task, str(directory / "model"), planet.RecurrentStateSpaceModel(task, seed=seed, **SIZES),
        train_steps=50, batch=16, duration=10, learning_rate=3e-3, seed=seed,
    )
    agent = make_cem(task, world_model, seed)
    train_eval.train_eval_loop(
        task=task, train_planner=planners.GaussianRandomNoise(task, 0.3, agent, seed=seed),
        eval_planner=agent, train_fn=world_model.train_fn, seed_episodes=5, num_iterations=4,
        eval_every_n_iterations=4, num_eval_episodes=2, episodes_dir=str(directory / "episodes"),
        model_dir=world_model.model_dir, seed=seed,
    )
    score = score_against_references(task, agent, lambda oracle: make_cem(task, oracle, seed))
    quality = evaluate_planner(task, agent, str(directory / "episodes" / "eval"), num_states=20, seed=seed)
    return score, quality.mean
