"""Run a planner on a task and record episodes (``simulate`` of the original World Models Library).

Alignment (see :mod:`wm_core.api.contracts`): at decision ``t`` the planner gets
episode row ``t`` (``image[t]``, ``action[t]``, ``reward[t]``) and returns the
action that becomes row ``t + 1``; ``predictions[e][t]`` is the prediction it
made at that decision, whose row ``j`` refers to episode row ``t + 1 + j``.
An episode of ``T`` steps has ``T + 1`` rows and ``T`` decisions.

Every episode also carries ``seed`` ``int64 [T+1]``: the seed ``env.reset``
was given, repeated on every row (extras share the time axis).  With it an
episode can be replayed in its simulator (reset with ``seed``, step the
recorded actions), which :mod:`wm_core.evaluation` does to score plans
against ground truth.  Episodes saved before this column existed lack it;
readers must not require it.

Several environments (``num_envs > 1``): each in its own worker process
(:class:`wm_core.tasks.vector.VectorEnv`), stepped together; the planner
decides for all of them in one call through
:func:`wm_core.planning.planners.batch_planner`.  Episode ``i`` still starts from
seed ``seed + i`` whatever slot runs it, so the episodes equal those of one
environment (for seeded planners; models with deterministic predictions).
Episodes are handed out in episode order (:func:`run_episodes`), one that
finished early waiting for those before it.  An episode whose worker died
is collected again from its seed in a fresh worker; nothing of the lost try
is returned.
"""

from __future__ import annotations

import heapq
import time
import warnings
from typing import Any, Iterator

import gin
import numpy as np

from wm_core.api import spaces
from wm_core.api.checks import check_int_at_least, check_num_envs
from wm_core.api.contracts import Episode, Predictions
from wm_core.api.hooks import Hooks, active_hooks
from wm_core.tasks.process import WorkerDiedError

__all__ = ["simulate", "run_episode", "run_episodes"]

#: Tries of one episode whose environment worker keeps dying before the run gives up.
MAX_TRIES = 3


def _stack_rows(rows: list[dict[str, Any]]) -> Episode:
    episode = {key: np.stack([row[key] for row in rows]) for key in rows[0]}
    episode["action"] = episode["action"].astype(np.float32)
    episode["reward"] = episode["reward"].astype(np.float32)
    return episode


def run_episode(
    env: Any,
    planner: Any,
    seed: int,
    *,
    phase: str = "train",
    episode_index: int = 0,
    hooks: Hooks | None = None,
) -> tuple[Episode, list[Predictions | None]]:
    """One episode of ``planner`` on an already created ``env``.

    Resets the env with ``seed`` and the planner with ``seed`` and
    ``episode_index``; returns the episode dict and the per-decision
    predictions (``len == T``).
    """
    hooks = hooks or active_hooks()
    space = env.action_space
    observation, _ = env.reset(seed=seed)
    planner.reset(seed=seed, episode_index=episode_index)
    hooks.episode_start(phase=phase, episode_index=episode_index, seed=seed)
    rows = [
        {
            **observation,
            "action": np.zeros(spaces.action_dim(space), np.float32),
            "reward": np.float32(0.0),
            "seed": np.int64(seed),
        }
    ]
    predictions: list[Predictions | None] = []
    done = False
    while not done:
        last = rows[-1]
        action, prediction = planner(last["image"], last["action"], float(last["reward"]))
        action = np.asarray(action, np.float32)
        hooks.planner_decided(
            phase=phase,
            episode_index=episode_index,
            step=len(rows) - 1,
            action=action,
            prediction=prediction,
        )
        predictions.append(prediction)
        observation, reward, terminated, truncated, _ = env.step(
            spaces.to_env_action(space, action)
        )
        rows.append(
            {**observation, "action": action, "reward": np.float32(reward), "seed": np.int64(seed)}
        )
        done = terminated or truncated
    return _stack_rows(rows), predictions


def _is_vector(env: Any) -> bool:
    from wm_core.tasks.vector import VectorEnv

    return isinstance(env, VectorEnv)


