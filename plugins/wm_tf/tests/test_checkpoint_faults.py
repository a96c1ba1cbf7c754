"""Checkpoint faults: a damaged newest checkpoint is skipped, a full disk leaves nothing behind.

:mod:`wm_tf.checkpoints` on a two-variable checkpoint (milliseconds), on a
tiny PlaNet (its trainer and its ``observe_fn``'s restore), and on a real
full disk (a 400 KiB tmpfs in a user namespace, where the machine allows one).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from wm_core.data.atomic import DiskFullError
from wm_tf.checkpoints import TrainingCheckpoints, restore_newest


def tiny_checkpoints(directory: str) -> tuple[TrainingCheckpoints, tf.Variable, tf.Variable]:
    weights = tf.Variable(tf.zeros([50]), name="weights")
    step = tf.Variable(0, dtype=tf.int64, name="step")
    checkpoint = tf.train.Checkpoint(weights=weights, step=step)
    return TrainingCheckpoints(checkpoint, directory, [weights], "Tiny"), weights, step


def save_at(checkpoints, weights, step, number: int) -> None:
    weights.assign(tf.fill([50], float(number)))
    step.assign(number)
    checkpoints.save(number)


@pytest.fixture
def two_saves(tmp_path) -> str:
    """A directory with ckpt-1 (weights all 1.0) and ckpt-2 (all 2.0)."""
    directory = str(tmp_path / "model")
    checkpoints, weights, step = tiny_checkpoints(directory)
    for number in (1, 2):
        save_at(checkpoints, weights, step, number)
    return directory


def truncate(path: str) -> None:
    with open(path, "r+b") as file:
        file.truncate(os.path.getsize(path) // 2)


def flip_a_byte(path: str) -> None:
    with open(path, "r+b") as file:
        file.seek(60)
        byte = file.read(1)
        file.seek(60)
        file.write(bytes([byte[0] ^ 0xFF]))


DAMAGE = {
    "data truncated": lambda directory: truncate(data_file(directory, 2)),
    "data corrupt": lambda directory: flip_a_byte(data_file(directory, 2)),
    "index truncated": lambda directory: truncate(os.path.join(directory, "ckpt-2.index")),
    "data missing": lambda directory: os.remove(data_file(directory, 2)),
}


def data_file(directory: str, number: int) -> str:
    (path,) = glob.glob(os.path.join(directory, f"ckpt-{number}.data-*"))
    return path


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_newest_checkpoint_is_skipped_for_the_one_before_with_a_warning(two_saves, damage):
    DAMAGE[damage](two_saves)
    with pytest.warns(RuntimeWarning, match=r"checkpoint .*ckpt-2 cannot be read .*trying the one before it"):
        checkpoints, weights, step = tiny_checkpoints(two_saves)
    assert int(step.numpy()) == 1
    np.testing.assert_array_equal(weights.numpy(), np.ones(50, np.float32))
    # training goes on from step 1 and writes step 2 again: read back without a warning
    save_at(checkpoints, weights, step, 2)
    _, weights, step = tiny_checkpoints(two_saves)
    assert int(step.numpy()) == 2
    np.testing.assert_array_equal(weights.numpy(), np.full(50, 2.0, np.float32))


def test_restore_last_after_divergence_also_skips_a_damaged_checkpoint(two_saves):
    checkpoints, weights, step = tiny_checkpoints(two_saves)
    truncate(data_file(two_saves, 2))
    weights.assign(tf.fill([50], np.nan))
    with pytest.warns(RuntimeWarning, match="ckpt-2 cannot be read"):
        with pytest.raises(FloatingPointError, match=r"last good checkpoint .*ckpt-1 was kept and restored"):
            checkpoints.save(3)
    assert int(step.numpy()) == 1


def test_no_readable_checkpoint_is_an_error_naming_each(two_saves):
    for number in (1, 2):
        truncate(data_file(two_saves, number))
    checkpoint = tf.train.Checkpoint(weights=tf.Variable(tf.zeros([50])), step=tf.Variable(0, dtype=tf.int64))
    with pytest.warns(RuntimeWarning):
        with pytest.raises(RuntimeError, match=r"no checkpoint in .* can be read: .*ckpt-2 .*; .*ckpt-1 "):
            restore_newest(checkpoint, two_saves)


def test_a_full_disk_during_a_save_names_the_checkpoint_and_leaves_nothing_of_it(two_saves, monkeypatch):
    checkpoints, weights, step = tiny_checkpoints(two_saves)
    before = sorted(os.listdir(two_saves))

    def full_disk_save(checkpoint_number):
        # what a save on a full disk leaves (seen on a 400 KiB tmpfs): the
        # shard directory; here also a part of the merged files and a state file temporary
        prefix = os.path.join(two_saves, f"ckpt-{checkpoint_number}")
        os.makedirs(prefix + "_temp")
        for path in (f"{prefix}_temp/part-00000-of-00001.data-00000-of-00001.tempstate1",
                     f"{prefix}.index", f"{prefix}.data-00000-of-00001",
                     os.path.join(two_saves, "checkpoint.tmp1234")):
            with open(path, "wb") as file:
                file.write(b"\0" * 10)
        raise tf.errors.ResourceExhaustedError(
            None, None, f"{prefix}_temp/part-00000-of-00001.data-00000-of-00001.tempstate1; "
            "No space left on device [Op:SaveV2]")

    monkeypatch.setattr(checkpoints.manager, "save", full_disk_save)
    with pytest.raises(DiskFullError) as raised:
        save_at(checkpoints, weights, step, 3)
    assert str(raised.value) == f"no space left on device while writing checkpoint {two_saves}/ckpt-3"
    assert sorted(os.listdir(two_saves)) == before
    assert int(tiny_checkpoints(two_saves)[2].numpy()) == 2  # a restart resumes from the last save
    monkeypatch.undo()  # space again: the same save goes through
    checkpoints.save(3)
    _, weights, step = tiny_checkpoints(two_saves)
    assert int(step.numpy()) == 3
    np.testing.assert_array_equal(weights.numpy(), np.full(50, 3.0, np.float32))


def test_other_save_errors_pass_unchanged(two_saves, monkeypatch):
    checkpoints, _, _ = tiny_checkpoints(two_saves)

    def failing_save(checkpoint_number):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    monkeypatch.setattr(checkpoints.manager, "save", failing_save)
    with pytest.raises(tf.errors.ResourceExhaustedError, match="OOM"):
        checkpoints.save(3)


FULL_DISK_SAVE = """
import os, sys
import tensorflow as tf
from wm_tf.checkpoints import TrainingCheckpoints
directory = sys.argv[1]
weights = tf.Variable(tf.zeros([30_000]))  # 120 kB a checkpoint: the 400 KiB disk holds one
checkpoints = TrainingCheckpoints(tf.train.Checkpoint(weights=weights), directory, [weights], "Tiny")
checkpoints.save(1)
with open(os.path.join(directory, "..", "filler"), "wb") as file:  # leaves less than a checkpoint
    file.write(b"0" * (os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize - 60_000))
