"""Short CPU training on real cartpole-balance episodes; open-loop predictions vs baselines.

Random-action episodes of ``dmc:cartpole-balance`` (action repeat 8): the
pole starts upright and falls, so the reward (0-8 per step) varies with the
pole's angle, which the frames show (random swing-up episodes keep the pole
down: too little reward variance to learn from).  After 300 training steps
of 16×25 rows on 20 episodes, the model filters a prefix of each of 4
held-out episodes and predicts the next 10 steps open-loop from the actions
alone, for windows starting every 3 steps (148 windows).  The reward
prediction is the model's expected reward: the mean over 64 sampled
open-loop rollouts of the same actions; the frames are the prior means'.
Episodes, weights, batches and samples all follow the seed; a run is
reproducible.

Why the reward is the sampled mean: with 5 training episodes, filtered
(0-step) rewards were far better than the constant (held-out MSE ~1.3 vs
4.0-4.7) and 1-step open-loop ones too (~1.7-2.1 vs ~3.6-4.3), but the
deterministic prior-mean rollout drifts: its error passed the constant's by
step 4-5 and reached ~4.5-7.3 at step 10 (seeds 3, 4), a confident wrong
state.  Averaging sampled rollouts gives the mean of the model's predictive
distribution, which falls back towards the mean reward where the model is
unsure.  Latent overshooting (distance 10) did not fix it (still above the
constant on seeds 3 and 4).  Twice the episodes at the same step count, and
148 windows instead of 16 (the constant's own error moved 3.58 → 3.33 for
seed 3 and 4.48 → 3.69 for seed 4 between the two window sets) made the
comparison less noisy (on the episodes of the time).

Measured on this 2-core machine (MSE per window; model / baseline, ratio).
The random episodes changed when planners began drawing a fresh random
stream per episode (same seeds, other actions), and the results moved with
them: with 10 training episodes the reward ratios became 0.89, 0.72, 1.31,
0.73, 0.80 (seeds 0-4), so this test now trains on 20:

====  =====================  ======================
seed  reward / const         frames / copy-last
====  =====================  ======================
0     1.80 / 2.27 (0.79)     142.9 / 181.2 (0.79)
1     2.48 / 2.75 (0.90)     140.3 / 195.7 (0.72)
2     1.99 / 1.90 (1.05)     157.9 / 204.2 (0.77)
3     2.15 / 2.51 (0.86)     145.8 / 197.5 (0.74)
4     1.30 / 2.16 (0.60)     128.3 / 177.3 (0.72)
====  =====================  ======================

The frames beat copying the last frame on every seed; the expected reward
beats the constant on four seeds of five, not on seed 2: with this little
data (20 episodes, 300 steps) the reward model is fragile.  Asserted on
seed 0: the reward MSE below 0.9× the constant train mean's, and the frame
MSE below 0.9× copying the last observed frame.
"""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
import tf_keras

from wm_core import npz, planners, simulate, tasks
from wm_planet import planet

HORIZON, WINDOW_STRIDE, REWARD_SAMPLES = 10, 3, 64
TRAIN_EPISODES, HELD_OUT_EPISODES, TRAIN_STEPS = 20, 4, 300


class CartpoleActions:
    """The task as the model sees it: only its action space."""

    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)


def random_episodes(count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``count`` random-action cartpole-balance episodes (126 rows each)."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    task = tasks.DeepMindControl("cartpole", "balance", action_repeat=8)
    episodes, _, _ = simulate.simulate(task, planners.Random(task, seed=seed), count, seed=seed)
    return episodes


def open_loop_errors(functions, episodes, mean_reward: float) -> np.ndarray:
    """Mean over windows of (model reward MSE, constant MSE, model frame MSE, copy-last MSE).

    ``functions``: reset, observe, a sampling reward predict function (its
    mean over :data:`REWARD_SAMPLES` rollouts is the reward prediction) and
    a prior-mean predict function returning frames.
    """
    reset_fn, observe_fn, sample_rewards_fn, predict_frames_fn = functions
    errors = []
    for episode in episodes:
        for start in range(5, len(episode["reward"]) - HORIZON, WINDOW_STRIDE):
            rows = slice(0, start)
            state = observe_fn(episode["image"][rows], episode["action"][rows], episode["reward"][rows], reset_fn())
            future = slice(start, start + HORIZON)
            actions = episode["action"][None, future]
            sampled = sample_rewards_fn(np.repeat(actions, REWARD_SAMPLES, 0), state)["reward"]
            predicted = predict_frames_fn(actions, state)
            reward, frames = episode["reward"][future], episode["image"][future].astype(np.float32)
            errors.append((
                np.mean((sampled.mean(0) - reward) ** 2),
                np.mean((mean_reward - reward) ** 2),
                np.mean((predicted["image"][0].astype(np.float32) - frames) ** 2),
                np.mean((episode["image"][start - 1].astype(np.float32) - frames) ** 2),
            ))
    return np.mean(errors, 0)


def train_and_evaluate(directory: str, seed: int) -> np.ndarray:
    """Train on fresh episodes, evaluate on held-out ones; returns :func:`open_loop_errors`."""
    train_dir = os.path.join(directory, "train")
    train_episodes = random_episodes(TRAIN_EPISODES, seed)
    npz.save_dictionaries(train_episodes, train_dir)
    held_out = random_episodes(HELD_OUT_EPISODES, 100 + seed)
    tf_keras.utils.set_random_seed(seed)
    model = planet.RecurrentStateSpaceModel(
        task=CartpoleActions(), deter_size=32, stoch_size=8, hidden_size=32, embed_size=256,
        depth=8, reward_units=64, reward_layers=2, reward_scale=10.0, seed=seed,
    )
    model_dir = os.path.join(directory, "model")
    planet.create_planet_train_fn(model, TRAIN_STEPS, 16, 25, 3e-3, model_dir, seed=seed)(train_dir)
    functions = (
        planet.create_planet_reset_fn(model),
        planet.create_planet_observe_fn(model, model_dir, sample=False),
        planet.create_planet_predict_fn(model, sample=True),
        planet.create_planet_predict_fn(model, return_frames=True, sample=False),
    )
    # Row 0 of an episode has no reward (it is the reset frame).
    mean_reward = float(np.mean(np.concatenate([episode["reward"][1:] for episode in train_episodes])))
    return open_loop_errors(functions, held_out, mean_reward)


@pytest.mark.slow
def test_open_loop_predictions_beat_baselines_on_cartpole(tmp_path):
    reward_mse, constant_mse, frame_mse, copy_last_mse = train_and_evaluate(str(tmp_path), seed=0)
    print(f"reward MSE {reward_mse:.3f} vs constant {constant_mse:.3f}; "
          f"frame MSE {frame_mse:.1f} vs copy-last {copy_last_mse:.1f}")
    assert reward_mse < 0.9 * constant_mse
    assert frame_mse < 0.9 * copy_last_mse
