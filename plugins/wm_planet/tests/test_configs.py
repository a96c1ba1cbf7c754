"""The PlaNet gin configs: published settings, and the tiny one runs end to end."""

from __future__ import annotations

import glob
import os

import gin
import pytest
import tensorflow as tf

from wm_core.loops import config, train_eval
from wm_core.testing import clean_gin_config

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "configs")
PUBLISHED_ACTION_REPEAT = {
    "cartpole_swingup": 8,
    "reacher_easy": 4,
    "cheetah_run": 4,
    "finger_spin": 2,
    "ball_in_cup_catch": 4,
    "walker_walk": 2,
}


@pytest.fixture
def clean_gin():
    with clean_gin_config():
        yield


def test_there_is_one_config_per_published_task():
    names = sorted(
        os.path.basename(path)[len("planet_cem_"):-len(".gin")]
        for path in glob.glob(os.path.join(CONFIGS, "planet_cem_*.gin"))
        if not path.endswith("_cpu.gin")  # CPU-sized variants (the main job, benchmarks)
    )
    assert names == sorted(PUBLISHED_ACTION_REPEAT)


@pytest.mark.parametrize("task", sorted(PUBLISHED_ACTION_REPEAT))
def test_configs_hold_the_published_settings(task, clean_gin, tmp_path):
    # As wm-run reads it: the per-task file includes base/planet_cem.gin, found
    # through the config's directory on gin's search path.
    config.configure([os.path.join(CONFIGS, f"planet_cem_{task}.gin")], [], str(tmp_path))
    domain, name = task.rsplit("_", 1)
    expected = {
        "wm.DeepMindControl.domain_name": domain,
        "wm.DeepMindControl.task_name": name,
        "wm.DeepMindControl.action_repeat": PUBLISHED_ACTION_REPEAT[task],
        "cem.CEM.horizon": 12,
        "cem.CEM.iterations": 10,
        "cem.CEM.proposals": 1000,
        "cem.CEM.fraction": 0.1,
        "wm.train_eval_loop.seed_episodes": 5,
        "train/wm.GaussianRandomNoise.stdev": 0.3,
        "planet.create_planet_train_fn.train_steps": 100,
        "planet.create_planet_train_fn.batch": 50,
        "planet.create_planet_train_fn.duration": 50,
        "planet.create_planet_train_fn.learning_rate": 1e-3,
        "planet.create_planet_train_fn.adam_epsilon": 1e-4,
        "planet.create_planet_train_fn.clip_norm": 1000.0,
        "planet.RecurrentStateSpaceModel.deter_size": 200,
        "planet.RecurrentStateSpaceModel.stoch_size": 30,
        "planet.RecurrentStateSpaceModel.free_nats": 3.0,
        "planet.RecurrentStateSpaceModel.reward_scale": 10.0,
        # The published ramp of 10000 counted samples: 200 updates of 50 chunks.
        "planet.create_planet_train_fn.learning_rate_ramp": 200,
    }
    assert {name: gin.query_parameter(name) for name in expected} == expected


@pytest.mark.slow
def test_the_tiny_config_trains_and_checkpoints_through_wm_run(tmp_path, clean_gin):
    results = train_eval.run_experiment([os.path.join(CONFIGS, "tests", "planet_tiny.gin")], [], str(tmp_path))
    assert len(results["train_scores"]) == 2 and len(results["eval_scores"]) == 1
    # two iterations of two train steps each
    assert tf.train.latest_checkpoint(str(tmp_path / "model")).endswith("ckpt-4")
