"""The faults a user's run meets, recovered with nothing lost (issue 26, item 3).

* a failed write of a text file (``write_text_atomically``) leaves no temporary;
* a full disk during an episode save: ``wm-run`` stops with one line naming
  the file, leaves nothing partial, and the run resumes once there is space
  (the full disk injected as ``scripts/fault_soak.py`` injects it);
* a NaN loss once, in the learner process of an asynchronous run: the run
  stops with the divergence in one line, the last good checkpoint kept, and
  the restarted run trains on from it to exactly the steps due.

Checkpoint faults (a damaged newest checkpoint, a full disk during a save)
are tested in ``plugins/wm_tf/tests/test_checkpoint_faults.py``.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

from wm_core.data import npz
from wm_core.data.atomic import DiskFullError, naming_a_full_disk, write_text_atomically
from wm_core.loops import learner

ROOT = pathlib.Path(__file__).resolve().parents[1]
WM_RUN = [sys.executable, "-m", "wm_core.cli"]
RANDOM_TOY = str(ROOT / "configs" / "tests" / "random_toy.gin")


def wm_run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*WM_RUN, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("code, raised", [(errno.ENOSPC, DiskFullError), (errno.EIO, OSError)])
def test_a_failed_text_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, code, raised):
    path = tmp_path / "state.json"
    path.write_text("old")

    def failing_fsync(descriptor):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(raised) as error:
        write_text_atomically(str(path), "new")
    assert error.value.errno == code
    assert os.listdir(tmp_path) == ["state.json"] and path.read_text() == "old"
    if raised is DiskFullError:
        assert str(error.value) == f"no space left on device while writing file {path}"


def test_only_a_full_disk_is_named():
    with pytest.raises(DiskFullError, match=r"^no space left on device while writing episode x\.npz$"):
        with naming_a_full_disk("episode", "x.npz"):
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
    with pytest.raises(PermissionError):
        with naming_a_full_disk("episode", "x.npz"):
            raise PermissionError(errno.EACCES, "Permission denied")


@pytest.fixture
def full_disk(tmp_path) -> dict[str, str]:
    """The environment of a process whose ``numpy.savez_compressed`` meets a
    full disk (``scripts/fault_soak.py``'s injection, 1000 bytes free)."""
    spec = importlib.util.spec_from_file_location("fault_soak", ROOT / "scripts" / "fault_soak.py")
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(soak.DISK_FULL)
    path = os.pathsep.join(filter(None, [str(inject), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "WM_SOAK_DISK_BYTES": "1000"}


def test_a_full_disk_during_an_episode_save_is_one_line_and_the_run_resumes(tmp_path, full_disk):
    output_dir = tmp_path / "run"
    args = ("--gin_file", RANDOM_TOY, "--output_dir", str(output_dir))
    failed = wm_run(*args, env=full_disk)
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr, failed.stderr[-3000:]
    train_dir = output_dir / "episodes" / "train"
    assert re.fullmatch(
        rf"wm-run: error: no space left on device while writing episode {re.escape(str(train_dir))}/"
        r"\S+-len10\.npz; free some space, then run again with the same --output_dir to resume",
        failed.stderr.splitlines()[-1],
    ), failed.stderr
    assert os.listdir(train_dir) == []  # nothing partial, no temporary
    resumed = wm_run(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len(npz.episode_paths(str(train_dir))) == 2 * 3  # the config's 3 iterations of 2


NAN_ONCE = '''
import json, os
import gin
from wm_core.data.atomic import write_text_atomically
from wm_core.loops.training import TrainLoop


class NanOnce:
    """A trainer whose loss is NaN at step ``nan_at`` the first time (a file
    in ``model_dir`` remembers); its checkpoint is ``model_dir/step.json``,
    and every save is appended to ``model_dir/saves.log``."""

    name = "NanOnce"
    frame_size = (64, 64, 3)
    action_dim = 1
    tolerated_nonfinite = frozenset()

    def __init__(self, model_dir, nan_at):
        self.model_dir, self.nan_at = model_dir, nan_at
        os.makedirs(model_dir, exist_ok=True)
        self.step = 0
        self.restore_last()

    def train_step(self, batch):
        self.step += 1
        seen = os.path.join(self.model_dir, "nan_seen")
        if self.step == self.nan_at and not os.path.exists(seen):
            open(seen, "w").close()
            return {"loss": float("nan")}
        return {"loss": 1.0}

    def before_first_step(self, batches):
        pass

    def save(self):
        write_text_atomically(os.path.join(self.model_dir, "step.json"), json.dumps({"step": self.step}))
        with open(os.path.join(self.model_dir, "saves.log"), "a") as log:
            log.write(f"{self.step}\\n")
        return "step.json"

    def restore_last(self):
        path = os.path.join(self.model_dir, "step.json")
        if not os.path.exists(path):
            return None
        with open(path) as file:
            self.step = json.load(file)["step"]
        return path


@gin.configurable(module="nan_once")
def make_train_fn(model_dir, nan_at=5):
    return TrainLoop(NanOnce(model_dir, nan_at), train_steps=3, batch=1, chunk_length=3, prefetch=0)
'''


def test_a_nan_loss_in_the_learner_process_rolls_back_and_the_restarted_run_trains_on(tmp_path):
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "nan_once.py").write_text(textwrap.dedent(NAN_ONCE))
    config = tmp_path / "nan_once.gin"
    config.write_text("import nan_once\n" + pathlib.Path(RANDOM_TOY).read_text() + """
wm.PointTask.length = 5
nan_once.make_train_fn.model_dir = %model_dir
wm.train_eval_loop.train_fn = @nan_once.make_train_fn()
wm.train_eval_loop.seed_episodes = 2
wm.train_eval_loop.async_training = True
wm.train_eval_loop.train_steps_per_env_step = 0.7
""")
    output_dir = tmp_path / "run"
    args = ("--gin_file", str(config), "--output_dir", str(output_dir))
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(plugin), os.environ.get("PYTHONPATH")]))}
    failed = wm_run(*args, env=env)
    model_dir = output_dir / "model"
    # steps 1-3 saved; step 5's NaN: step 3's checkpoint put back, nothing saved
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr, failed.stderr[-3000:]
    divergence = (r"NanOnce training diverged at step 5 \(loss=nan\) on '.*train'; nothing was saved; "
                  r"the last good checkpoint \S+/step\.json was kept and restored")
    # the learner's own line, then the run's (which read the learner's error or saw it exit)
    assert re.search(rf"^wm-run learn: error: {divergence}$", failed.stderr, re.MULTILINE), failed.stderr
    assert failed.stderr.splitlines()[-1].startswith("wm-run: error: the learner "), failed.stderr
    assert (model_dir / "saves.log").read_text().split() == ["3"]
    assert learner.read_learner_state(str(output_dir))["train_steps"] == 3

    resumed = wm_run(*args, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # (2 seed + 3 x 2) episodes of 5 steps at 0.7: 28 steps due, trained in calls of 3 from step 3
    saves = [int(step) for step in (model_dir / "saves.log").read_text().split()]
    assert saves == list(range(3, 31, 3))
    state = learner.read_learner_state(str(output_dir))
    assert (state["train_steps"], state["env_steps"], state["error"]) == (30, 40, None)
    assert json.loads((model_dir / "step.json").read_text())["step"] == 30
