"""The contract test kit: prove a component honours :mod:`wm_core.contracts`.

Plain functions anyone can call (``check_world_model``, ``check_planner``,
``check_objective``, ``check_task``), each raising
:class:`~wm_core.contracts.ContractError` with the broken rule, and pytest
base classes a plugin subclasses, providing the fixtures ``task`` and
``world_model`` / ``planner`` / ``objective``::

    class TestMyModel(WorldModelContract):
        @pytest.fixture
        def task(self): return tasks.Gym("Pendulum-v1")
        @pytest.fixture
        def world_model(self, task): return MyModel(task)
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from wm_core import spaces
from wm_core.contracts import ContractError, Predictions

__all__ = [
    "check_world_model",
    "check_planner",
    "check_objective",
    "check_task",
    "WorldModelContract",
    "PlannerContract",
    "ObjectiveContract",
    "TaskContract",
]


def _leaves(tree: Any, path: str = "state") -> Iterator[tuple[str, np.ndarray]]:
    if isinstance(tree, dict):
        for key in sorted(tree, key=str):
            yield from _leaves(tree[key], f"{path}[{key!r}]")
    elif isinstance(tree, (list, tuple)):
        for index, item in enumerate(tree):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, np.array(tree, copy=True)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ContractError(message)


def _assert_same_tree(before: list, after: list, what: str) -> None:
    _require(
        [path for path, _ in before] == [path for path, _ in after],
        f"{what} changed the structure of state",
    )
    for (path, old), (_, new) in zip(before, after):
        _require(
            old.dtype == new.dtype and old.shape == new.shape and
            old.tobytes() == new.tobytes(),
            f"{what} mutated {path}",
        )


def _check_predictions(predictions: Any, proposals: int, horizon: int) -> None:
    _require(isinstance(predictions, dict), f"predictions must be a dict, got {type(predictions)}")
    _require("reward" in predictions, f"predictions need 'reward', got keys {sorted(predictions)}")
    for key, value in predictions.items():
        _require(isinstance(value, np.ndarray), f"predictions[{key!r}] must be a NumPy array, got {type(value)}")
        _require(
            value.shape[:2] == (proposals, horizon),
            f"predictions[{key!r}] has shape {value.shape}, expected leading dims ({proposals}, {horizon})",
        )
    reward = predictions["reward"]
    _require(reward.dtype == np.float32 and reward.ndim == 2, f"reward must be float32 [P, H], got {reward.dtype} {reward.shape}")
    _require(bool(np.all(np.isfinite(reward))), "predicted rewards must be finite")
    if "image" in predictions:
        image = predictions["image"]
        _require(image.dtype == np.uint8 and image.ndim == 5, f"image must be uint8 [P, H, h, w, C], got {image.dtype} {image.shape}")


def check_world_model(
    model: Any, task: Any, *, proposals: int = 4, horizon: int = 3, steps: int = 2, seed: int = 0
) -> None:
    """Feed real frames of ``task`` through ``model`` and check the contract.

    ``model`` is anything with ``reset_fn``, ``observe_fn`` and
    ``predict_fn``.  Checks: observe returns a new state and leaves the old
    one intact; predict returns ``[P, H]``-led NumPy arrays with float32
    rewards and leaves ``state`` bitwise unchanged.
    """
    rng = np.random.default_rng(seed)
    space = task.action_space
    env = task.create_env()
    try:
        observation, _ = env.reset(seed=seed)
        state = model.reset_fn(seed=seed)
        action = np.zeros(spaces.action_dim(space), np.float32)
        reward = 0.0
        for _ in range(steps + 1):
            before = list(_leaves(state))
            new_state = model.observe_fn(
                observation["image"][None], action[None], np.array([reward], np.float32), state
            )
            _assert_same_tree(before, list(_leaves(state)), "observe_fn")
            state = new_state
            action = spaces.sample_action_vectors(space, rng)
            observation, reward, _, _, _ = env.step(spaces.to_env_action(space, action))
    finally:
        env.close()
    future_actions = spaces.sample_action_vectors(space, rng, (proposals, horizon))
    before = list(_leaves(state))
    predictions = model.predict_fn(future_actions, state)
    _assert_same_tree(before, list(_leaves(state)), "predict_fn")
    _check_predictions(predictions, proposals, horizon)


def check_planner(planner: Any, task: Any, *, steps: int = 3, seed: int = 0) -> None:
    """Run ``planner`` for ``steps`` decisions on ``task``; check actions and predictions."""
    space = task.action_space
    low, high = spaces.action_bounds(space)
    size = spaces.action_dim(space)
    env = task.create_env()
    try:
        observation, _ = env.reset(seed=seed)
        planner.reset(seed=seed)
        action, reward = np.zeros(size, np.float32), 0.0
        for _ in range(steps):
            action, prediction = planner(observation["image"], action, reward)
            _require(
                isinstance(action, np.ndarray) and action.dtype == np.float32 and action.shape == (size,),
                f"action must be float32 [{size}], got {type(action).__name__} "
                f"{getattr(action, 'dtype', None)} {getattr(action, 'shape', None)}",
            )
            _require(bool(np.all((action >= low) & (action <= high))), f"action {action} outside [{low}, {high}]")
            if spaces.is_discrete(space):
                _require(sorted(action.tolist()) == [0.0] * (size - 1) + [1.0], f"discrete action {action} is not one-hot")
            if prediction is not None:
                horizon = len(prediction["reward"])
                batched = {key: np.asarray(value)[None] for key, value in prediction.items()}
                _check_predictions(batched, 1, horizon)
            observation, reward, terminated, truncated, _ = env.step(spaces.to_env_action(space, action))
            if terminated or truncated:
                break
    finally:
        env.close()


def check_objective(objective_fn: Any, *, proposals: int = 5, horizon: int = 4, seed: int = 0) -> None:
    """Scores are finite ``float32 [P]``, deterministic, and leave predictions intact."""
    rng = np.random.default_rng(seed)
    predictions: Predictions = {"reward": rng.normal(size=(proposals, horizon)).astype(np.float32)}
    original = predictions["reward"].copy()
    scores = objective_fn(predictions)
    _require(
        isinstance(scores, np.ndarray) and scores.dtype == np.float32 and scores.shape == (proposals,),
        f"scores must be float32 [{proposals}], got {getattr(scores, 'dtype', type(scores))} {getattr(scores, 'shape', '')}",
    )
    _require(bool(np.all(np.isfinite(scores))), "scores must be finite")
    _require(np.array_equal(objective_fn(predictions), scores), "objective is not deterministic")
    _require(np.array_equal(predictions["reward"], original), "objective mutated the predictions")


def check_task(task: Any, *, seed: int = 0, steps: int = 5) -> None:
    """Gymnasium's ``check_env``, an ``image`` observation, and seeding."""
    from gymnasium.utils.env_checker import check_env

    _require(isinstance(task.name, str) and task.name, "a task needs a non-empty name")
    env = task.create_env()
    try:
        check_env(env, skip_render_check=True)
        _require(env.action_space == task.action_space, "env.action_space differs from task.action_space")
    finally:
        env.close()

    def rollout() -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        env = task.create_env()
        try:
            observation, _ = env.reset(seed=seed)
            image = observation["image"]
            _require(
                image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3,
                f"observation['image'] must be uint8 [H, W, 3], got {image.dtype} {image.shape}",
            )
            trace = [image]
            for _ in range(steps):
                action = spaces.sample_action_vectors(task.action_space, rng)
                observation, reward, terminated, truncated, _ = env.step(
                    spaces.to_env_action(task.action_space, action)
                )
                trace += [observation["image"], np.float32(reward)]
                if terminated or truncated:
                    break
            return trace
        finally:
            env.close()

    first, second = rollout(), rollout()
    _require(
        len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second)),
        f"task {task.name!r}: the same seed gave different episodes",
    )


class WorldModelContract:
    """Subclass with fixtures ``task`` and ``world_model``."""

    def test_honours_world_model_contract(self, world_model, task):
        check_world_model(world_model, task)


class PlannerContract:
    """Subclass with fixtures ``task`` and ``planner``."""

    def test_honours_planner_contract(self, planner, task):
        check_planner(planner, task)


class ObjectiveContract:
    """Subclass with the fixture ``objective``."""

    def test_honours_objective_contract(self, objective):
        check_objective(objective)


class TaskContract:
    """Subclass with the fixture ``task``."""

    def test_honours_task_contract(self, task):
        check_task(task)
