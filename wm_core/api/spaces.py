"""Action vectors: how world models and planners see any action space.

A ``Box`` action is its own ``float32`` vector; a ``Discrete(n)`` action is a
one-hot ``float32 [n]`` vector.  Planners emit vectors, :func:`to_env_action`
turns them into what ``env.step`` takes.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

__all__ = [
    "action_dim",
    "is_discrete",
    "action_bounds",
    "to_env_action",
    "to_env_actions",
    "to_action_vector",
    "sample_action_vectors",
]


def _check_supported(space: gym.Space) -> None:
    if not isinstance(space, (gym.spaces.Box, gym.spaces.Discrete)):
        raise TypeError(
            f"unsupported action space {space!r}: wm supports Box and Discrete"
        )


def is_discrete(space: gym.Space) -> bool:
    """True for ``Discrete`` spaces (actions are one-hot vectors)."""
    _check_supported(space)
    return isinstance(space, gym.spaces.Discrete)


def action_dim(space: gym.Space) -> int:
    """Size ``A`` of the action vector for ``space``."""
    if is_discrete(space):
        return int(space.n)
    return int(np.prod(space.shape))


def action_bounds(space: gym.Space) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)``, each ``float32 [A]``; ``[0, 1]`` for one-hot actions."""
    size = action_dim(space)
    if is_discrete(space):
        return np.zeros(size, np.float32), np.ones(size, np.float32)
    low = np.broadcast_to(space.low, space.shape).reshape(size)
    high = np.broadcast_to(space.high, space.shape).reshape(size)
    return low.astype(np.float32), high.astype(np.float32)


def to_env_action(space: gym.Space, vector: np.ndarray):
    """Action vector ``[A]`` → the action ``env.step`` takes (argmax if one-hot)."""
    vector = np.asarray(vector, np.float32)
    if vector.shape != (action_dim(space),):
        raise ValueError(
            f"action vector has shape {vector.shape}, expected ({action_dim(space)},)"
        )
    if is_discrete(space):
        return np.int64(space.start + int(np.argmax(vector)))
    low, high = action_bounds(space)
    return np.clip(vector, low, high).reshape(space.shape).astype(space.dtype)


def to_env_actions(space: gym.Space, vectors: np.ndarray) -> np.ndarray:
    """Batched :func:`to_env_action`: ``float32 [..., A]`` → ``[..., *action_shape]``.

    ``Box`` vectors are clipped to the bounds; one-hot ones become
    ``argmax + start`` (``int64``).
    """
    vectors = np.asarray(vectors, np.float32)
    if vectors.shape[-1:] != (action_dim(space),):
        raise ValueError(
            f"action vectors have shape {vectors.shape}, expected [..., {action_dim(space)}]"
        )
    if is_discrete(space):
        return np.argmax(vectors, axis=-1).astype(np.int64) + int(space.start)
    low, high = action_bounds(space)
    clipped = np.clip(vectors, low, high)
    return clipped.reshape(*vectors.shape[:-1], *space.shape).astype(space.dtype)


def to_action_vector(space: gym.Space, action) -> np.ndarray:
    """An environment action → its ``float32 [A]`` vector (one-hot if discrete)."""
    if is_discrete(space):
        vector = np.zeros(action_dim(space), np.float32)
        vector[int(action) - int(space.start)] = 1.0
        return vector
    return np.asarray(action, np.float32).reshape(action_dim(space))


def sample_action_vectors(
    space: gym.Space, rng: np.random.Generator, shape: tuple[int, ...] = ()
) -> np.ndarray:
    """Uniformly random action vectors, ``float32 [*shape, A]``."""
    size = action_dim(space)
    if is_discrete(space):
        indices = rng.integers(0, size, size=shape)
        return np.eye(size, dtype=np.float32)[indices]
    low, high = action_bounds(space)
    return rng.uniform(low, high, size=(*shape, size)).astype(np.float32)
