"""The shared training scaffold (:mod:`wm_core.loops.training`) with a NumPy learner."""

from __future__ import annotations

import numpy as np
import pytest

from wm_core.data import npz
from wm_core.api.hooks import Hooks, create_plugin_manager, hookimpl, use_hooks
from wm_core.loops.training import TrainingDivergedError, TrainLoop, check_training_batch

FRAME = (4, 4, 1)


def episode(rows: int, reward: float = 1.0) -> dict[str, np.ndarray]:
    return {
        "image": np.zeros((rows, *FRAME), np.uint8),
        "action": np.zeros((rows, 2), np.float32),
        "reward": np.full(rows, reward, np.float32),
    }


class MeanRewardTrainer:
    """Learns the mean reward by gradient steps of size 0.5; saves in memory."""

    name = "Toy"
    frame_size = FRAME
    action_dim = 2
    tolerated_nonfinite = frozenset({"ignored"})

    def __init__(self):
        self.weight, self.step, self.saved, self.prepared = 0.0, 0, [], 0

    def train_step(self, batch):
        error = self.weight - float(batch["reward"].mean())
        self.weight -= 0.5 * error
        self.step += 1
        return {"loss": error**2, "ignored": float("nan")}

    def before_first_step(self, batches):
        self.prepared += 1
        next(batches)

    def save(self):
        self.saved.append((self.step, self.weight))
        return f"ckpt-{self.step}"

    def restore_last(self):
        if not self.saved:
            return None
        self.step, self.weight = self.saved[-1]
        return f"ckpt-{self.step}"


class Recorder:
    def __init__(self):
        self.steps = []

    @hookimpl
    def wm_train_step(self, step, metrics):
        self.steps.append(step)


def run(train_fn, path):
    recorder = Recorder()
    with use_hooks(Hooks(create_plugin_manager(load_entry_points=False, plugins=(recorder,)))):
        train_fn(str(path))
    return recorder.steps


def test_steps_are_reported_saved_and_prepared_once(tmp_path):
    npz.save_dictionaries([episode(6, reward=2.0)], str(tmp_path))
    learner = MeanRewardTrainer()
    train_fn = TrainLoop(learner, train_steps=3, batch=2, chunk_length=3, prefetch=0)
    assert run(train_fn, tmp_path) == [1, 2, 3]
    assert run(train_fn, tmp_path) == [4, 5, 6]
    assert learner.prepared == 1
    assert [step for step, _ in learner.saved] == [3, 6]
    assert learner.weight == pytest.approx(2.0 * (1 - 0.5**6))  # 0.5 of the gap per step


def test_divergence_restores_the_last_save_and_says_so(tmp_path):
    npz.save_dictionaries([episode(6)], str(tmp_path / "good"))
    npz.save_dictionaries([episode(6, reward=np.nan)], str(tmp_path / "bad"))
    learner = MeanRewardTrainer()
    train_fn = TrainLoop(learner, train_steps=2, batch=2, chunk_length=3, prefetch=0)
    run(train_fn, tmp_path / "good")
    with pytest.raises(TrainingDivergedError, match=r"Toy training diverged at step 3 \(loss=nan\) "
                                                    r"on '.*bad'; nothing was saved; the last good "
                                                    r"checkpoint ckpt-2 was kept and restored"):
        run(train_fn, tmp_path / "bad")
    assert (learner.step, len(learner.saved)) == (2, 1)
    assert learner.weight == learner.saved[0][1]


def test_divergence_before_any_save_says_the_weights_are_invalid(tmp_path):
    npz.save_dictionaries([episode(6, reward=np.inf)], str(tmp_path))
    train_fn = TrainLoop(MeanRewardTrainer(), train_steps=2, batch=2, chunk_length=3, prefetch=0)
    with pytest.raises(TrainingDivergedError, match="no checkpoint to go back to"):
        run(train_fn, tmp_path)


def test_a_new_data_path_gets_its_own_iterator(tmp_path):
    npz.save_dictionaries([episode(6, reward=1.0)], str(tmp_path / "a"))
    npz.save_dictionaries([episode(6, reward=5.0)], str(tmp_path / "b"))
    learner = MeanRewardTrainer()
    train_fn = TrainLoop(learner, train_steps=40, batch=2, chunk_length=3, prefetch=0)
    run(train_fn, tmp_path / "a")
    assert learner.weight == pytest.approx(1.0)
    run(train_fn, tmp_path / "b")
    assert learner.weight == pytest.approx(5.0)  # trained on b only


def test_episodes_of_the_wrong_shape_are_named(tmp_path):
    wrong = episode(6)
    wrong["image"] = np.zeros((6, 8, 8, 1), np.uint8)
    npz.save_dictionaries([wrong], str(tmp_path))
    train_fn = TrainLoop(MeanRewardTrainer(), train_steps=1, batch=2, chunk_length=3, prefetch=0)
    with pytest.raises(ValueError, match=r"Toy training batch from '.*'\['image'\] is uint8 "
                                         r"\(2, 3, 8, 8, 1\); expected uint8 \[\?, \?, 4, 4, 1\]"):
        run(train_fn, tmp_path)


def test_an_empty_directory_and_bad_settings_are_clear_errors(tmp_path):
    train_fn = TrainLoop(MeanRewardTrainer(), train_steps=1, batch=2, chunk_length=3)
    with pytest.raises(ValueError, match=r"no episode files \(\*\.npz\) in"):
        train_fn(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        train_fn(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="chunk_length must be an integer >= 1, got 0"):
        TrainLoop(MeanRewardTrainer(), train_steps=1, batch=2, chunk_length=0)


def test_batch_check_drops_extra_keys_and_catches_disagreeing_lengths():
    batch = {key: value[None] for key, value in episode(3).items()}
    checked = check_training_batch({**batch, "seed": np.zeros((1, 3))}, FRAME, 2)
    assert sorted(checked) == ["action", "image", "reward"]
    with pytest.raises(ValueError, match=r"disagree on \[B, L\]"):
        check_training_batch({**batch, "reward": np.zeros((1, 2), np.float32)}, FRAME, 2)
    with pytest.raises(ValueError, match="has no 'action'"):
        check_training_batch({"image": batch["image"], "reward": batch["reward"]}, FRAME, 2)
