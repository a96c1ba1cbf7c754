"""Run a planner on a task and record episodes (the seed's ``simulate``).

Alignment (see :mod:`wm_core.contracts`): at decision ``t`` the planner gets
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
"""

from __future__ import annotations

from typing import Any

import gin
import numpy as np

from wm_core import spaces
from wm_core.contracts import Episode, Predictions
from wm_core.hooks import Hooks, active_hooks

__all__ = ["simulate", "run_episode"]


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
) -> tuple[list[Episode], list[list[Predictions | None]], float]:
    """Run ``num_episodes`` episodes of ``planner`` on ``task``.

    Episode ``i`` is reset with ``seed + i`` (the same seed goes to
    ``planner.reset``, so a ground-truth model can mirror the environment)
    and is numbered ``first_episode_index + i`` in hooks and in
    ``planner.reset(episode_index=...)``.  ``env``: an environment of
    ``task`` to reuse (the caller keeps and closes it); by default one is
    created and closed here.

    :returns: ``(episodes, predictions, score)``: the episode dicts, per
        episode the per-decision predictions, and the mean undiscounted
        return over the episodes.
    """
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
    hooks = hooks or active_hooks()
    owns_env = env is None
    env = task.create_env() if owns_env else env
    episodes, predictions = [], []
    try:
        for index in range(num_episodes):
            episode, episode_predictions = run_episode(
                env,
                planner,
                seed + index,
                phase=phase,
                episode_index=first_episode_index + index,
                hooks=hooks,
            )
            score = float(episode["reward"].sum())
            hooks.episode_end(
                phase=phase,
                episode_index=first_episode_index + index,
                episode=episode,
                predictions=episode_predictions,
                score=score,
            )
            episodes.append(episode)
            predictions.append(episode_predictions)
    finally:
        if owns_env:
            env.close()
    score = float(np.mean([episode["reward"].sum() for episode in episodes]))
    return episodes, predictions, score
