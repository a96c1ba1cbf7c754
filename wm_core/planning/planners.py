"""Planners: the planner contract, a model-keeping base, random and wrappers.

Contract (see :mod:`wm_core.api.contracts`): ``planner.reset(**kwargs)`` once per
episode, then ``action, prediction = planner(prev_image, prev_action,
prev_reward)`` once per step.  Actions are ``float32 [A]`` action vectors
(one-hot for discrete tasks).

:class:`ModelPlanner` owns a world model's ``state``: it calls ``reset_fn`` on
reset and ``observe_fn`` with every new episode row, then :meth:`ModelPlanner.
plan` decides from the state.  Search planners (CEM, MPPI, ...) subclass it.

The wrappers take any planner as ``base_planner``.  :class:`GaussianRandomNoise`,
:class:`EpsilonGreedy` and :class:`Randomizer` forward every call to it, so a
model-based base planner keeps its state in step with the episode even on
the steps where the wrapper overrides its action.  :class:`RandomColdStart`
is the exception: during its random episodes the base is neither reset nor
called (there is usually no trained model to call yet); from the first warm
episode on it forwards every call.

What a planner needs from a task: ``task.action_space`` (a ``Box`` or
``Discrete`` gymnasium space; actions are vectors, see
:mod:`wm_core.api.spaces`) and nothing else — frames, actions and rewards come
through the calls, and a model-based planner reaches the world only through
its world model's functions.

Several environments at once: :func:`batch_planner` turns any planner into a
:class:`~wm_core.api.contracts.BatchPlanner` for ``num_slots`` environment slots
— the planner's own batched form when it has one (a method
``batched(num_slots)``, e.g. the search planners of ``wm-cem``, which make
one ``predict_fn`` call per iteration for all slots; the wrappers here
forward batching to their base), otherwise :class:`PlannerPerSlot`, one copy
of the planner per slot called one by one.
"""

from __future__ import annotations

import copy
import zlib
from typing import Any, Iterable, Sequence

import gin
import numpy as np

from wm_core.api import spaces
from wm_core.api.checks import check_decide_args, check_int_at_least
from wm_core.api.contracts import (
    BatchPlanner,
    ObjectiveFn,
    ObserveFn,
    PredictFn,
    Predictions,
    ResetFn,
    State,
    WorldModel,
)

__all__ = [
    "Planner",
    "ModelPlanner",
    "Random",
    "RandomColdStart",
    "GaussianRandomNoise",
    "EpsilonGreedy",
    "Randomizer",
    "batch_planner",
    "PlannerPerSlot",
    "slot_copies",
]

Decision = tuple[np.ndarray, Predictions | None]


class Planner:
    """Base class: decides one ``float32 [A]`` action vector per call.

    Randomness comes from ``self.rng``.  With a planner ``seed``, every
    :meth:`reset` that carries the episode's ``seed`` restarts ``rng`` from
    ``(planner seed, episode seed, class name)``: an episode's random draws
    do not depend on the episodes that ran before it in this process (a
    resumed run acts as the uninterrupted one would), and a wrapper and its
    base given the same seed draw different numbers.  Subclasses that
    override :meth:`reset` call ``super().reset(**kwargs)``.
    """

    def __init__(self, task: Any, seed: int | None = None):
        self.task = task
        self.action_space = task.action_space
        self.action_dim = spaces.action_dim(self.action_space)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def reset(self, **kwargs: Any) -> None:
        """Start of an episode; ``kwargs`` carries at least ``seed`` (the
        episode's environment seed, an ``int >= 0``) and, from
        :func:`~wm_core.rollout.simulate.simulate`, ``episode_index``."""
        episode_seed = kwargs.get("seed")
        if self.seed is not None and episode_seed is not None:
            salt = zlib.crc32(type(self).__qualname__.encode())
            self.rng = np.random.default_rng([self.seed, episode_seed, salt])

    def __call__(
        self, prev_image: np.ndarray, prev_action: np.ndarray, prev_reward: float
    ) -> Decision:
        raise NotImplementedError

    def random_action(self) -> np.ndarray:
        """One uniformly random action vector ``float32 [A]``."""
        return spaces.sample_action_vectors(self.action_space, self.rng)


