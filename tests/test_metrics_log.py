from __future__ import annotations

import json

import numpy as np
import pytest

from wm_core.data import npz
from wm_core.api.hooks import Hooks, active_hooks, create_plugin_manager
from wm_core.reporting import metrics_log
from wm_core.reporting.metrics_log import METRICS_FILE, MetricsLogPlugin, read_metrics
from wm_core.planning.planners import Random
from wm_core.tasks.toy import PointTask
from wm_core.loops.train_eval import train_eval_loop


def train_fn(path):
    hooks = active_hooks()
    for step, loss in ((1, 4.0), (2, 2.0)):
        hooks.train_step(step, {"loss": loss})


def run(tmp_path, iterations):
    task = PointTask(length=4)
    planner = Random(task, seed=0)
    train_eval_loop(
        task=task, train_planner=planner, eval_planner=planner, train_fn=train_fn,
        seed_episodes=1, num_iterations=iterations, eval_every_n_iterations=2,
        episodes_dir=str(tmp_path / "episodes"), model_dir=str(tmp_path / "model"),
        hooks=Hooks(create_plugin_manager(load_entry_points=False, plugins=(MetricsLogPlugin(),))),
    )


def test_one_row_per_phase_with_scores_scalars_and_mean_training_metrics(tmp_path):
    run(tmp_path, iterations=2)
    rows = read_metrics(str(tmp_path))
    assert [row["phase"] for row in rows] == ["train", "train", "train", "eval"]
    train_files = npz.episode_paths(str(tmp_path / "episodes" / "train"))
    returns = [float(npz.load_episode(path)["reward"].sum()) for path in train_files]
    assert [row["scores"] for row in rows[:3]] == [[r] for r in returns]
    assert [row["env_steps"] for row in rows] == [4, 8, 12, 12]
    assert "model/loss" not in rows[0]  # the seed episodes come before any training
    assert rows[1]["model/loss"] == 3.0 and rows[1]["model_step"] == 2
    assert rows[3]["score"] == pytest.approx(np.mean(rows[3]["scores"]))


def test_resumed_run_appends_and_a_torn_line_is_skipped(tmp_path):
    run(tmp_path, iterations=1)
    with open(tmp_path / METRICS_FILE, "a") as file:
        file.write('{"phase": "tr')  # a kill in the middle of a write
    run(tmp_path, iterations=2)
    assert [row["phase"] for row in read_metrics(str(tmp_path))] == ["train", "train", "train", "eval"]


def test_wall_seconds_count_from_the_start_and_on_across_a_resume(tmp_path, monkeypatch):
    # One clock reading when each run is configured, then one per row (2 rows per run here).
    readings = iter([100.0, 103.0, 107.5, 200.0, 202.0, 205.0])
    monkeypatch.setattr(metrics_log, "_clock", lambda: next(readings))
    run(tmp_path, iterations=1)
    run(tmp_path, iterations=2)  # resumed: counts on from the last row's 7.5
    assert [row["wall_s"] for row in read_metrics(str(tmp_path))] == [3.0, 7.5, 9.5, 12.5]


def test_rows_are_plain_json(tmp_path):
    run(tmp_path, iterations=1)
    for line in (tmp_path / METRICS_FILE).read_text().splitlines():
        assert isinstance(json.loads(line), dict)
