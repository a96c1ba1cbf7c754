"""Short CPU training on real cartpole-balance episodes, against naive baselines.

Random-action episodes of ``dmc:cartpole-balance`` (action repeat 8) are
collected: the pole starts upright and falls, so the reward (summed over
the 8 repeats) swings from ~8 down to ~0 and back as the pole passes the
top; the pole's angle is visible in the frame.
A small SV2P is trained briefly (the paper's first, deterministic phase:
``z`` from the prior) on some episodes and evaluated on held-out ones: from
every other context window it predicts ``HORIZON`` rows under the true
actions.  Baselines: copying the last context frame, and predicting the
training mean reward.  The numbers are printed (``pytest -s``).
"""

from __future__ import annotations

import numpy as np
import pytest

from wm_core import npz
from wm_core.cli import seed_global_generators
from wm_core.planners import Random
from wm_core.simulate import simulate
from wm_core.tasks import DeepMindControl
from wm_sv2p import SV2P, KLSchedule, create_train_fn

HORIZON = 4
TRAIN_EPISODES, HELD_OUT_EPISODES = 8, 3
TRAIN_STEPS = 500
WINDOW_STRIDE = 2
# Asserted margins; measured ratios are in test_short_training_beats_baselines.
FRAME_BOUND, REWARD_BOUND = 0.95, 0.75
MODEL = dict(base_channels=8, num_masks=4, lstm_kernel=3, cdna_kernel=5)


def collect(task: DeepMindControl, count: int, seed: int) -> list[dict]:
    """``count`` uniformly random-action episodes (episode ``i`` reset with ``seed + i``)."""
    episodes, _, _ = simulate(task, Random(task, seed=seed), count, seed=seed)
    return [{key: episode[key] for key in ("image", "action", "reward")} for episode in episodes]


def evaluate(model: SV2P, episodes: list[dict], mean_reward: float) -> dict[str, float]:
    """Mean squared errors of the model and the baselines over held-out windows.

    Frames are compared in ``[0, 1]``; every window predicts rows
    ``start .. start + HORIZON - 1`` from rows ``start - input_length .. start - 1``.
    """
    errors = {name: [] for name in ("frame", "copy_last_frame", "reward", "constant_reward")}
    for episode in episodes:
        for start in range(model.input_length, len(episode["reward"]) - HORIZON + 1, WINDOW_STRIDE):
            context, future = slice(start - model.input_length, start), slice(start, start + HORIZON)
            state = model.observe(
                episode["image"][context], episode["action"][context], episode["reward"][context],
                model.reset(seed=start),
            )
            predictions = model.predict(episode["action"][future][None], state, return_frames=True)
            truth = episode["image"][future] / 255.0
            rewards = episode["reward"][future]
            errors["frame"].append(np.mean((predictions["image"][0] / 255.0 - truth) ** 2))
            errors["copy_last_frame"].append(np.mean((episode["image"][start - 1] / 255.0 - truth) ** 2))
            errors["reward"].append(np.mean((predictions["reward"][0] - rewards) ** 2))
            errors["constant_reward"].append(np.mean((mean_reward - rewards) ** 2))
    return {name: float(np.mean(values)) for name, values in errors.items()}


def train_and_evaluate(directory, seed: int, train_steps: int = TRAIN_STEPS) -> dict[str, float]:
    """Collect, train ``train_steps`` steps from scratch, evaluate on held-out episodes.

    Everything follows ``seed`` (episodes, initial weights, batches, noise):
    a run is reproducible."""
    seed_global_generators(seed)
    task = DeepMindControl("cartpole", "balance", action_repeat=8)
    train = collect(task, TRAIN_EPISODES, seed=seed)
    held_out = collect(task, HELD_OUT_EPISODES, seed=seed + 1000)
    npz.save_dictionaries(train, str(directory / "episodes"))
    mean_reward = float(np.mean(np.concatenate([episode["reward"][1:] for episode in train])))

    model = SV2P(
        task=task, input_length=2, output_length=HORIZON, model_dir=str(directory / "model"), **MODEL
    )
    schedule = KLSchedule(deterministic_steps=train_steps, posterior_steps=0, kl_ramp_steps=0)
    train_fn = create_train_fn(
        model, train_steps=train_steps, batch=8, learning_rate=1e-3, kl_schedule=schedule, seed=seed
    )
    train_fn(str(directory / "episodes"))
    return evaluate(model, held_out, mean_reward)


@pytest.mark.slow
def test_short_training_beats_baselines(tmp_path):
    """Measured model / baseline MSE ratios on seeds 0, 1, 2: frames 0.82,
    0.82, 0.84; rewards 0.57, 0.41, 0.57 (asserted on seed 0)."""
    errors = train_and_evaluate(tmp_path, seed=0)
    print(f"\ncartpole-balance held-out MSE after {TRAIN_STEPS} steps: {errors}")
    assert errors["frame"] < FRAME_BOUND * errors["copy_last_frame"], errors
    assert errors["reward"] < REWARD_BOUND * errors["constant_reward"], errors