class ModelPlanner(Planner):
    """A planner that keeps a world model's state and plans from it.

    :param predict_fn, observe_fn, reset_fn: the world model (seed contract).
    :param objective_fn: scores predictions, ``float32 [P]``.
    """

    def __init__(
        self,
        task: Any,
        predict_fn: PredictFn,
        observe_fn: ObserveFn,
        reset_fn: ResetFn,
        objective_fn: ObjectiveFn,
        seed: int | None = None,
    ):
        super().__init__(task, seed)
        self.predict_fn = predict_fn
        self.observe_fn = observe_fn
        self.reset_fn = reset_fn
        self.objective_fn = objective_fn
        self.state: State = None

    def reset(self, **kwargs: Any) -> None:
        super().reset(**kwargs)
        self.state = self.reset_fn(**kwargs)

    def __call__(
        self, prev_image: np.ndarray, prev_action: np.ndarray, prev_reward: float
    ) -> Decision:
        self.state = self.observe_fn(
            np.asarray(prev_image)[None],
            np.asarray(prev_action, np.float32)[None],
            np.asarray([prev_reward], np.float32),
            self.state,
        )
        return self.plan(self.state)

    def plan(self, state: State) -> Decision:
        """Choose an action from the model state (subclasses implement)."""
        raise NotImplementedError


@gin.configurable(module="wm")
class Random(Planner):
    """Uniformly random actions; no model, so the prediction is ``None``."""

    def __call__(self, prev_image, prev_action, prev_reward) -> Decision:
        return self.random_action(), None


class _Wrapper(Planner):
    """Forwards every call to ``base_planner``; subclasses edit its decision.

    A wrapper is written as three steps, so that its batched form
    (:class:`_BatchedWrapper`) runs the same code per slot around one
    batched base: :meth:`reset_self` (its own per-episode state),
    :attr:`base_active` (whether the base is reset and called), and
    :meth:`edit` (the base's decision in, the wrapper's out; ``(None,
    None)`` in while the base is inactive).
    """

    def __init__(self, task: Any, base_planner: Planner, seed: int | None = None):
        super().__init__(task, seed)
        self.base_planner = base_planner

    def reset(self, **kwargs: Any) -> None:
        self.reset_self(**kwargs)
        if self.base_active:
            self.base_planner.reset(**kwargs)

    def reset_self(self, **kwargs: Any) -> None:
        Planner.reset(self, **kwargs)

    @property
    def base_active(self) -> bool:
        return True

    def __call__(self, prev_image, prev_action, prev_reward) -> Decision:
        if not self.base_active:
            return self.edit(None, None)
        return self.edit(*self.base_planner(prev_image, prev_action, prev_reward))

    def edit(self, action: np.ndarray | None, prediction: Predictions | None) -> Decision:
        return action, prediction

    def batched(self, num_slots: int) -> BatchPlanner:
        """Per-slot copies of this wrapper around the base's batched form."""
        return _BatchedWrapper(self, num_slots)


@gin.configurable(module="wm")
class RandomColdStart(_Wrapper):
    """Random actions for the first ``random_episodes`` episodes, then the base.

    Episodes are counted by the resets seen; ``reset(episode_index=i)``
    moves the count forward to ``i + 1`` when the caller numbers episodes
    (a resumed ``train_eval_loop`` starts past its random episodes).  The
    base planner is neither reset nor called during the random episodes
    (there is usually no trained model yet); afterwards every call is
    forwarded to it.
    """

    def __init__(self, task: Any, random_episodes: int, base_planner: Planner, seed=None):
        super().__init__(task, base_planner, seed)
        if random_episodes < 0:
            raise ValueError(f"random_episodes must be >= 0, got {random_episodes}")
        self.random_episodes = random_episodes
        self.episodes_started = 0

    @property
    def is_cold(self) -> bool:
        return self.episodes_started <= self.random_episodes

    def reset_self(self, **kwargs: Any) -> None:
        Planner.reset(self, **kwargs)  # the base is reset only once warm
        numbered = kwargs.get("episode_index", -1) + 1
        self.episodes_started = max(self.episodes_started + 1, numbered)

    @property
    def base_active(self) -> bool:
        return not self.is_cold

    def edit(self, action, prediction) -> Decision:
        if self.is_cold:
            return self.random_action(), None
        return action, prediction


