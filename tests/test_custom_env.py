"""docs/custom_environments.md holds: its example (examples/custom_env) runs through ``wm-run``.

Each config runs in a subprocess, as the doc says to run it (``PYTHONPATH`` naming the
example's directory); the episodes it writes are then replayed in the example's own
environment from their seeds: same rewards, same frames.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from wm_core import tasks
from wm_core.data import npz

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "custom_env"


@pytest.fixture
def my_env(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    return importlib.import_module("my_env")


def wm_run(config: str, output_dir: pathlib.Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLE), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "wm_core.cli", "--gin_file", str(EXAMPLE / config), "--output_dir",
         str(output_dir)], capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def check_episodes(directory: pathlib.Path, count: int, steps: int, size: int, env) -> None:
    """``count`` episodes of ``steps`` steps and ``size`` x ``size`` frames, each what ``env``
    gives when reset with the episode's seed and sent its actions."""
    episodes = npz.load_dictionaries(str(directory))
    assert len(episodes) == count
    for episode in episodes:
        assert episode["image"].shape == (steps + 1, size, size, 3) and episode["image"].dtype == np.uint8
        assert episode["action"].shape == (steps + 1, 1) and episode["reward"].shape == (steps + 1,)
        position = episode["state"][1:, 0].astype(np.float64)
        np.testing.assert_allclose(episode["reward"][1:], 1.0 - np.abs(position - 0.5), atol=1e-6)
        observation, _ = env.reset(seed=int(episode["seed"][0]))
        images, rewards = [observation["image"]], [0.0]
        for action in episode["action"][1:]:
            observation, reward, *_ = env.step(action)
            images.append(observation["image"])
            rewards.append(reward)
        np.testing.assert_array_equal(episode["reward"], np.float32(rewards))
        np.testing.assert_array_equal(episode["image"], np.stack(images))


@pytest.mark.slow
def test_a_gymnasium_environment_registered_by_id_runs_through_wm_run(my_env, tmp_path):
    wm_run("gym_slider.gin", tmp_path)
    env = tasks.Gym("my_env:Slider-v0", size=(32, 32)).create_env()
    for phase in ("train", "eval"):  # 2 iterations of one train and one eval episode
        check_episodes(tmp_path / "episodes" / phase, count=2, steps=20, size=32, env=env)


@pytest.mark.slow
def test_a_task_subclass_runs_through_wm_run_and_the_oracle_plans_with_it(my_env, tmp_path):
    wm_run("task_slider.gin", tmp_path)
    env = my_env.SliderTask(length=10, size=32).create_env()
    for phase in ("train", "eval"):
        check_episodes(tmp_path / "episodes" / phase, count=1, steps=10, size=32, env=env)
    for phase in ("train", "eval"):  # the oracle plans close to the best return: straight to the goal
        (episode,) = npz.load_dictionaries(str(tmp_path / "episodes" / phase))
        position, best = float(episode["state"][0, 0]), 0.0
        for _ in range(10):
            position += float(np.clip(0.5 - position, -0.2, 0.2))
            best += 1.0 - abs(position - 0.5)
        assert episode["reward"].sum() >= 0.95 * best


def test_a_task_subclass_is_made_by_name_through_its_entry_point(my_env, monkeypatch):
    """What the doc's ``[project.entry-points."wm.tasks"]`` line gives once installed: the
    registry loads ``SliderTask`` for the prefix ``slider`` (stood in for here; the registry's
    own tests install entry points), and ``make`` builds it from the rest of the name."""
    from wm_core.api import registry

    entry_points = {("tasks", "slider"): my_env.SliderTask}
    monkeypatch.setattr(registry, "load", lambda kind, name: entry_points[kind, name])
    task = tasks.make("slider:rail", length=5)
    assert isinstance(task, my_env.SliderTask) and task.name == "slider:rail" and task.length == 5
    with pytest.raises(ValueError, match="slider task 'track' unknown"):
        tasks.make("slider:track")


def test_the_docs_code_is_the_examples_code():
    """Every python and gin block of docs/custom_environments.md is verbatim in the example."""
    doc = (ROOT / "docs" / "custom_environments.md").read_text()
    sources = {"python": (EXAMPLE / "my_env.py").read_text(),
               "gin": "\n".join(path.read_text() for path in sorted(EXAMPLE.glob("*.gin")))}
    blocks = re.findall(r"^```(python|gin)\n(.*?)^```$", doc, re.MULTILINE | re.DOTALL)
    assert sorted(language for language, _ in blocks) == ["gin", "gin", "python", "python", "python"]
    for language, code in blocks:
        assert code in sources[language], code
