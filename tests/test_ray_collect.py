"""wm_core.ray_collect: episodes collected by Ray actors equal a local simulate's; clear errors."""

from __future__ import annotations

import builtins
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from wm_core import ray_collect
from wm_core.data import npz
from wm_core.rollout import simulate
from wm_core.planning.planners import Random
from wm_core.tasks.toy import PointTask

ROOT = Path(__file__).resolve().parents[1]
LENGTH = 5


@pytest.fixture(scope="module")
def ray():
    """A local Ray instance for the module (measured: ~6 s to start on 2 shared cores)."""
    ray = pytest.importorskip("ray", reason="Ray is the optional extra wm-core[ray]")
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    print(f"ray.init took {time.perf_counter() - start:.1f} s")
    yield ray
    ray.shutdown()


def local_episodes(count: int, seed: int = 0) -> list[dict]:
    task = PointTask(length=LENGTH)
    episodes, _, _ = simulate.simulate(task, Random(task, seed=7), count, seed=seed)
    return episodes


def assert_same_episodes(saved: list[dict], expected: list[dict]) -> None:
    assert len(saved) == len(expected)
    for got, want in zip(saved, expected):
        assert sorted(got) == sorted(want)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_two_actors_write_the_episodes_a_local_simulate_collects(ray, tmp_path):
    directory = str(tmp_path / "train")
    task = PointTask(length=LENGTH)
    written = ray_collect.collect(
        ray_collect.Components(task, Random(task, seed=7)), directory, num_episodes=6, seed=100,
        num_actors=2,
    )
    assert written == npz.episode_paths(directory) and len(written) == 6
    # saved in episode order: the files sort as episodes 0..5 (train_eval_loop's invariant)
    assert_same_episodes(npz.load_dictionaries(directory), local_episodes(6, seed=100))
    assert ray_collect.saved_episode_indices(directory, seed=100) == set(range(6))
    # no temporary left (the collection's own lock file, .wm-run.lock, stays)
    assert not [name for name in os.listdir(directory) if name.startswith(".") and name != ".wm-run.lock"]


def test_a_restarted_collection_tops_up_exactly_the_missing_episodes(ray, tmp_path):
    directory = str(tmp_path / "train")
    expected = local_episodes(5)
    npz.save_dictionaries(expected[:2], directory)  # what a stopped collection left
    task = PointTask(length=LENGTH)
    components = ray_collect.Components(task, Random(task, seed=7))
    written = ray_collect.collect(components, directory, num_episodes=5, num_actors=2)
    assert len(written) == 3
    assert_same_episodes(npz.load_dictionaries(directory), expected)
    assert ray_collect.collect(components, directory, num_episodes=5) == []  # nothing missing
    assert ray_collect.missing_episodes(directory, 7) == [5, 6]


def test_actors_can_be_built_from_a_runs_gin_config(ray, tmp_path):
    config = tmp_path / "operative_config.gin"
    config.write_text((ROOT / "configs" / "tests" / "random_toy.gin").read_text()
                      + f"wm.PointTask.length = {LENGTH}\nwm.Random.seed = 7\n")
    directory = str(tmp_path / "episodes" / "train")
    components = ray_collect.RunComponents(str(config), str(tmp_path))
    ray_collect.collect(components, directory, num_episodes=3, num_actors=2)
    assert_same_episodes(npz.load_dictionaries(directory), local_episodes(3))


class Failing:
    def __call__(self):
        raise RuntimeError("this factory cannot build the task")


def test_an_actor_that_fails_stops_the_collection_with_its_error(ray, tmp_path):
    with pytest.raises(Exception, match="this factory cannot build the task"):
        ray_collect.collect(Failing(), str(tmp_path / "train"), num_episodes=2, num_actors=2)


def test_without_ray_the_error_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError("No module named 'ray'", name="ray")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "ray", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ray_collect.RayNotInstalledError, match=r"pip install 'wm-core\[ray\]'"):
        ray_collect.connect()
    assert issubclass(ray_collect.RayNotInstalledError, ImportError)


def test_an_unreachable_cluster_address_is_a_clear_error_not_a_hang(tmp_path):
    """In a fresh process (no Ray session): ray.init itself would retry for minutes."""
    pytest.importorskip("ray", reason="Ray is the optional extra wm-core[ray]")
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = sock.getsockname()[1]
    code = textwrap.dedent(f"""
        from wm_core import ray_collect
        from wm_core.peers import PeerUnreachableError
        for address in ("localhost:{port}", "ray://localhost:{port}"):
            try:
                ray_collect.connect(address, connect_timeout_s=1.0)
            except PeerUnreachableError as error:
                print("refused:", error)
    """)
    start = time.perf_counter()
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    lines = completed.stdout.splitlines()
    assert len(lines) == 2, completed.stdout + completed.stderr[-2000:]
    assert f"Ray cluster localhost:{port} did not accept a connection within 1 s" in lines[0]
    assert "ray start --head" in lines[0] and f"'ray://localhost:{port}'" in lines[1]
    assert time.perf_counter() - start < 60


def test_a_malformed_address_is_named():
    pytest.importorskip("ray", reason="Ray is the optional extra wm-core[ray]")
    with pytest.raises(ValueError, match="not host:port"):
        ray_collect.connect("head-node", connect_timeout_s=0.1)


def test_files_without_a_seed_column_are_refused_by_name(tmp_path):
    episode = {key: value for key, value in local_episodes(1)[0].items() if key != "seed"}
    (path,) = npz.save_dictionaries([episode], str(tmp_path))
    with pytest.raises(npz.EpisodeFileError, match="no 'seed' column") as error:
        ray_collect.missing_episodes(str(tmp_path), 2)
    assert path in str(error.value)