@gin.configurable(module="wm")
class GaussianRandomNoise(_Wrapper):
    """Adds ``N(0, stdev**2)`` noise to the base action, clipped to the bounds.

    For discrete tasks the noise is added to the one-hot vector and the
    result is the one-hot of its argmax.
    """

    def __init__(self, task: Any, stdev: float, base_planner: Planner, seed=None):
        super().__init__(task, base_planner, seed)
        if stdev < 0:
            raise ValueError(f"stdev must be >= 0, got {stdev}")
        self.stdev = float(stdev)
        self.low, self.high = spaces.action_bounds(self.action_space)

    def edit(self, action, prediction) -> Decision:
        noisy = action + self.rng.normal(0.0, self.stdev, size=action.shape)
        if spaces.is_discrete(self.action_space):
            noisy = np.eye(self.action_dim, dtype=np.float32)[np.argmax(noisy)]
        return np.clip(noisy, self.low, self.high).astype(np.float32), prediction


@gin.configurable(module="wm")
class EpsilonGreedy(_Wrapper):
    """Each step, with probability ``epsilon``, a random action instead of the base's."""

    def __init__(self, task: Any, epsilon: float, base_planner: Planner, seed=None):
        super().__init__(task, base_planner, seed)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.epsilon = float(epsilon)

    def edit(self, action, prediction) -> Decision:
        if self.rng.random() < self.epsilon:
            return self.random_action(), None
        return action, prediction


@gin.configurable(module="wm")
class Randomizer(_Wrapper):
    """Each *episode*, with probability ``rand_prob``, acts randomly throughout.

    Episode-level exploration (``EpsilonGreedy`` is the step-level kind).
    The base planner is still reset and called so its state stays current.
    """

    def __init__(self, task: Any, rand_prob: float, base_planner: Planner, seed=None):
        super().__init__(task, base_planner, seed)
        if not 0.0 <= rand_prob <= 1.0:
            raise ValueError(f"rand_prob must be in [0, 1], got {rand_prob}")
        self.rand_prob = float(rand_prob)
        self.episode_is_random = False

    def reset_self(self, **kwargs: Any) -> None:
        super().reset_self(**kwargs)
        self.episode_is_random = bool(self.rng.random() < self.rand_prob)

    def edit(self, action, prediction) -> Decision:
        if self.episode_is_random:
            return self.random_action(), None
        return action, prediction


# --------------------------------------------------------------------------- several environments


def _walk_planners(planner: Planner) -> Iterable[Planner]:
    """``planner`` and every planner reachable through its attributes."""
    seen: set[int] = set()
    pending = [planner]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [value for value in vars(current).values() if isinstance(value, Planner)]


def _shared(planner: Planner, exclude: Sequence[Any]) -> dict[int, Any]:
    """A ``copy.deepcopy`` memo that keeps what per-slot copies share.

    Shared (not copied): every callable attribute of the planner and of the
    planners inside it (world-model and objective functions: plain
    functions, but also bound methods, which ``deepcopy`` would copy along
    with their model, and ``tf.function`` objects, which it would copy
    too), the object a bound method belongs to, world models and the task.
    ``exclude``: objects the copies get ``None`` for.
    """
    memo: dict[int, Any] = {}
    for inner in _walk_planners(planner):
        for name, value in vars(inner).items():
            if isinstance(value, Planner):
                continue
            if callable(value) or isinstance(value, WorldModel) or name == "task":
                memo[id(value)] = value
                owner = getattr(value, "__self__", None)
                if owner is not None:
                    memo[id(owner)] = owner
    for value in exclude:
        memo[id(value)] = None
    return memo


def slot_copies(planner: Planner, num_slots: int, exclude: Sequence[Any] = ()) -> list[Planner]:
    """``num_slots`` deep copies of ``planner`` that share its model functions.

    Each copy (and each planner inside it) gets its own random generator:
    a seeded planner restarts it on every ``reset(seed=...)`` anyway (from
    planner seed, episode seed and class name, so slot copies given the
    same episode seed draw what the original would); before that, or
    unseeded, slots draw independently rather than the same numbers.
    """
    check_int_at_least("num_slots", num_slots)
    shared = _shared(planner, exclude)
    copies = []
    for slot in range(int(num_slots)):
        duplicate = copy.deepcopy(planner, dict(shared))
        for inner in _walk_planners(duplicate):
            if inner.seed is None:
                inner.rng = np.random.default_rng()
            else:
                salt = zlib.crc32(type(inner).__qualname__.encode())
                inner.rng = np.random.default_rng([inner.seed, salt, slot, 0x51])
        copies.append(duplicate)
    return copies


