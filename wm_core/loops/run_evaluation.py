"""``wm-run evaluate``: the planning quality of a finished (or running) run's world model.

:func:`evaluate_run` rebuilds the run's eval planner from
``<run_dir>/operative_config.gin``, evaluates its world model against the
task's simulator (:mod:`wm_core.evaluation.planning_quality`,
``docs/evaluation.md``) on the run's eval episodes (the train episodes if
there are none), and writes ``<run_dir>/evaluation/planning_quality.csv``
and TensorBoard scalars under ``<run_dir>/summaries/evaluation``.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from wm_core.data import npz
from wm_core.evaluation.planning_quality import (
    EvaluationError,
    PlanningQuality,
    evaluate_planner,
    write_csv,
    write_summaries,
)
from wm_core.loops.config import configure, loop_setting, seed_global_generators
from wm_core.loops.train_eval import EVAL_SEED_OFFSET
from wm_core.reporting import summaries

__all__ = ["evaluate_run"]


def evaluate_run(
    run_dir: str,
    num_states: int = 50,
    num_sequences: int = 32,
    horizon: int | None = None,
    seed: int = 0,
    out: TextIO | None = None,
) -> tuple[PlanningQuality, str]:
    """Evaluate the planning quality of a run's world model (see module docs).

    ``horizon`` defaults to the eval planner's, else 12; the objective is the
    planner's ``objective_fn`` (default ``DiscountedReward()``); ``seed``
    seeds the states and action sequences drawn.  Returns the
    :class:`~wm_core.evaluation.planning_quality.PlanningQuality` and the
    CSV's path.  Raises :class:`~wm_core.evaluation.planning_quality.EvaluationError`
    for a directory that is not a run, has no episodes, or whose learned
    model has no checkpoint.  Notes (which episodes are used) go to ``out``
    (default ``sys.stdout``).
    """
    run_dir = os.path.abspath(run_dir)
    config = os.path.join(run_dir, "operative_config.gin")
    if not os.path.isfile(config):
        what = "does not exist" if not os.path.isdir(run_dir) else "has no operative_config.gin"
        raise EvaluationError(f"run directory {run_dir} {what}: not a wm-run output directory")
    configure([config], [], run_dir)
    episodes_root = loop_setting("episodes_dir")
    episodes_dir, phase = _evaluation_episodes(episodes_root, out or sys.stdout)
    first_seed = loop_setting("seed", 0) + (EVAL_SEED_OFFSET if phase == "eval" else 0)
    if loop_setting("train_fn", None, evaluate=False) is not None:
        _require_checkpoint(loop_setting("model_dir"))
    seed_global_generators(seed)
    quality = evaluate_planner(
        loop_setting("task"), loop_setting("eval_planner"), episodes_dir, num_states,
        num_sequences, horizon, seed, first_seed,
    )
    csv_path = write_csv(quality, os.path.join(run_dir, "evaluation", "planning_quality.csv"))
    summary_dir = os.path.join(run_dir, "summaries", "evaluation")
    write_summaries(quality, summary_dir, npz.environment_steps(os.path.join(episodes_root, "train")))
    summaries.close(summary_dir)
    return quality, csv_path


def _evaluation_episodes(episodes_root: str, out: TextIO) -> tuple[str, str]:
    """``(directory, phase)``: the eval episodes, else the train ones (said on ``out``)."""
    directories = {phase: os.path.join(episodes_root, phase) for phase in ("eval", "train")}
    found = {phase: os.path.isdir(d) and bool(npz.episode_paths(d)) for phase, d in directories.items()}
    if found["eval"]:
        return directories["eval"], "eval"
    if found["train"]:
        print(f"wm-run evaluate: no eval episodes in {directories['eval']}; using the train "
              f"episodes in {directories['train']}", file=out)
        return directories["train"], "train"
    raise EvaluationError(
        f"no episodes to evaluate on: no episode files in {directories['eval']} or {directories['train']}"
    )


def _require_checkpoint(model_dir: str) -> None:
    if not os.path.isdir(model_dir) or not os.listdir(model_dir):
        raise EvaluationError(
            f"the run's world model is learned (train_eval_loop.train_fn is set) but its model "
            f"directory {model_dir} holds no checkpoint: train it first"
        )
