"""SV2P trained under MirroredStrategy (two logical CPUs); its checkpoint predicts alike on one device."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from wm_core.data import npz

SCRIPT = os.path.join(os.path.dirname(__file__), "mirrored_training.py")


def test_mirrored_training_predicts_like_its_checkpoint_on_one_device(square_episodes, tmp_path):
    episodes = square_episodes(4)
    for episode in episodes:  # PointTask's one action dimension
        episode["action"] = episode["action"][:, :1]
    npz.save_dictionaries(episodes, str(tmp_path))
    completed = subprocess.run(
        [sys.executable, SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    assert results["replicas"] == 2 and results["step"] == 3
    (offset, scale), restored = results["statistics"]
    rewards = np.concatenate([episode["reward"][1:] for episode in episodes])
    assert abs(offset - rewards.mean()) < 0.2 * rewards.std() and restored == [offset, scale]
    assert results["max_reward_difference"] < 1e-5
    assert results["max_frame_difference"] <= 1  # uint8 rounding of float noise