def _stack_actions(actions: Sequence[np.ndarray], action_dim: int) -> np.ndarray:
    if not actions:
        return np.zeros((0, action_dim), np.float32)
    return np.stack([np.asarray(action, np.float32) for action in actions])


class PlannerPerSlot:
    """The :class:`~wm_core.api.contracts.BatchPlanner` of any planner: one copy
    per slot (:func:`slot_copies`), called one after the other.

    Exactly what separate planners would do, with no batching gain; the
    fallback of :func:`batch_planner`.  ``planners[slot]`` is slot
    ``slot``'s copy.
    """

    def __init__(self, planner: Planner, num_slots: int):
        self.planners = slot_copies(planner, num_slots)
        self.action_dim = spaces.action_dim(planner.action_space)

    @property
    def num_slots(self) -> int:
        return len(self.planners)

    def reset_slot(self, slot: int, **kwargs: Any) -> None:
        self.planners[slot].reset(**kwargs)

    def decide(self, slots, prev_images, prev_actions, prev_rewards):
        slots, prev_images, prev_actions, prev_rewards = check_decide_args(
            slots, prev_images, prev_actions, prev_rewards, self.num_slots, self.action_dim
        )
        decisions = [
            self.planners[slot](prev_images[row], prev_actions[row], float(prev_rewards[row]))
            for row, slot in enumerate(slots)
        ]
        return (
            _stack_actions([action for action, _ in decisions], self.action_dim),
            [prediction for _, prediction in decisions],
        )


class _BatchedWrapper:
    """A wrapper's batched form: per-slot copies of the wrapper (its own
    random stream and episode state per slot) around ``batch_planner(base)``,
    the base deciding for all its active slots in one call."""

    def __init__(self, wrapper: _Wrapper, num_slots: int):
        self.wrappers = slot_copies(wrapper, num_slots, exclude=[wrapper.base_planner])
        self.base = batch_planner(wrapper.base_planner, num_slots)
        self.action_dim = wrapper.action_dim

    @property
    def num_slots(self) -> int:
        return len(self.wrappers)

    def reset_slot(self, slot: int, **kwargs: Any) -> None:
        wrapper = self.wrappers[slot]
        wrapper.reset_self(**kwargs)
        if wrapper.base_active:
            self.base.reset_slot(slot, **kwargs)

    def decide(self, slots, prev_images, prev_actions, prev_rewards):
        slots, prev_images, prev_actions, prev_rewards = check_decide_args(
            slots, prev_images, prev_actions, prev_rewards, self.num_slots, self.action_dim
        )
        active = [row for row, slot in enumerate(slots) if self.wrappers[slot].base_active]
        base_decisions: dict[int, Decision] = {}
        if active:
            actions, predictions = self.base.decide(
                [slots[row] for row in active],
                prev_images[active], prev_actions[active], prev_rewards[active],
            )
            base_decisions = {row: (actions[i], predictions[i]) for i, row in enumerate(active)}
        decisions = [
            self.wrappers[slot].edit(*base_decisions.get(row, (None, None)))
            for row, slot in enumerate(slots)
        ]
        return (
            _stack_actions([action for action, _ in decisions], self.action_dim),
            [prediction for _, prediction in decisions],
        )


def batch_planner(planner: Planner, num_slots: int) -> BatchPlanner:
    """A :class:`~wm_core.api.contracts.BatchPlanner` deciding for ``num_slots``
    environment slots with ``planner``'s logic.

    ``planner.batched(num_slots)`` when the planner has that method and it
    returns a batch planner (search planners: one ``predict_fn`` call per
    iteration for all deciding slots; wrappers: batched around their base's
    batched form), otherwise :class:`PlannerPerSlot`.  Either way slot ``s``
    acts as a separate copy of ``planner`` reset with the same arguments:
    an episode's actions depend neither on its slot nor on the other slots
    (for seeded planners given episode seeds, and models with deterministic
    predictions).  ``planner`` itself is left as it is.
    """
    make = getattr(planner, "batched", None)
    if callable(make):
        made = make(num_slots)
        if made is not None:
            return made
    return PlannerPerSlot(planner, num_slots)
