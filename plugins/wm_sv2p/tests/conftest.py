"""Fixtures for the SV2P tests: a tiny model and a moving-square dataset."""

from __future__ import annotations

import os

from wm_tf.onednn import prefer_onednn

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
prefer_onednn()  # test modules import TensorFlow before the plugin, so set it here

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

SIZE = 16  # frame side of the synthetic episodes
SQUARE = 4


class SquareTask:
    """Action-space holder for the moving-square data: ``Box(-1, 1, (2,))``."""

    name = "test:moving-square"
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def moving_square_episode(rng: np.random.Generator, steps: int, size: int = SIZE) -> dict:
    """A white square on black moved by the action: ``round(2 * a)`` pixels per step.

    Reward: ``1 - distance(square, centre) / size`` after the move.  Rows follow
    the episode format of :mod:`wm_core.api.contracts`.
    """
    position = rng.integers(0, size - SQUARE + 1, size=2)
    images, actions, rewards = [], [np.zeros(2, np.float32)], [np.float32(0)]
    for row in range(steps + 1):
        if row:
            action = rng.uniform(-1, 1, size=2).astype(np.float32)
            position = np.clip(position + np.round(2 * action).astype(int), 0, size - SQUARE)
            actions.append(action)
            centre = (size - SQUARE) / 2
            rewards.append(np.float32(1 - np.linalg.norm(position - centre) / size))
        image = np.zeros((size, size, 3), np.uint8)
        image[position[0]:position[0] + SQUARE, position[1]:position[1] + SQUARE] = 255
        images.append(image)
    return {
        "image": np.stack(images),
        "action": np.stack(actions),
        "reward": np.array(rewards, np.float32),
    }


@pytest.fixture(scope="session")  # stateless: module-scoped fixtures may share it
def square_task() -> SquareTask:
    return SquareTask()


@pytest.fixture(scope="session")  # a pure function of its arguments
def square_episodes():
    def make(count: int, steps: int = 12, seed: int = 0) -> list[dict]:
        rng = np.random.default_rng(seed)
        return [moving_square_episode(rng, steps) for _ in range(count)]

    return make