def run_episodes(
    task: Any,
    planner: Any,
    num_episodes: int,
    seed: int = 0,
    *,
    phase: str = "train",
    hooks: Hooks | None = None,
    first_episode_index: int = 0,
    env: Any | None = None,
    num_envs: int = 1,
) -> Iterator[tuple[int, Episode, list[Predictions | None]]]:
    """Yields ``(i, episode, predictions)`` for ``i = 0 .. num_episodes - 1``, in that order.

    Episode ``i`` is reset with ``seed + i`` and numbered
    ``first_episode_index + i``; ``hooks.episode_end`` is called when it
    ends (with several environments, possibly before an earlier episode
    ends), the yield comes in episode order.  ``env``: an environment of
    ``task`` — a :class:`~wm_core.tasks.vector.VectorEnv` for several — to
    reuse (the caller closes it); by default one is made here with
    ``min(num_envs, num_episodes)`` environments and closed at the end.
    """
    check_int_at_least("num_episodes", num_episodes)
    num_envs = check_num_envs(num_envs)
    hooks = hooks or active_hooks()
    vector = _is_vector(env) if env is not None else num_envs > 1
    if env is not None and not vector and num_envs > 1:
        raise TypeError(
            f"num_envs = {num_envs} needs a wm_core.tasks.vector.VectorEnv as env, got "
            f"{type(env).__name__}"
        )
    owns_env = env is None
    if owns_env:
        if vector:
            from wm_core.tasks.vector import VectorEnv

            env = VectorEnv(task, min(num_envs, num_episodes))
        else:
            env = task.create_env()
    try:
        if vector:
            yield from _run_vector(
                env, planner, num_episodes, seed, phase, hooks, first_episode_index
            )
            return
        for index in range(num_episodes):
            episode, episode_predictions = run_episode(
                env,
                planner,
                seed + index,
                phase=phase,
                episode_index=first_episode_index + index,
                hooks=hooks,
            )
            hooks.episode_end(
                phase=phase,
                episode_index=first_episode_index + index,
                episode=episode,
                predictions=episode_predictions,
                score=float(episode["reward"].sum()),
            )
            yield index, episode, episode_predictions
    finally:
        if owns_env:
            env.close()


class _Running:
    """An episode in progress in one slot."""

    def __init__(self, position: int, seed: int, observation: dict[str, np.ndarray], action_dim: int):
        self.position = position
        self.seed = seed
        self.rows = [
            {
                **observation,
                "action": np.zeros(action_dim, np.float32),
                "reward": np.float32(0.0),
                "seed": np.int64(seed),
            }
        ]
        self.predictions: list[Predictions | None] = []
        self.action = self.rows[0]["action"]  # the action in flight


