"""The TD-MPC gin configs: published settings, and the tiny one runs end to end through wm-run."""

from __future__ import annotations

import glob
import os

import gin
import pytest
import tensorflow as tf

from wm_core.loops import config
from wm_core.loops.train_eval import run_experiment
from wm_core.testing import clean_gin_config

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "configs")


@pytest.fixture
def clean_gin():
    with clean_gin_config():
        yield


def test_the_base_config_holds_the_published_settings(clean_gin, tmp_path):
    config.configure([os.path.join(CONFIGS, "tdmpc_mppi_cartpole_balance_cpu.gin")], [], str(tmp_path))
    with gin.unlock_config():
        gin.parse_config_file(os.path.join(CONFIGS, "base", "tdmpc_mppi.gin"))
    expected = {
        "tdmpc.TDMPC.learning_rate": 3e-4,
        "tdmpc.TDMPC.encoder_learning_scale": 0.3,
        "tdmpc.TDMPC.clip_norm": 20.0,
        "tdmpc.TDMPC.rho": 0.5,
        "tdmpc.TDMPC.tau": 0.01,
        "tdmpc.TDMPC.batch": 256,
        "tdmpc.TDMPCModel.frame_stack": 3,
        "tdmpc.TDMPCModel.channels": 32,
        "tdmpc.TDMPCModel.units": 512,
        "tdmpc.TDMPCModel.num_q": 5,
        "tdmpc.TDMPCModel.bins": 101,
        "tdmpc.TDMPCModel.horizon": 3,
        "mppi.MPPI.horizon": 3,
        "mppi.MPPI.iterations": 6,
        "mppi.MPPI.proposals": 512,
        "mppi.MPPI.fraction": 0.125,
        "mppi.MPPI.policy_proposals": 24,
        "mppi.MPPI.min_stdev": 0.05,
        "mppi.MPPI.warm_start": True,
    }
    assert {name: gin.query_parameter(name) for name in expected} == expected


@pytest.mark.parametrize(
    "path", sorted(glob.glob(os.path.join(CONFIGS, "tdmpc_*.gin"))), ids=os.path.basename
)
def test_every_tdmpc_config_parses(path, clean_gin, tmp_path):
    config.configure([path], [], str(tmp_path))
    assert gin.query_parameter("mppi.MPPI.horizon") <= gin.query_parameter("tdmpc.TDMPCModel.horizon")


@pytest.mark.slow
def test_the_tiny_config_trains_and_checkpoints_through_wm_run(tmp_path, clean_gin):
    results = run_experiment([os.path.join(CONFIGS, "tests", "tdmpc_tiny.gin")], [], str(tmp_path))
    assert len(results["train_scores"]) == 2 and len(results["eval_scores"]) == 1
    # two iterations of two updates each
    assert tf.train.latest_checkpoint(str(tmp_path / "model")).endswith("ckpt-4")


PLANET_ACTION_REPEAT = {
    "cartpole_swingup": 8, "reacher_easy": 4, "cheetah_run": 4, "finger_spin": 2,
    "ball_in_cup_catch": 4, "walker_walk": 2,
}


@pytest.mark.parametrize("task", sorted(PLANET_ACTION_REPEAT))
def test_each_planet_benchmark_task_has_a_config_with_planets_action_repeat(task, clean_gin, tmp_path):
    config.configure([os.path.join(CONFIGS, f"tdmpc_mppi_{task}.gin")], [], str(tmp_path))
    domain, name = task.rsplit("_", 1)
    decisions = 1000 // PLANET_ACTION_REPEAT[task]
    expected = {
        "wm.DeepMindControl.domain_name": domain,
        "wm.DeepMindControl.task_name": name,
        "wm.DeepMindControl.action_repeat": PLANET_ACTION_REPEAT[task],
        "tdmpc.TDMPC.train_steps": decisions,
        "tdmpc.TDMPCModel.units": 512,
    }
    assert {key: gin.query_parameter(key) for key in expected} == expected
