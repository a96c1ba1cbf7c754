from __future__ import annotations

import numpy as np
import pytest

from wm_core.api import spaces
from wm_core.data import npz
from wm_core.tasks.toy import PointTask
from wm_core.testing import WorldModelContract
from wm_linear import LinearWorldModel
from wm_linear.networks import LinearDynamics


def random_episodes(task, count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``count`` episodes of uniformly random actions (episode format of wm_core.api.contracts)."""
    rng = np.random.default_rng(seed)
    env = task.create_env()
    episodes = []
    for index in range(count):
        observation, _ = env.reset(seed=seed + index)
        rows = {"image": [observation["image"]], "action": [np.zeros(1, np.float32)], "reward": [0.0]}
        done = False
        while not done:
            action = spaces.sample_action_vectors(task.action_space, rng)
            observation, reward, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            for key, value in (("image", observation["image"]), ("action", action), ("reward", reward)):
                rows[key].append(value)
        episodes.append({"image": np.stack(rows["image"]), "action": np.stack(rows["action"]),
                         "reward": np.asarray(rows["reward"], np.float32)})
    env.close()
    return episodes


@pytest.fixture(scope="module")
def task():
    return PointTask(length=20, speed=0.3)


@pytest.fixture(scope="module")
def data_path(task, tmp_path_factory):
    directory = tmp_path_factory.mktemp("episodes")
    npz.save_dictionaries(random_episodes(task, 10, seed=0), str(directory))
    return str(directory)


@pytest.fixture
def world_model(task, data_path, tmp_path):
    model = LinearWorldModel(task, model_dir=str(tmp_path / "model"))
    model.train_fn(data_path)
    return model


class TestLinearWorldModelContract(WorldModelContract):
    deterministic_predictions = True


def test_features_average_column_brightness_over_bins():
    frame = np.zeros((4, 8, 3), np.uint8)
    frame[:, 2] = 255
    frame[:2, 7] = 255  # half of column 7
    dynamics = LinearDynamics((4, 8, 3), action_dim=1, bins=4)
    np.testing.assert_allclose(dynamics.features(frame), [0.0, 0.5, 0.0, 0.25])


def test_learns_one_step_rewards_of_unseen_episodes(world_model, task):
    """Trained on 10 random episodes, it predicts the rewards of 5 new ones
    from their frames and actions: squared error under a tenth of their variance."""
    errors, rewards = [], []
    for episode in random_episodes(task, 5, seed=100):
        state = world_model.reset_fn(seed=0)
        for row in range(len(episode["reward"]) - 1):
            state = world_model.observe_fn(
                episode["image"][row:row + 1], episode["action"][row:row + 1],
                episode["reward"][row:row + 1], state,
            )
            predicted = world_model.predict_fn(episode["action"][None, row + 1:row + 2], state)["reward"]
            errors.append(float(predicted[0, 0] - episode["reward"][row + 1]))
        rewards.extend(episode["reward"][1:])
    assert np.mean(np.square(errors)) < 0.1 * np.var(rewards)


def test_observe_picks_up_the_checkpoint_training_wrote(task, data_path, tmp_path):
    """A model made before another one trained in its model_dir predicts,
    after its next observe, what the trained one predicts."""
    reader = LinearWorldModel(task, model_dir=str(tmp_path))
    frames = random_episodes(task, 1, seed=7)[0]["image"][:1]
    row = (frames, np.zeros((1, 1), np.float32), np.zeros(1, np.float32))
    actions = np.full((2, 3, 1), 0.5, np.float32)
    before = reader.predict_fn(actions, reader.observe_fn(*row, reader.reset_fn(seed=0)))
    np.testing.assert_array_equal(before["reward"], 0)  # the maps start at zero
    trainer = LinearWorldModel(task, model_dir=str(tmp_path))
    trainer.train_fn(data_path)
    expected = trainer.predict_fn(actions, trainer.observe_fn(*row, trainer.reset_fn(seed=0)))
    after = reader.predict_fn(actions, reader.observe_fn(*row, reader.reset_fn(seed=0)))
    assert np.abs(expected["reward"]).max() > 0.1
    np.testing.assert_array_equal(after["reward"], expected["reward"])
