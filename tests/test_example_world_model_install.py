"""The example world-model plugin, pip-installed, tested with the contract kit and run through wm-run."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from wm_core.data import npz

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "wm_example_world_model"


@pytest.fixture(scope="module")
def installed_example(pip_install):
    """The example, ``pip install``-ed into a private folder: the environment that finds it."""
    return pip_install(EXAMPLE)


def run_python(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess:
    """``python *arguments`` in a subprocess that finds the installed example."""
    return subprocess.run([sys.executable, *arguments], env=env, capture_output=True, text=True, timeout=600)


def test_example_passes_its_own_tests(installed_example):
    result = run_python(installed_example, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests"))
    assert result.returncode == 0 and "4 passed" in result.stdout, result.stdout[-3000:]


def test_the_entry_point_makes_the_model_from_a_task(installed_example):
    code = (
        "from wm_core.api import registry; from wm_core.tasks.toy import PointTask; "
        "model = registry.make('world_models', 'linear', task=PointTask()); "
        "print(type(model).__module__, model.frame_shape, model.action_dim)"
    )
    result = run_python(installed_example, "-c", code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["wm_linear.world_model", "(64,", "64,", "3)", "1"]


def test_example_config_learns_through_wm_run(installed_example, tmp_path):
    pytest.importorskip("wm_cem")
    config = str(EXAMPLE / "linear_toy.gin")
    result = run_python(installed_example, "-m", "wm_core.cli", "--gin_file", config, "--output_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "model" / "linear.npz").exists()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    random_score = records[0]["score"]  # the 5 seed episodes of random actions
    assert [record["model_step"] for record in records if "model_step" in record] == [20, 40]
    evaluations = [record["score"] for record in records if record["phase"] == "eval"]
    assert np.mean(evaluations) > random_score + 5.0, (evaluations, random_score)
    # Every evaluation gets at least half of what heading straight for the goal gets.
    for episode in npz.load_dictionaries(str(tmp_path / "episodes" / "eval")):
        best = best_score(float(episode["state"][0, 0]), steps=20, speed=0.3)
        assert episode["reward"][1:].sum() >= 0.5 * best, (episode["reward"][1:].sum(), best)


def best_score(start: float, steps: int, speed: float, goal: float = 0.5) -> float:
    """The point task's return when moving straight to the goal at full speed."""
    position, total = start, 0.0
    for _ in range(steps):
        position += float(np.clip(goal - position, -speed, speed))
        total += 1.0 - abs(position - goal)
    return total
