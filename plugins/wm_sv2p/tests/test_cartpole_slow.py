"""Short SV2P training on real cartpole-swingup episodes, against naive baselines.

Random-action episodes of ``dmc:cartpole-swingup`` (action repeat 8) are
collected; a small SV2P is trained briefly on some and evaluated on held-out
ones: from many context windows it predicts ``HORIZON`` rows under the true
actions.  Baselines: copying the last context frame, and predicting the
training mean reward.  The numbers are printed (``pytest -s``); only what
reliably holds after this little training is asserted.
"""

from __future__ import annotations

import os
import subprocess
import sys

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

from wm_core import npz
from wm_sv2p import SV2P, KLSchedule, create_train_fn

HORIZON = 4
TRAIN_EPISODES, HELD_OUT_EPISODES = 6, 2
# cartpole's action space, without building an environment in this process
CARTPOLE_ACTIONS = SimpleNamespace(action_space=gym.spaces.Box(-1.0, 1.0, (1,), np.float32))


# MuJoCo rendering and TensorFlow segfault when loaded in one process on this
# machine (EGL and OSMesa alike), so episodes are collected in a child process
# that never imports TensorFlow, and handed over as .npz files.
_COLLECT = """
import sys
import numpy as np
from wm_core import npz, spaces
from wm_core.tasks import DeepMindControl

directory, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
task = DeepMindControl("cartpole", "swingup", action_repeat=8)
rng = np.random.default_rng(seed)
size = spaces.action_dim(task.action_space)
episodes = []
for index in range(count):
    env = task.create_env()
    observation, _ = env.reset(seed=seed + index)
    images, actions, rewards = [observation["image"]], [np.zeros(size, np.float32)], [0.0]
    done = False
    while not done:
        action = spaces.sample_action_vectors(task.action_space, rng)
        observation, reward, terminated, truncated, _ = env.step(
            spaces.to_env_action(task.action_space, action))
        images.append(observation["image"]); actions.append(action); rewards.append(reward)
        done = terminated or truncated
    env.close()
    episodes.append({"image": np.stack(images), "action": np.stack(actions).astype(np.float32),
                     "reward": np.array(rewards, np.float32)})
npz.save_dictionaries(episodes, directory)
"""


def collect(directory, count: int, seed: int) -> list[dict]:
    """``count`` random-action cartpole-swingup episodes, saved under ``directory``."""
    environment = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    subprocess.run(
        [sys.executable, "-c", _COLLECT, str(directory), str(count), str(seed)],
        check=True, env=environment, timeout=300,
    )
    return npz.load_dictionaries(str(directory))


def evaluate(model: SV2P, episodes: list[dict], mean_reward: float) -> dict[str, float]:
    """Mean squared errors of the model and the baselines over held-out windows."""
    errors = {name: [] for name in ("frame", "copy_last_frame", "reward", "constant_reward")}
    for episode in episodes:
        starts = range(model.input_length, len(episode["reward"]) - HORIZON, 3)
        for start in starts:
            context = slice(start - model.input_length, start)
            state = model.observe(
                episode["image"][context], episode["action"][context], episode["reward"][context],
                model.reset(seed=start),
            )
            future = slice(start, start + HORIZON)
            predictions = model.predict(episode["action"][future][None], state, return_frames=True)
            truth = episode["image"][future].astype(np.float32) / 255
            last = episode["image"][start - 1].astype(np.float32) / 255
            errors["frame"].append(np.mean((predictions["image"][0] / 255 - truth) ** 2))
            errors["copy_last_frame"].append(np.mean((last - truth) ** 2))
            errors["reward"].append(np.mean((predictions["reward"][0] - episode["reward"][future]) ** 2))
            errors["constant_reward"].append(np.mean((mean_reward - episode["reward"][future]) ** 2))
    return {name: float(np.mean(values)) for name, values in errors.items()}


@pytest.mark.slow
def test_short_cartpole_training_improves_frame_predictions(tmp_path):
    train = collect(tmp_path / "episodes", TRAIN_EPISODES, seed=0)
    held_out = collect(tmp_path / "held_out", HELD_OUT_EPISODES, seed=100)
    mean_reward = float(np.mean(np.concatenate([episode["reward"][1:] for episode in train])))

    model = SV2P(
        task=CARTPOLE_ACTIONS, input_length=2, output_length=HORIZON, model_dir=str(tmp_path / "model"),
        base_channels=8, num_masks=4, lstm_kernel=3, cdna_kernel=5,
    )
    untrained = evaluate(model, held_out, mean_reward)
    schedule = KLSchedule(deterministic_steps=100, posterior_steps=50, kl_ramp_steps=50, kl_weight=1e-3)
    train_fn = create_train_fn(model, train_steps=200, batch=8, learning_rate=2e-3, kl_schedule=schedule)
    train_fn(str(tmp_path / "episodes"))
    trained = evaluate(model, held_out, mean_reward)
    print(f"\ncartpole-swingup held-out MSE, untrained: {untrained}\n  after 200 steps: {trained}")

    assert trained["frame"] < 0.5 * untrained["frame"]
    assert trained["reward"] < trained["constant_reward"] * 1.5