def _run_vector(
    env: Any,
    planner: Any,
    num_episodes: int,
    seed: int,
    phase: str,
    hooks: Hooks,
    first_episode_index: int,
) -> Iterator[tuple[int, Episode, list[Predictions | None]]]:
    """:func:`run_episodes` over a :class:`~wm_core.tasks.vector.VectorEnv`.

    A free slot starts the lowest pending episode.  The slots are not kept
    in lockstep: whenever some workers have answered, the planner decides
    for every slot that is waiting for a decision in one call and those
    slots step again, while the others are still busy.  After the first
    answer it waits for the others as long as the last decision took, so a
    planner slower than the environments decides for several slots at once
    (one batched call: a batched model predicts for all of them together)
    and a fast one for each as soon as it is ready.  An episode's rows do not depend
    on which slots decided with it.  A slot whose worker died gives its
    episode back to the pending ones (it starts again from its seed).
    """
    from wm_core.planning.planners import batch_planner

    slots_count = env.num_envs
    space = env.single_action_space
    action_dim = spaces.action_dim(space)
    batch = batch_planner(planner, slots_count)
    while env.in_flight:  # answers a run interrupted earlier left (every slot is reset anyway)
        env.receive(len(env.in_flight))
    pending = list(range(num_episodes))  # a heap: the lowest episode starts first
    tries = [0] * num_episodes
    starting: dict[int, int] = {}  # slot: episode position, reset in flight
    running: dict[int, _Running] = {}  # slot: episode in progress
    finished: dict[int, tuple[Episode, list[Predictions | None]]] = {}
    next_out = 0
    decide_seconds = 0.0  # how long the last decision took

    def lost(slot: int, position: int, during: str) -> None:
        tries[position] += 1
        index = first_episode_index + position
        if tries[position] >= MAX_TRIES:
            raise WorkerDiedError(
                f"the environment worker of {phase} episode {index} (seed {seed + position}) "
                f"died {tries[position]} times (last during {during!r}); giving up"
            )
        warnings.warn(
            f"environment worker of slot {slot} died during {during!r} in {phase} episode "
            f"{index} (seed {seed + position}); collecting that episode again in a fresh worker",
            RuntimeWarning,
            stacklevel=3,
        )
        heapq.heappush(pending, position)

    while next_out < num_episodes:
        for slot in range(slots_count):
            if slot not in running and slot not in starting and pending:
                starting[slot] = position = heapq.heappop(pending)
                env.send(slot, "reset", seed=seed + position)
        deciding = [slot for slot in sorted(running) if slot not in env.in_flight]
        if deciding:
            last = [running[slot].rows[-1] for slot in deciding]
            start = time.perf_counter()
            actions, predictions = batch.decide(
                deciding,
                np.stack([row["image"] for row in last]),
                np.stack([row["action"] for row in last]),
                np.array([row["reward"] for row in last], np.float32),
            )
            decide_seconds = time.perf_counter() - start
            for row, slot in enumerate(deciding):
                action = np.asarray(actions[row], np.float32)
                episode = running[slot]
                hooks.planner_decided(
                    phase=phase,
                    episode_index=first_episode_index + episode.position,
                    step=len(episode.rows) - 1,
                    action=action,
                    prediction=predictions[row],
                )
                episode.predictions.append(predictions[row])
                episode.action = action
                env.send(slot, "step", spaces.to_env_action(space, action))
        # Wait for the other answers as long as one decision takes: a planner
        # slower than the environments then decides for several slots at once
        # (one batched call), a fast one for each as soon as it is ready.
        for slot, method, result, failed in env.receive(linger=decide_seconds):
            if method == "reset":
                position = starting.pop(slot)
                if failed:
                    lost(slot, position, "reset")
                    continue
                running[slot] = _Running(position, seed + position, result[0], action_dim)
                batch.reset_slot(
                    slot, seed=seed + position, episode_index=first_episode_index + position
                )
                hooks.episode_start(
                    phase=phase, episode_index=first_episode_index + position,
                    seed=seed + position,
                )
                continue
            episode = running[slot]
            if failed:
                del running[slot]
                lost(slot, episode.position, "step")
                continue
            observation, reward, terminated, truncated, _ = result
            episode.rows.append({
                **observation,
                "action": episode.action,
                "reward": np.float32(reward),
                "seed": np.int64(episode.seed),
            })
            if terminated or truncated:
                del running[slot]
                stacked = _stack_rows(episode.rows)
                hooks.episode_end(
                    phase=phase,
                    episode_index=first_episode_index + episode.position,
                    episode=stacked,
                    predictions=episode.predictions,
                    score=float(stacked["reward"].sum()),
                )
                finished[episode.position] = (stacked, episode.predictions)
        while next_out in finished:
            yield (next_out, *finished.pop(next_out))
            next_out += 1


@gin.configurable(module="wm")
def simulate(
    task: Any,
    planner: Any,
    num_episodes: int = 1,
    seed: int = 0,
    phase: str = "train",
    hooks: Hooks | None = None,
    first_episode_index: int = 0,
    env: Any | None = None,
    num_envs: int = 1,
) -> tuple[list[Episode], list[list[Predictions | None]], float]:
    """Run ``num_episodes`` episodes of ``planner`` on ``task``.

    Episode ``i`` is reset with ``seed + i`` (the same seed goes to
    ``planner.reset``, so a ground-truth model can mirror the environment)
    and is numbered ``first_episode_index + i`` in hooks and in
    ``planner.reset(episode_index=...)``.  ``env``: an environment of
    ``task`` to reuse (the caller keeps and closes it); by default one is
    created and closed here.

    :param num_envs: environments stepped together, each in its own worker
        process (:class:`~wm_core.tasks.vector.VectorEnv`; ``env``, if
        given, must be one).  The planner then decides through
        :func:`wm_core.planning.planners.batch_planner` (copies of it, or its batched
        form) and is itself neither reset nor called.  1 (the default): one
        environment, built by ``task.create_env()``, and ``planner`` called
        directly.
    :returns: ``(episodes, predictions, score)``: the episode dicts, per
        episode the per-decision predictions, and the mean undiscounted
        return over the episodes.
    """
    episodes, predictions = [], []
    for _, episode, episode_predictions in run_episodes(
        task, planner, num_episodes, seed, phase=phase, hooks=hooks,
        first_episode_index=first_episode_index, env=env, num_envs=num_envs,
    ):
        episodes.append(episode)
        predictions.append(episode_predictions)
    score = float(np.mean([episode["reward"].sum() for episode in episodes]))
    return episodes, predictions, score
