"""The example third-party plugin, pip-installed and run through wm-run."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np
import pytest

from wm_core.data import npz

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "wm_example_plugin"


@pytest.fixture(scope="module")
def installed_example(pip_install):
    """The example, ``pip install``-ed into a private folder: the environment that finds it."""
    return pip_install(EXAMPLE)


def test_example_passes_its_own_contract_tests(installed_example):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        env=installed_example, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 passed" in result.stdout


def test_wm_run_lists_the_installed_example(installed_example):
    result = subprocess.run([sys.executable, "-m", "wm_core.cli", "plugins", "--check"], env=installed_example,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    section = result.stdout.split("wm-example-plugin 0.1.0", 1)[1]
    assert "reward_above" in section and "loaded" in section
    assert "score_log" in section and "wm_iteration_end" in section


@pytest.mark.slow
def test_example_config_runs_through_wm_run(installed_example, tmp_path):
    pytest.importorskip("wm_cem")
    result = subprocess.run(
        [sys.executable, "-m", "wm_core.cli", "--gin_file", str(EXAMPLE / "example_toy.gin"),
         "--output_dir", str(tmp_path)],
        env=installed_example, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split(",") for line in (tmp_path / "scores.csv").read_text().splitlines()]
    assert [(phase, step) for phase, step, _ in rows] == [
        ("train", "20"), ("eval", "20"), ("train", "40"), ("eval", "40")]
    # CEM with the oracle optimises the plugin's objective: nearly as many steps
    # above the threshold as heading straight for the goal would give.
    for episode in npz.load_dictionaries(str(tmp_path / "episodes" / "eval")):
        achieved = int((episode["reward"][1:] > 0.5).sum())
        best = best_count_above(float(episode["state"][0, 0]), steps=20, threshold=0.5)
        assert achieved >= best - 1, (achieved, best)


def best_count_above(start: float, steps: int, threshold: float, goal: float = 0.5) -> int:
    """Steps with reward above ``threshold`` when moving straight to the goal at 0.1 per step."""
    position, count = start, 0
    for _ in range(steps):
        position += float(np.clip(goal - position, -0.1, 0.1))
        count += 1.0 - abs(position - goal) > threshold
    return count
