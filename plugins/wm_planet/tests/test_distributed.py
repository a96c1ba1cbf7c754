"""Training under MirroredStrategy (two logical CPUs) equals single-device training."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(__file__), "mirrored_step.py")


def test_mirrored_training_and_inference_match_the_single_device(tiny_sizes):
    completed = subprocess.run(
        [sys.executable, SCRIPT, json.dumps(tiny_sizes)],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    assert results["replicas"] == 2
    single, mirrored = results["single"], results["mirrored"]
    assert set(single) == set(mirrored)
    for key in single:
        assert abs(single[key] - mirrored[key]) <= 1e-4 * max(1.0, abs(single[key])), (key, single, mirrored)
    assert results["max_weight_difference"] < 1e-5
    assert results["max_reward_prediction_difference"] < 1e-4
    sampling = results["mirrored_sampling"]
    pixel_noise_floor = 0.5 * 64 * 64 * 3 * math.log(2 * math.pi)
    assert pixel_noise_floor < sampling["loss"] < float("inf")
