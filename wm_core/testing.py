"""The contract test kit: prove a component honours :mod:`wm_core.api.contracts`.

Plain functions anyone can call (``check_world_model``, ``check_planner``,
``check_objective``, ``check_task``), each raising
:class:`~wm_core.api.contracts.ContractError` with the broken rule, and pytest
base classes a plugin subclasses, providing the fixtures ``task`` and
``world_model`` / ``planner`` / ``objective``::

    class TestMyModel(WorldModelContract):
        @pytest.fixture
        def task(self): return tasks.Gym("Pendulum-v1")
        @pytest.fixture
        def world_model(self, task): return MyModel(task)

``clean_gin_config()`` gives a test an empty gin config with wm-run's core
configurables registered, and clears it again afterwards.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any, Iterator

import gin
import numpy as np

from wm_core.api import spaces
from wm_core.api.checks import check_action, check_plan_prediction, check_predictions, check_scores
from wm_core.api.contracts import ContractError, Predictions, batched
from wm_core.loops.config import CORE_CONFIGURABLE_MODULES

__all__ = [
    "check_world_model",
    "check_planner",
    "check_objective",
    "check_task",
    "WorldModelContract",
    "PlannerContract",
    "ObjectiveContract",
    "TaskContract",
    "clean_gin_config",
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


def _observed_state(model: Any, task: Any, seed: int, steps: int, rng: np.random.Generator) -> Any:
    """A model state after ``steps + 1`` real rows of ``task`` (reset with ``seed``),
    checking that each ``observe_fn`` leaves the old state intact."""
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
            observation, reward, terminated, truncated, _ = env.step(spaces.to_env_action(space, action))
            if terminated or truncated:
                break
    finally:
        env.close()
    return state


def _same_predictions(first: Predictions, second: Predictions, rtol: float, atol: float) -> str | None:
    """``None`` when ``first`` and ``second`` agree (floats within tolerance,
    integers such as frames within 1), else what differs."""
    if sorted(first) != sorted(second):
        return f"keys {sorted(first)} vs {sorted(second)}"
    for key in sorted(first):
        a, b = np.asarray(first[key]), np.asarray(second[key])
        if a.shape != b.shape:
            return f"{key!r} shapes {a.shape} vs {b.shape}"
        if np.issubdtype(a.dtype, np.floating):
            close = np.isclose(a, b, rtol=rtol, atol=atol)
        else:
            close = np.abs(a.astype(np.int64) - b.astype(np.int64)) <= 1
        if not close.all():
            where = tuple(int(i) for i in np.argwhere(~close)[0])
            return f"{key!r} at {where}: {a[where]} vs {b[where]} ({int((~close).sum())} of {a.size} differ)"
    return None


def _check_proposals(propose_fn: Any, state: Any, space: Any, count: int, horizon: int, seed: int) -> None:
    """``propose_fn`` returns ``float32 [count, horizon, A]`` inside the action
    bounds, leaves ``state`` intact and repeats itself for the same seed."""
    before = list(_leaves(state))
    proposals = propose_fn(state, horizon, count, seed=seed)
    _assert_same_tree(before, list(_leaves(state)), "propose_fn")
    shape = (count, horizon, spaces.action_dim(space))
    _require(
        isinstance(proposals, np.ndarray) and proposals.dtype == np.float32 and proposals.shape == shape,
        f"propose_fn returned {getattr(proposals, 'dtype', type(proposals).__name__)} "
        f"{getattr(proposals, 'shape', '')}, expected float32 {shape}",
    )
    low, high = spaces.action_bounds(space)
    _require(
        bool(np.all(np.isfinite(proposals)) and np.all(proposals >= low) and np.all(proposals <= high)),
        f"propose_fn returned actions outside the bounds [{low}, {high}] (or non-finite)",
    )
    _require(
        np.array_equal(propose_fn(state, horizon, count, seed=seed), proposals),
        "propose_fn gave different proposals for the same state and seed",
    )


def check_world_model(
    model: Any,
    task: Any,
    *,
    proposals: int = 4,
    horizon: int = 3,
    steps: int = 2,
    seed: int = 0,
    batch_states: int = 3,
    deterministic: bool | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> None:
    """Feed real frames of ``task`` through ``model`` and check the contract.

    ``model`` is anything with ``reset_fn``, ``observe_fn`` and
    ``predict_fn`` (and optionally ``predict_batch_fn`` and ``propose_fn``).  Checks: observe
    returns a new state and leaves the old one intact; predict returns
    ``[P, H]``-led NumPy arrays with float32 rewards and leaves ``state``
    bitwise unchanged; the batched form (``predict_batch_fn``, or
    :func:`~wm_core.api.contracts.batched` of ``predict_fn`` for models without
    one) on ``batch_states`` states (episodes reset with seeds ``seed``,
    ``seed + 1``, ...) returns ``[N, P, H]``-led predictions, leaves the
    states unchanged, and row ``i`` equals ``predict_fn(actions[i],
    states[i])`` (floats within ``rtol``/``atol``, frames within 1).  A
    ``value`` prediction must be finite ``float32 [P]``; ``propose_fn``
    (when the model has it) must return ``float32 [P, H, A]`` inside the
    action bounds, leave the state intact and repeat itself for a seed.

    :param deterministic: ``True``: the model's predictions are a function
        of actions and state, so batched rows must equal the per-state
        predictions and a repeated ``predict_fn`` call must repeat them;
        ``False`` (stochastic models): batched predictions are checked for
        shapes and dtypes only; ``None``: compared when two identical
        ``predict_fn`` calls agree.
    """
    rng = np.random.default_rng(seed)
    space = task.action_space
    state = _observed_state(model, task, seed, steps, rng)
    future_actions = spaces.sample_action_vectors(space, rng, (proposals, horizon))
    before = list(_leaves(state))
    predictions = model.predict_fn(future_actions, state)
    _assert_same_tree(before, list(_leaves(state)), "predict_fn")
    predictions = check_predictions(predictions, proposals, horizon, "predict_fn", strict=True)
    if getattr(model, "propose_fn", None) is not None:
        _check_proposals(model.propose_fn, state, space, proposals, horizon, seed)
    if batch_states < 1:
        return

    # The batched form against predict_fn state by state.
    states = [state] + [
        _observed_state(model, task, seed + index, steps, rng) for index in range(1, batch_states)
    ]
    batch_actions = spaces.sample_action_vectors(space, rng, (batch_states, proposals, horizon))
    batch_actions[0] = future_actions
    predict_batch_fn = getattr(model, "predict_batch_fn", None)
    what = "predict_batch_fn"
    if predict_batch_fn is None:
        predict_batch_fn, what = batched(model.predict_fn), "batched(predict_fn)"
    befores = [list(_leaves(one)) for one in states]
    together = predict_batch_fn(batch_actions, states)
    for index, (one, old) in enumerate(zip(states, befores)):
        _assert_same_tree(old, list(_leaves(one)), f"{what} (state {index})")
    together = check_predictions(
        together, proposals, horizon, what, batch=batch_states, strict=True
    )
    repeated = check_predictions(
        model.predict_fn(future_actions, state), proposals, horizon, "predict_fn", strict=True
    )
    repeats = _same_predictions(predictions, repeated, rtol, atol) is None
    if deterministic is False or (deterministic is None and not repeats):
        return
    _require(
        repeats,
        "predict_fn gave different predictions for the same actions and state: "
        f"{_same_predictions(predictions, repeated, rtol, atol)} (pass deterministic=False for "
        "a stochastic model)",
    )
    for index, one in enumerate(states):
        alone = predictions if index == 0 else check_predictions(
            model.predict_fn(batch_actions[index], one), proposals, horizon, "predict_fn", strict=True
        )
        row = {key: value[index] for key, value in together.items()}
        difference = _same_predictions(row, alone, rtol, atol)
        _require(
            difference is None,
            f"{what} row {index} differs from predict_fn(future_actions[{index}], states[{index}]): "
            f"{difference}",
        )


def _play(planner: Any, task: Any, steps: int, seed: int) -> list[np.ndarray]:
    """``planner`` for up to ``steps`` decisions of an episode reset with
    ``seed``, each action and prediction checked; returns the actions."""
    space = task.action_space
    low, high = spaces.action_bounds(space)
    size = spaces.action_dim(space)
    discrete = spaces.is_discrete(space)
    env = task.create_env()
    actions = []
    try:
        observation, _ = env.reset(seed=seed)
        planner.reset(seed=seed, episode_index=0)
        action, reward = np.zeros(size, np.float32), 0.0
        for _ in range(steps):
            action, prediction = planner(observation["image"], action, reward)
            check_action(action, size, low, high, discrete, "planner")
            if prediction is not None:
                check_plan_prediction(prediction, "planner", strict=True)
            actions.append(action)
            observation, reward, terminated, truncated, _ = env.step(spaces.to_env_action(space, action))
            if terminated or truncated:
                break
    finally:
        env.close()
    return actions


def _play_batched(batch: Any, task: Any, steps: int, seeds: list[int]) -> list[list[np.ndarray]]:
    """``batch`` deciding for one slot per seed (slots leave as their
    episodes end); returns each slot's actions."""
    space = task.action_space
    low, high = spaces.action_bounds(space)
    size = spaces.action_dim(space)
    discrete = spaces.is_discrete(space)
    envs = [task.create_env() for _ in seeds]
    actions: list[list[np.ndarray]] = [[] for _ in seeds]
    try:
        observations = [env.reset(seed=one)[0] for env, one in zip(envs, seeds)]
        for slot, one in enumerate(seeds):
            batch.reset_slot(slot, seed=one, episode_index=0)
        last = [(np.zeros(size, np.float32), 0.0) for _ in seeds]
        live = list(range(len(seeds)))
        for _ in range(steps):
            chosen, predictions = batch.decide(
                live,
                np.stack([observations[slot]["image"] for slot in live]),
                np.stack([last[slot][0] for slot in live]),
                np.array([last[slot][1] for slot in live], np.float32),
            )
            _require(
                isinstance(chosen, np.ndarray) and chosen.dtype == np.float32 and chosen.shape == (len(live), size),
                f"batched decide must return actions float32 [N, A] = ({len(live)}, {size}), got "
                f"{type(chosen).__name__} {getattr(chosen, 'dtype', None)} {getattr(chosen, 'shape', None)}",
            )
            _require(
                isinstance(predictions, list) and len(predictions) == len(live),
                f"batched decide must return a list of {len(live)} predictions, got {type(predictions).__name__} "
                f"of length {len(predictions) if hasattr(predictions, '__len__') else '?'}",
            )
            ended = []
            for row, slot in enumerate(live):
                check_action(chosen[row], size, low, high, discrete, f"batched decide (slot {slot})")
                if predictions[row] is not None:
                    check_plan_prediction(predictions[row], f"batched decide (slot {slot})", strict=True)
                actions[slot].append(chosen[row])
                observation, reward, terminated, truncated, _ = envs[slot].step(
                    spaces.to_env_action(space, chosen[row])
                )
                observations[slot], last[slot] = observation, (chosen[row], reward)
                if terminated or truncated:
                    ended.append(slot)
            live = [slot for slot in live if slot not in ended]
            if not live:
                break
    finally:
        for env in envs:
            env.close()
    return actions


