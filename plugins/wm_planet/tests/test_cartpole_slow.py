"""Short CPU training on real cartpole-balance episodes; open-loop predictions vs baselines.

Random-action episodes of ``dmc:cartpole-balance`` (action repeat 8): the
pole starts upright and falls, so the reward (0-8 per step) varies with the
pole's angle, which the frames show (random swing-up episodes keep the pole
down: too little reward variance to learn from).  After 300 training steps
of 16×25 rows on 5 episodes, the model filters a prefix of each of 2
held-out episodes and predicts the next 10 steps open-loop from the actions
alone (prior means), for windows every 15 steps.  Episodes, weights and
batches all follow the seed; a run is reproducible.

Measured on this shared 2-core machine (MSE per window; model vs baseline):

====  ==============  ===============
seed  reward / const  frames / copy
====  ==============  ===============
0     1.26 / 2.20     141.8 / 198.1
1     1.47 / 2.34     149.6 / 202.6
2     4.16 / 6.07     159.7 / 216.0
3     6.16 / 3.58     138.4 / 179.6
4     4.91 / 4.48     168.0 / 230.4
====  ==============  ===============

With 15 training episodes seeds 3 and 4 gave reward 3.86 / 3.40 and
3.17 / 4.34; with 15 episodes and 600 steps, seed 3 gave 4.10 / 3.40 (and
2.69 / 3.63 at a 3-step horizon).  So the frames beat copying the last frame
in every run (ratio 0.71-0.78) and are asserted; the rewards beat the
constant train mean in only 3 of 5 seeds, so they are printed, not asserted.
"""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
import tf_keras

from wm_core import npz, planners, simulate, tasks
from wm_planet import planet

HORIZON = 10
TRAIN_EPISODES, HELD_OUT_EPISODES, TRAIN_STEPS = 5, 2, 300


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
    """Mean over windows of (model reward MSE, constant MSE, model frame MSE, copy-last MSE)."""
    reset_fn, observe_fn, predict_fn = functions
    errors = []
    for episode in episodes:
        for start in range(5, len(episode["reward"]) - HORIZON, 15):
            rows = slice(0, start)
            state = observe_fn(episode["image"][rows], episode["action"][rows], episode["reward"][rows], reset_fn())
            future = slice(start, start + HORIZON)
            predicted = predict_fn(episode["action"][None, future], state)
            reward, frames = episode["reward"][future], episode["image"][future].astype(np.float32)
            errors.append((
                np.mean((predicted["reward"][0] - reward) ** 2),
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
        planet.create_planet_predict_fn(model, return_frames=True, sample=False),
    )
    # Row 0 of an episode has no reward (it is the reset frame).
    mean_reward = float(np.mean(np.concatenate([episode["reward"][1:] for episode in train_episodes])))
    return open_loop_errors(functions, held_out, mean_reward)


@pytest.mark.slow
def test_open_loop_frames_beat_copying_the_last_frame_on_cartpole(tmp_path):
    reward_mse, constant_mse, frame_mse, copy_last_mse = train_and_evaluate(str(tmp_path), seed=0)
    print(f"reward MSE {reward_mse:.3f} vs constant {constant_mse:.3f}; "
          f"frame MSE {frame_mse:.1f} vs copy-last {copy_last_mse:.1f}")
    assert frame_mse < 0.9 * copy_last_mse
