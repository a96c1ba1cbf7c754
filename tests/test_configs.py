"""The shipped gin configs: per-task files of a few lines that include a base
per world model and planner (``configs/base/``), and how ``wm-run`` reads them
(includes resolved from the config's own directory, plugins imported by an
included base reported like the config's own)."""

from __future__ import annotations

import glob
import os
import pathlib
import re
import subprocess
import sys

import gin
import pytest

from wm_core.loops import config as run_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
TOP_LEVEL = sorted(glob.glob(str(CONFIGS / "*.gin")))
TINY = sorted(glob.glob(str(CONFIGS / "tests" / "*.gin")))
BASES = sorted(glob.glob(str(CONFIGS / "base" / "*.gin")))
_INCLUDE = re.compile(r"""^include\s+['"](.+)['"]""", re.MULTILINE)


def _name(path: str) -> str:
    return os.path.relpath(path, CONFIGS)


def _parse(config: str, tmp_path: pathlib.Path) -> None:
    run_config.configure([config], [], str(tmp_path / "run"), seed=None)


@pytest.mark.parametrize("config", TOP_LEVEL + TINY, ids=_name)
def test_every_shipped_config_parses_from_another_working_directory(config, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # includes resolve from the config's directory, not the cwd
    _parse(os.path.relpath(config, elsewhere), tmp_path)
    assert gin.query_parameter("model_dir/macro.value") == str(tmp_path / "run" / "model")
    assert gin.query_parameter("wm.train_eval_loop.task") is not None


def test_every_base_is_included_by_a_shipped_config():
    included = {
        os.path.basename(name)
        for path in TOP_LEVEL + TINY + BASES
        for name in _INCLUDE.findall(pathlib.Path(path).read_text())
    }
    assert BASES and {os.path.basename(path) for path in BASES} <= included


@pytest.mark.parametrize("config", TOP_LEVEL, ids=_name)
def test_a_top_level_config_is_a_few_lines_on_a_base(config):
    """The base holds the model and planner; the top-level file the task and what differs."""
    text = pathlib.Path(config).read_text()
    assert len(_INCLUDE.findall(text)) == 1, "one base per config"
    bindings = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert len(bindings) <= 30, f"{len(bindings)} lines besides comments: move shared ones to a base"


# Hand-written: per base at least one config, with values the config itself sets
# (the task, sizes it overrides) and values it only gets from its base(s).
EXPECTED = {
    "planet_cem_cheetah_run.gin": {
        "wm.DeepMindControl.domain_name": "cheetah",
        "wm.DeepMindControl.task_name": "run",
        "wm.DeepMindControl.action_repeat": 4,
        "cem.CEM.horizon": 12,
        "cem.CEM.iterations": 10,
        "cem.CEM.proposals": 1000,
        "planet.RecurrentStateSpaceModel.deter_size": 200,
        "planet.create_planet_train_fn.batch": 50,
        "planet.create_planet_train_fn.duration": 50,
        "planet.create_planet_train_fn.clip_norm": 1000.0,
        "planet.create_planet_train_fn.learning_rate_ramp": 200,
        "wm.train_eval_loop.seed_episodes": 5,
        "wm.train_eval_loop.num_iterations": 1000,
    },
    # base/planet_cem_cpu.gin on base/planet_cem.gin
    "planet_cem_cartpole_balance_cpu.gin": {
        "wm.DeepMindControl.domain_name": "cartpole",
        "wm.DeepMindControl.task_name": "balance",
        "wm.DeepMindControl.action_repeat": 8,
        "planet.RecurrentStateSpaceModel.deter_size": 64,
        "planet.RecurrentStateSpaceModel.depth": 16,
        "planet.RecurrentStateSpaceModel.free_nats": 3.0,
        "planet.create_planet_train_fn.batch": 16,
        "planet.create_planet_train_fn.duration": 25,
        "planet.create_planet_train_fn.clip_norm": 1000.0,
        "planet.create_planet_train_fn.learning_rate_ramp": 0,
        "cem.CEM.horizon": 12,
        "cem.CEM.iterations": 5,
        "cem.CEM.proposals": 300,
        "wm.train_eval_loop.seed_episodes": 5,
        "wm.train_eval_loop.eval_every_n_iterations": 4,
        "wm.train_eval_loop.num_eval_episodes": 2,
        "wm.train_eval_loop.planning_quality_states": 10,
        "wm.train_eval_loop.num_iterations": 16,
    },
    "planet_cem_point_cpu.gin": {
        "wm.PointTask.length": 20,
        "wm.PointTask.gauge": True,
        "planet.RecurrentStateSpaceModel.deter_size": 32,
        "planet.RecurrentStateSpaceModel.reward_scale": 10.0,
        "planet.create_planet_train_fn.duration": 10,
        "planet.create_planet_train_fn.learning_rate": 3e-3,
        "cem.CEM.horizon": 8,
        "cem.CEM.proposals": 200,
        "cem.CEM.fraction": 0.1,
        "wm.train_eval_loop.seed_episodes": 5,
        "wm.train_eval_loop.num_iterations": 8,
    },
    "sv2p_cem_walker_walk.gin": {
        "wm.DeepMindControl.domain_name": "walker",
        "wm.DeepMindControl.task_name": "walk",
        "wm.DeepMindControl.action_repeat": 2,
        "sv2p.SV2P.base_channels": 32,
        "sv2p.SV2P.num_masks": 10,
        "sv2p.create_predict_fn.prediction_horizon": 12,
        "cem.CEM.horizon": 12,
        "cem.CEM.proposals": 1000,
    },
    "sv2p_cem_cartpole_swingup_cpu.gin": {
        "wm.DeepMindControl.action_repeat": 8,
        "sv2p.SV2P.base_channels": 8,
        "sv2p.SV2P.num_masks": 4,
        "sv2p.SV2P.input_length": 2,
        "sv2p.KLSchedule.deterministic_steps": 500,
        "sv2p.KLSchedule.kl_weight": 1e-3,
        "cem.CEM.horizon": 12,
        "cem.CEM.proposals": 128,
        "wm.train_eval_loop.seed_episodes": 3,
        "wm.train_eval_loop.num_iterations": 50,
    },
    "oracle_cem_cheetah_run.gin": {
        "wm.DeepMindControl.domain_name": "cheetah",
        "wm.DeepMindControl.task_name": "run",
        "wm.DeepMindControl.action_repeat": 4,
        "cem.CEM.horizon": 12,
        "cem.CEM.proposals": 1000,
        "wm.train_eval_loop.train_fn": None,
        "wm.train_eval_loop.num_iterations": 1,
    },
    # base/oracle_cem_cpu.gin on base/oracle_cem.gin
    "oracle_cem_cartpole_swingup_cpu.gin": {
        "wm.DeepMindControl.task_name": "swingup",
        "wm.DeepMindControl.action_repeat": 8,
        "cem.CEM.horizon": 12,
        "cem.CEM.iterations": 3,
        "cem.CEM.proposals": 100,
        "wm.train_eval_loop.num_iterations": 1,
    },
    "oracle_cem_pendulum.gin": {
        "wm.Gym.env_id": "Pendulum-v1",
        "wm.Gym.action_repeat": 4,
        "cem.CEM.iterations": 10,
        "cem.CEM.proposals": 300,
    },
    "random_cartpole_swingup.gin": {
        "wm.DeepMindControl.task_name": "swingup",
        "wm.DeepMindControl.action_repeat": 8,
        "wm.train_eval_loop.train_fn": None,
        "wm.train_eval_loop.num_iterations": 5,
    },
    "tests/random_toy.gin": {
        "wm.PointTask.length": 10,
        "wm.train_eval_loop.num_train_episodes_per_iteration": 2,
        "wm.train_eval_loop.eval_every_n_iterations": 2,
        "wm.train_eval_loop.num_eval_episodes": 1,
        "wm.train_eval_loop.num_iterations": 3,
    },
    "tests/oracle_cem_toy.gin": {
        "wm.PointTask.length": 10,
        "cem.CEM.horizon": 5,
        "cem.CEM.iterations": 3,
        "cem.CEM.proposals": 50,
        "cem.CEM.fraction": 0.1,
        "wm.train_eval_loop.num_iterations": 2,
    },
}


@pytest.mark.parametrize("config", sorted(EXPECTED))
def test_a_config_binds_what_its_task_and_its_base_say(config, tmp_path):
    _parse(str(CONFIGS / config), tmp_path)
    expected = EXPECTED[config]
    assert {name: gin.query_parameter(name) for name in expected} == expected


def test_the_cpu_oracle_trains_on_random_actions(tmp_path):
    _parse(str(CONFIGS / "oracle_cem_cartpole_balance_cpu.gin"), tmp_path)
    assert repr(gin.query_parameter("wm.train_eval_loop.train_planner")) == "@wm.Random()"
    assert repr(gin.query_parameter("wm.train_eval_loop.eval_planner")) == "%PLANNER"


def test_every_config_with_a_learned_model_or_cem_gets_its_plugins_from_its_base():
    for config in TOP_LEVEL:
        imported = {found.module for found in run_config.required_plugins(config)}
        name = os.path.basename(config)
        expected = ({"wm_planet.planet"} if name.startswith("planet_") else set()) | (
            {"wm_sv2p.sv2p"} if name.startswith("sv2p_") else set()) | (
            {"wm_cem.cem"} if "_cem_" in name else set()) | (
            {"wm_tdmpc.world_model", "wm_cem.mppi"} if name.startswith("tdmpc_mppi_") else set())
        assert imported == expected, name


def test_a_plugin_imported_by_an_included_base_is_reported_as_missing(tmp_path, monkeypatch):
    """The shipped per-task files have no import lines of their own."""
    config = str(CONFIGS / "planet_cem_cartpole_balance_cpu.gin")
    assert "import " not in pathlib.Path(config).read_text()
    for module in ("wm_planet", "wm_planet.planet"):
        monkeypatch.setitem(sys.modules, module, None)  # importing it raises ImportError
    with pytest.raises(run_config.PluginMissing) as error:
        _parse(config, tmp_path)
    base, cpu = CONFIGS / "base" / "planet_cem.gin", CONFIGS / "base" / "planet_cem_cpu.gin"
    assert str(error.value).startswith(
        f"config {base} (line 9, included from {cpu} line 5, included from {config} line 8) "
        "needs plugin 'wm_planet': pip install ./plugins/wm_planet"
    )


def test_wm_run_reports_a_missing_plugin_of_an_included_file(tmp_path):
    (tmp_path / "configs" / "base").mkdir(parents=True)
    (tmp_path / "configs" / "base" / "model.gin").write_text("# a model\nimport wm_nosuch_plugin\n")
    config = tmp_path / "configs" / "task.gin"
    config.write_text("# a task\ninclude 'base/model.gin'\n")
    result = subprocess.run(
        [sys.executable, "-m", "wm_core.cli", "--gin_file", "configs/task.gin", "--output_dir", "run"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 2
    assert (f"config {tmp_path / 'configs' / 'base' / 'model.gin'} (line 2, included from "
            f"configs/task.gin line 2) needs plugin 'wm_nosuch_plugin'") in result.stderr
    assert "Traceback" not in result.stderr


def test_an_include_that_is_nowhere_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "task.gin"  # the shipped config, copied away from configs/base/
    config.write_text((CONFIGS / "random_cartpole_swingup.gin").read_text())
    with pytest.raises(run_config.ConfigError) as error:
        _parse(str(config), tmp_path)
    assert str(error.value) == (
        f"config {config} (line 3) includes 'base/random.gin', which is in none of: "
        f"{tmp_path} (working directory), {tmp_path}"
    )


def test_an_include_cycle_is_an_error_not_a_recursion(tmp_path):
    (tmp_path / "a.gin").write_text("include 'b.gin'\n")
    (tmp_path / "b.gin").write_text("# b\ninclude 'a.gin'\n")
    with pytest.raises(run_config.ConfigError, match=r"b.gin \(line 2, included from .*a.gin line 1\) "
                                              r"includes 'a.gin' \(.*a.gin\) again: an include cycle"):
        _parse(str(tmp_path / "a.gin"), tmp_path)


def test_wm_run_runs_a_config_with_includes_from_another_directory(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = os.path.relpath(CONFIGS / "tests" / "oracle_cem_toy.gin", elsewhere)
    result = subprocess.run(
        [sys.executable, "-m", "wm_core.cli", "--gin_file", config, "--output_dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, cwd=elsewhere,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ERROR" not in result.stderr  # not gin's package-resource lookup of the include
    operative = (tmp_path / "run" / "operative_config.gin").read_text()
    assert "import wm_cem.cem" in operative  # replayable: the base's import, flattened
    assert "CEM.proposals = 50" in operative  # the override, not the base's 1000
    assert "train_eval_loop.num_iterations = 2" in operative


def test_the_wm_model_functions_hand_a_config_the_models_bound_methods():
    from wm_core.api import configurables

    class Model:
        def reset_fn(self): ...
        def observe_fn(self): ...
        def predict_fn(self): ...
        def predict_batch_fn(self): ...
        def propose_fn(self): ...
        def train_fn(self): ...

    model = Model()
    names = ["reset_fn", "observe_fn", "predict_fn", "predict_batch_fn", "propose_fn", "train_fn"]
    assert sorted(configurables.__all__) == sorted(names)
    for name in names:
        assert getattr(configurables, name)(model) == getattr(model, name), name
        with gin.unlock_config():
            gin.bind_parameter(f"wm.{name}.model", model)
        from_config = gin.get_configurable(f"wm.{name}")()  # gin hands out a copy of the model
        assert from_config.__func__ is getattr(Model, name), name