try:
    checkpoints.save(2)
except OSError as error:
    print("ERROR", type(error).__name__, error)
print("LEFT", sorted(os.listdir(directory)))
os.remove(os.path.join(directory, "..", "filler"))
checkpoints.save(2)
print("AFTER", os.path.basename(tf.train.latest_checkpoint(directory)))
"""


def test_a_real_full_disk_during_a_save(tmp_path):
    """On a 400 KiB tmpfs (an unprivileged user namespace; skipped where there is none)."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-rm", "true"], capture_output=True).returncode:
        pytest.skip("no unprivileged user namespaces here to mount a small tmpfs in")
    mount = tmp_path / "disk"
    mount.mkdir()
    script = tmp_path / "full_disk_save.py"
    script.write_text(FULL_DISK_SAVE)
    command = (f"mount -t tmpfs -o size=400k tmpfs {mount} && "
               f"{sys.executable} {script} {mount}/model")
    completed = subprocess.run([unshare, "-rm", "sh", "-c", command], capture_output=True, text=True,
                               timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in completed.stdout.splitlines())
    assert lines["ERROR"] == (
        f"DiskFullError no space left on device while writing checkpoint {mount}/model/ckpt-2")
    assert lines["LEFT"] == repr(sorted(["checkpoint", "ckpt-1.index", "ckpt-1.data-00000-of-00001"]))
    assert lines["AFTER"] == "ckpt-2"


def test_a_tiny_planet_falls_back_past_a_truncated_newest_checkpoint(tmp_path):
    """The trainer restores the previous step and weights; so does observe's pick-up."""
    planet = pytest.importorskip("wm_planet.planet")
    from wm_core.data import npz
    from wm_core.planning import planners
    from wm_core.rollout import simulate
    from wm_core.tasks.toy import PointTask
    from wm_planet.model import RecurrentStateSpaceModel
    from wm_planet.training import Trainer
    from wm_planet.world_model import PlaNet

    task = PointTask(length=10)
    episodes, _, _ = simulate.simulate(task, planners.Random(task, seed=0), 2, seed=0)
    npz.save_dictionaries(episodes, str(tmp_path / "episodes"))
    sizes = dict(deter_size=8, stoch_size=4, hidden_size=8, embed_size=16, depth=4, reward_units=8,
                 reward_layers=1)
    model_dir = str(tmp_path / "model")
    trained = RecurrentStateSpaceModel(task=task, **sizes)
    train_fn = planet.create_planet_train_fn(trained, 1, 2, 4, 1e-3, model_dir)
    train_fn(str(tmp_path / "episodes"))
    first = [variable.numpy() for variable in trained.variables]
    train_fn(str(tmp_path / "episodes"))
    assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-2")
    truncate(data_file(model_dir, 2))

    fresh = RecurrentStateSpaceModel(task=task, **sizes)
    with pytest.warns(RuntimeWarning, match="ckpt-2 cannot be read"):
        trainer = Trainer(fresh, model_dir)
    assert trainer.step == 1
    for restored, expected in zip(fresh.variables, first, strict=True):
        np.testing.assert_array_equal(restored.numpy(), expected)

    observer = RecurrentStateSpaceModel(task=task, **sizes)
    with pytest.warns(RuntimeWarning, match="ckpt-2 cannot be read"):
        assert PlaNet(task, model_dir, model=observer).poll_checkpoint()
    for restored, expected in zip(observer.variables, first, strict=True):
        np.testing.assert_array_equal(restored.numpy(), expected)