def check_planner(
    planner: Any,
    task: Any,
    *,
    steps: int = 3,
    seed: int = 0,
    num_slots: int = 2,
    deterministic: bool | None = None,
) -> None:
    """Run ``planner`` for ``steps`` decisions on ``task``; check actions and predictions.

    Then its batched form (:func:`wm_core.planning.planners.batch_planner`) for
    ``num_slots`` environments, slot ``s`` playing the episode seeded
    ``seed + s`` (``num_slots=0`` skips it): actions ``float32 [N, A]`` and
    one prediction per deciding slot, each checked like the planner's.
    Every slot must choose the actions a separate copy of the planner
    chooses in the same episode (an episode's actions depend neither on its
    slot nor on the other slots) — checked when ``deterministic`` is
    ``True``, or, with ``None``, when a second unbatched run repeats the
    first (a seeded planner over a model with deterministic predictions);
    ``False`` skips the comparison.  ``None`` guesses from one repeat: an
    unseeded planner whose randomness seldom changes an action (small noise
    on a discrete action) can repeat by chance and then fail the comparison;
    seed it, or pass ``False``.
    """
    from wm_core.planning.planners import batch_planner, slot_copies

    batch = copies = None
    if num_slots:
        # Made before the planner runs, so all of them start from the same planner state.
        batch = batch_planner(planner, num_slots)
        copies = slot_copies(planner, num_slots) if deterministic is not False else None
    actions = _play(planner, task, steps, seed)
    if batch is None:
        return
    together = _play_batched(batch, task, steps, [seed + slot for slot in range(num_slots)])
    if copies is None:
        return
    again = _play(copies[0], task, steps, seed)
    repeats = len(again) == len(actions) and all(np.array_equal(a, b) for a, b in zip(actions, again))
    if deterministic is None and not repeats:
        return
    _require(repeats, "planner: two runs of the same seeded episode chose different actions "
             "(pass deterministic=False for a planner or model that is not reproducible)")
    alone = [actions] + [_play(copies[slot], task, steps, seed + slot) for slot in range(1, num_slots)]
    for slot in range(num_slots):
        _require(
            len(together[slot]) == len(alone[slot]),
            f"batched planner: slot {slot} decided {len(together[slot])} times, the planner alone "
            f"{len(alone[slot])} times in the same episode (seed {seed + slot})",
        )
        for step, (one, batched_action) in enumerate(zip(alone[slot], together[slot])):
            _require(
                np.array_equal(one, batched_action),
                f"batched planner: slot {slot} chose {batched_action} at step {step}, the planner "
                f"alone chose {one} in the same episode (seed {seed + slot})",
            )


