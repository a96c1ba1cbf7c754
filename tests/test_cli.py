from __future__ import annotations

import glob
import json
import os
import pathlib
import subprocess
import sys

import gin
import numpy as np
import pytest

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from wm_core import cli
from wm_core.data import npz
from wm_core.reporting import quiet

ROOT = pathlib.Path(__file__).resolve().parents[1]
WM_RUN = [sys.executable, "-m", "wm_core.cli"]
TINY_CONFIGS = sorted(glob.glob(str(ROOT / "configs" / "tests" / "*.gin")))


def wm_run(*args, env=None, timeout=600):
    return subprocess.run([*WM_RUN, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


LEARNED = [path for path in TINY_CONFIGS if "planet" in path or "sv2p" in path]


def check_finished_run(config: str, run: pathlib.Path) -> None:
    """A run of ``config`` in ``run`` finished its iterations, saved episodes
    and summaries, and (learned models) open-loop prediction videos."""
    state = json.loads((run / "loop_state.json").read_text())
    operative = (run / "operative_config.gin").read_text()
    assert f"train_eval_loop.num_iterations = {state['completed_iterations']}" in operative
    assert npz.episode_paths(str(run / "episodes" / "train"))
    assert glob.glob(str(run / "summaries" / "train" / "events.out.tfevents.*"))
    if config in LEARNED:
        tags = {value.tag for path in glob.glob(str(run / "summaries" / "eval" / "events.*"))
                for event in EventFileLoader(path).Load() for value in event.summary.value}
        assert "episode_0/open_loop/decision_0" in tags, sorted(tags)


@pytest.mark.slow
@pytest.mark.parametrize("config", [path for path in TINY_CONFIGS if path not in LEARNED],
                         ids=lambda path: os.path.basename(path))
def test_every_tiny_config_runs_end_to_end(config, tmp_path, tensorboard_reader_without_tensorflow):
    """The learned-model tiny configs run end to end in the reproducibility test below."""
    result = wm_run("--gin_file", config, "--output_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    check_finished_run(config, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("config", LEARNED, ids=lambda path: os.path.basename(path))
def test_a_learned_model_run_is_reproducible_from_its_seed(
    config, tmp_path, tensorboard_reader_without_tensorflow
):
    """Each tiny learned-model config runs end to end, and initial weights,
    training noise and planner draws all follow ``--seed``: two processes
    collect the same episodes (the model-planned ones too)."""
    runs = [tmp_path / "first", tmp_path / "second"]
    # Both at once: independent processes, and the wall time of one (two cores).
    logs = [tmp_path / f"{run.name}.stderr" for run in runs]
    processes = []
    for run, log in zip(runs, logs):
        with open(log, "w") as stderr:
            processes.append(subprocess.Popen(
                [*WM_RUN, "--gin_file", config, "--output_dir", str(run), "--seed", "5"],
                stdout=subprocess.DEVNULL, stderr=stderr,
            ))
    for process, log in zip(processes, logs):
        assert process.wait(timeout=600) == 0, log.read_text()[-3000:]
    check_finished_run(config, runs[0])
    for phase in ("train", "eval"):
        first, second = (npz.load_dictionaries(str(run / "episodes" / phase)) for run in runs)
        assert len(first) == len(second) > 0
        for one, other in zip(first, second):
            assert (one["action"] == other["action"]).all()


def test_run_directory_is_replayable_from_its_operative_config(tmp_path):
    first = tmp_path / "first"
    config = str(ROOT / "configs/tests/random_toy.gin")
    assert wm_run("--gin_file", config, "--output_dir", str(first), "--seed", "3").returncode == 0
    replay = tmp_path / "replay"
    result = wm_run("--gin_file", str(first / "operative_config.gin"), "--output_dir", str(replay))
    assert result.returncode == 0, result.stderr[-3000:]
    original = npz.load_dictionaries(str(first / "episodes" / "train"))
    replayed = npz.load_dictionaries(str(replay / "episodes" / "train"))
    assert len(original) == len(replayed) == 6
    for a, b in zip(original, replayed):
        assert (a["state"] == b["state"]).all() and (a["action"] == b["action"]).all()


def test_seed_flag_changes_the_episodes(tmp_path):
    config = str(ROOT / "configs/tests/random_toy.gin")
    for seed in ("0", "7"):
        assert wm_run("--gin_file", config, "--output_dir", str(tmp_path / seed), "--seed", seed).returncode == 0
    starts = [npz.load_dictionaries(str(tmp_path / seed / "episodes" / "train"))[0]["state"][0] for seed in "07"]
    assert starts[0] != starts[1]


def test_missing_plugin_names_config_line_and_install_command(tmp_path):
    config = tmp_path / "needs_planet.gin"
    config.write_text("# PlaNet, not installed here\n\nimport wm_nosuch_plugin\nimport wm_planet_missing\n")
    result = wm_run("--gin_file", str(config), "--output_dir", str(tmp_path / "run"))
    assert result.returncode == 2
    assert f"config {config} (line 3) needs plugin 'wm_nosuch_plugin'" in result.stderr
    assert "Traceback" not in result.stderr


def test_known_plugin_hint_points_at_its_folder():
    from wm_core.loops.config import PluginMissing

    message = str(PluginMissing("c.gin", 4, "wm_planet.planet", "ModuleNotFoundError"))
    assert message.startswith("config c.gin (line 4) needs plugin 'wm_planet': pip install ./plugins/wm_planet")


@pytest.mark.parametrize("where", ["file", "param"])
def test_bad_binding_reports_gins_message_with_location(tmp_path, where):
    config = tmp_path / "typo.gin"
    config.write_text((ROOT / "configs/tests/random_toy.gin").read_text()
                      + ("wm.PointTask.lenght = 3\n" if where == "file" else ""))
    params = ["--gin_param", "wm.train_eval_loop.num_iteratons=2"] if where == "param" else []
    result = wm_run("--gin_file", str(config), "--output_dir", str(tmp_path / "run"), *params)
    assert result.returncode == 2
    if where == "file":
        assert "doesn't have a parameter named 'lenght'" in result.stderr
        assert f'In file "{config}", line ' in result.stderr
    else:
        assert "doesn't have a parameter named 'num_iteratons'" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_file_is_a_clear_error(tmp_path):
    result = wm_run("--gin_file", str(tmp_path / "nope.gin"), "--output_dir", str(tmp_path))
    assert result.returncode == 2 and "nope.gin does not exist" in result.stderr


@pytest.mark.parametrize("flag, binding", [(["--seed", "-1"], []), ([], ["--gin_param", "seed = 'x'"])])
def test_a_bad_run_seed_is_a_clear_error(tmp_path, flag, binding):
    config = str(ROOT / "configs/tests/random_toy.gin")
    result = wm_run("--gin_file", config, "--output_dir", str(tmp_path), *flag, *binding)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "wm-run: error: the run seed" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("binding", ["wm.train_eval_loop.num_eval_episodes = 0",
                                     "wm.train_eval_loop.async_training = True"])
def test_a_bad_loop_setting_is_a_one_line_error(tmp_path, binding):
    config = str(ROOT / "configs/tests/random_toy.gin")
    result = wm_run("--gin_file", config, "--output_dir", str(tmp_path), "--gin_param", binding)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("wm-run: error: wm.train_eval_loop: ") and len(result.stderr.splitlines()) == 1


def test_a_configured_class_refusing_its_arguments_is_a_one_line_error(tmp_path):
    config = str(ROOT / "configs/tests/oracle_cem_toy.gin")
    result = wm_run("--gin_file", config, "--output_dir", str(tmp_path), "--gin_param", "cem.CEM.iterations = 0")
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr == ("wm-run: error: iterations must be an integer >= 1, got 0 (an argument of "
                             "wm_cem.cem.CEM in gin scope 'planner': check its bindings; --verbose shows the "
                             "traceback)\n")
    verbose = wm_run("--gin_file", config, "--output_dir", str(tmp_path / "verbose"), "--verbose",
                     "--gin_param", "cem.CEM.iterations = 0")
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr and "_require_positive_int" in verbose.stderr


@gin.configurable(module="test_cli")
class RefusesItsArguments:
    def __init__(self, size: int = 0):
        raise ValueError(f"size must be positive, got {size}")


@gin.configurable(module="test_cli")
def fails_while_running():
    raise ValueError("a bug, not a binding")


def test_only_a_constructors_value_error_counts_as_a_bad_binding():
    # What gin appends to the message decides: a class's constructor refused its arguments
    # (a config error, one line); a configured function failed while running (a traceback).
    with pytest.raises(ValueError) as refused:
        RefusesItsArguments()
    assert cli._refused_arguments(refused.value) == (
        f"size must be positive, got 0 (an argument of {__name__}.RefusesItsArguments: check its bindings; "
        "--verbose shows the traceback)")
    with pytest.raises(ValueError) as failed:
        fails_while_running()
    assert cli._refused_arguments(failed.value) is None
    assert cli._refused_arguments(ValueError("outside gin")) is None


def test_plugins_command_lists_entry_points_from_metadata_without_importing_them():
    result = wm_run("plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("wm-planet ") for line in lines)
    planet = next(line for line in lines if "world_models" in line and " planet " in line)
    assert planet.endswith("wm_planet.planet:PlaNet")
    assert "tensorflow" not in result.stderr.lower()


def test_plugins_check_lists_distributions_names_hooks_and_status(users_shell_environment):
    result = wm_run("plugins", "--check")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("wm-core 0.1.0") for line in lines)
    assert any("planners" in line and " random " in line and "loaded" in line for line in lines)
    tensorboard = next(line for line in lines if " tensorboard " in line)
    assert "loaded; hooks:" in tensorboard and "wm_iteration_end" in tensorboard
    assert not quiet.START_UP_LINES.search(result.stdout + result.stderr), result.stderr[-3000:]


SHIPPED_CONFIGS = sorted(glob.glob(str(ROOT / "configs" / "*.gin")))


@pytest.mark.parametrize("config", SHIPPED_CONFIGS, ids=lambda path: os.path.basename(path))
def test_every_shipped_config_parses_with_its_plugins(config, tmp_path):
    import gin

    from wm_core.loops.config import configure

    configure([config], [], str(tmp_path), seed=None)
    assert gin.query_parameter("wm.train_eval_loop.model_dir") is not None
    assert gin.query_parameter("model_dir/macro.value") == str(tmp_path / "model")


def test_run_ends_with_its_final_eval_score_against_random_actions(tmp_path):
    config = str(ROOT / "configs/tests/random_toy.gin")
    result = wm_run("--gin_file", config, "--output_dir", str(tmp_path),
                    "--gin_param", "wm.train_eval_loop.seed_episodes = 2")
    assert result.returncode == 0, result.stderr[-3000:]
    train = npz.episode_paths(str(tmp_path / "episodes" / "train"))[:2]
    (last_eval,) = npz.episode_paths(str(tmp_path / "episodes" / "eval"))[-1:]
    random_score = np.mean([npz.load_episode(path)["reward"].sum() for path in train])
    final = npz.load_episode(last_eval)["reward"].sum()
    assert result.stdout.splitlines()[-1] == (
        f"wm-run: final eval score {final:.1f}; random actions {random_score:.1f} (seed episodes)")
