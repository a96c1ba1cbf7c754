from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import gin
import pytest
from tensorboard.backend.event_processing import directory_watcher, event_file_loader, io_wrapper
from tensorboard.compat import tensorflow_stub


@pytest.fixture(autouse=True)
def clean_gin_config():
    """Gin bindings are process-global: a test that parses a config (e.g.
    ``wm.DeepMindControl.action_repeat = 8``) must not change the defaults of
    the tests after it."""
    yield
    with gin.unlock_config():
        gin.clear_config()


@pytest.fixture(scope="session")
def pip_install(tmp_path_factory):
    """``pip_install(source)``: install the distribution at ``source`` (no
    dependencies) into a private folder; returns the environment whose
    ``PYTHONPATH`` finds it, for subprocesses."""

    def install(source) -> dict[str, str]:
        target = tmp_path_factory.mktemp("site")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
             "--target", str(target), str(source)],
            check=True, timeout=300,
        )
        return {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}

    return install


@pytest.fixture
def fake_distribution(tmp_path, monkeypatch):
    """Install a third-party distribution 'wm-fake-plugin 1.0' on sys.path.

    It provides planners ``fake_good`` and ``fake_broken`` (whose module
    fails to import) and hook plugins ``fake_hook`` and ``broken_hook``.
    """
    (tmp_path / "wm_fake_good.py").write_text(textwrap.dedent('''
        from wm_core import hookimpl
        from wm_core.planning.planners import Random

        class Planner(Random):
            pass

        class HookPlugin:
            def __init__(self):
                self.calls = []

            @hookimpl
            def wm_train_step(self, step, metrics):
                self.calls.append((step, metrics))
    '''))
    (tmp_path / "wm_fake_broken.py").write_text(
        "raise ImportError('libfoo.so: cannot open shared object file')\n"
    )
    info = tmp_path / "wm_fake_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wm-fake-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent('''
        [wm.planners]
        fake_good = wm_fake_good:Planner
        fake_broken = wm_fake_broken:Planner

        [wm.plugins]
        fake_hook = wm_fake_good:HookPlugin
        broken_hook = wm_fake_broken:HookPlugin
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path


@pytest.fixture
def tensorboard_reader_without_tensorflow(monkeypatch):
    """Read events with TensorBoard's pure-Python stub (CRC-checked record
    reader), as TensorBoard does where TensorFlow is not installed: core tests
    never import TensorFlow (slow to load, and it must not meet Mesa's LLVM in
    one process; see wm_core/tasks/process.py)."""
    for module in (directory_watcher, event_file_loader, io_wrapper):
        monkeypatch.setattr(module, "tf", tensorflow_stub)


@pytest.fixture
def users_shell_environment(monkeypatch):
    """The environment of a user's shell for child processes: without the TensorFlow log level
    that plugin test folders set for their own quiet output, and without wm's quiet flag."""
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv("WM_QUIET", raising=False)