def check_objective(objective_fn: Any, *, proposals: int = 5, horizon: int = 4, seed: int = 0) -> None:
    """Scores are finite ``float32 [P]``, deterministic, and leave predictions
    intact (predictions with ``reward [P, H]`` and the optional ``value [P]``)."""
    rng = np.random.default_rng(seed)
    predictions: Predictions = {
        "reward": rng.normal(size=(proposals, horizon)).astype(np.float32),
        "value": rng.normal(size=proposals).astype(np.float32),
    }
    original = {key: value.copy() for key, value in predictions.items()}
    scores = check_scores(objective_fn(predictions), proposals, "objective_fn", strict=True)
    _require(np.array_equal(objective_fn(predictions), scores), "objective is not deterministic")
    _require(
        all(np.array_equal(predictions[key], value) for key, value in original.items()),
        "objective mutated the predictions",
    )


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
    """Subclass with fixtures ``task`` and ``world_model``; set
    ``deterministic_predictions = False`` for a stochastic model (see
    :func:`check_world_model`)."""

    deterministic_predictions: bool | None = None

    def test_honours_world_model_contract(self, world_model, task):
        check_world_model(world_model, task, deterministic=self.deterministic_predictions)


class PlannerContract:
    """Subclass with fixtures ``task`` and ``planner``; ``deterministic``
    as :func:`check_planner`'s."""

    deterministic: bool | None = None

    def test_honours_planner_contract(self, planner, task):
        check_planner(planner, task, deterministic=self.deterministic)


class ObjectiveContract:
    """Subclass with the fixture ``objective``."""

    def test_honours_objective_contract(self, objective):
        check_objective(objective)


class TaskContract:
    """Subclass with the fixture ``task``."""

    def test_honours_task_contract(self, task):
        check_task(task)


@contextlib.contextmanager
def clean_gin_config() -> Iterator[None]:
    """Run the body on an empty gin config, as wm-run parses one: the core's
    configurables (:data:`wm_core.loops.config.CORE_CONFIGURABLE_MODULES`)
    imported first; on the way out the config is emptied and unlocked, also
    when the body locked it (:func:`wm_core.loops.config.configure` finalizes it).
    Gin's config is process-global: tests that parse one use this so no
    binding reaches the next test::

        @pytest.fixture
        def clean_gin():
            with clean_gin_config():
                yield
    """
    for module in CORE_CONFIGURABLE_MODULES:
        importlib.import_module(module)
    gin.clear_config()
    try:
        yield
    finally:
        gin.clear_config()  # also unlocks
