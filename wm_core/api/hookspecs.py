"""Lifecycle hook specifications (pluggy project ``wm``).

Plugins implement any of these with ``@wm_core.hookimpl`` and register in
the entry-point group ``wm.plugins``.  All hooks are broadcast: every
implementation is called, results are ignored.  Arguments are passed by
keyword; an implementation may accept any subset of them.  Hooks are called
from the run's thread; keep them quick (the TensorBoard writer is one).

``phase`` is ``"train"`` (data collection with the training planner) or
``"eval"`` (the evaluation planner).
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("wm")

__all__ = ["hookspec"]


@hookspec
def wm_run_configured(output_dir: str, operative_config: str) -> None:
    """Called once when ``wm-run`` or ``train_eval_loop`` has built every
    component, before the first episode.

    :param output_dir: the run directory (summaries, model and episodes live
        below it).
    :param operative_config: the gin config text that replays the run.
    """


@hookspec
def wm_episode_start(phase: str, episode_index: int, seed: int) -> None:
    """Called by :func:`wm_core.rollout.simulate.simulate` after the environment and
    the planner were reset, before the first decision.

    :param phase: ``"train"`` or ``"eval"``.
    :param episode_index: index of the episode within this ``simulate`` call.
    :param seed: the seed the environment (and planner) was reset with.
    """


@hookspec
def wm_planner_decided(
    phase: str,
    episode_index: int,
    step: int,
    action: Any,
    prediction: dict | None,
) -> None:
    """Called after every planner decision, before the action is applied.

    :param step: episode row the decision was made on (0 = after reset).
    :param action: the ``float32 [A]`` action vector chosen.
    :param prediction: the planner's prediction for its plan (``dict`` of
        ``[H, ...]`` arrays whose row ``j`` refers to episode row
        ``step + 1 + j``) or ``None`` for model-free planners.
    """


@hookspec
def wm_episode_end(
    phase: str,
    episode_index: int,
    episode: dict,
    predictions: list,
    score: float,
) -> None:
    """Called when an episode terminated or was truncated.

    :param episode: the episode dict (see :mod:`wm_core.api.contracts`).
    :param predictions: one entry per decision (``predictions[t]`` made on row
        ``t``), each a dict or ``None``.
    :param score: the undiscounted return of the episode.
    """


@hookspec
def wm_train_step(step: int, metrics: dict[str, float]) -> None:
    """Called by a world model's ``train_fn`` after every optimisation step
    (or every few steps, as the model documents).

    :param step: the model's global training step after the update.
    :param metrics: scalar metrics (``loss``, ``kl``, ``grad_norm`` ...).
    """


@hookspec
def wm_iteration_end(
    phase: str,
    global_step: int,
    episodes: list,
    predictions: list,
    scalars: dict[str, float],
) -> None:
    """Called by ``train_eval_loop`` after the episodes of one phase of an
    iteration were collected (``phase="eval"`` marks the end of an
    evaluation).

    :param global_step: environment steps collected by the run so far.
    :param episodes: the episodes of this phase.
    :param predictions: per episode, the per-decision predictions.
    :param scalars: summaries for this phase (``score``, timings ...).
    """


@hookspec
def wm_run_end(output_dir: str) -> None:
    """Called once when a run finishes or is interrupted; flush and close."""
