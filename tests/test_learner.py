"""Training beside collection: wm_core.loops.learner and train_eval_loop(async_training=True).

The model here is a fake: a gin-configurable ``train_fn`` (in a module
written to ``tmp_path`` and imported by the config, as a plugin would be)
whose step counter lives in ``<model_dir>/step.json`` like a checkpoint, and
which can be made slow, to stand for a slower machine.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from wm_core import hookimpl
from wm_core.data import npz
from wm_core.loops import learner
from wm_core.loops.config import configure
from wm_core.reporting import quiet
from wm_core.api.hooks import Hooks, active_hooks, create_plugin_manager
from wm_core.tasks.toy import PointTask

ROOT = Path(__file__).resolve().parents[1]
LENGTH = 5
FAKE_TRAINER = '''
import json, os, time
import gin
from wm_core.data.atomic import write_text_atomically
from wm_core.api.hooks import active_hooks

@gin.configurable(module="fake")
def make_train_fn(model_dir, steps_per_call=3, seconds_per_step=0.0, fail=False):
    def train_fn(data_path):
        if fail:
            raise RuntimeError("the fake model cannot train")
        os.makedirs(model_dir, exist_ok=True)
        write_text_atomically(os.path.join(model_dir, "cpus.json"), json.dumps(sorted(os.sched_getaffinity(0))))
        path = os.path.join(model_dir, "step.json")
        step = json.load(open(path))["step"] if os.path.exists(path) else 0
        for _ in range(steps_per_call):
            time.sleep(seconds_per_step)
            step += 1
            active_hooks().train_step(step, {"loss": 1.0})
        write_text_atomically(path, json.dumps({"step": step}))
    return train_fn
'''

# configs/tests/random_toy.gin with the fake model; the counts the tests check restated.
CONFIG = "import fake_trainer\n" + (ROOT / "configs" / "tests" / "random_toy.gin").read_text() + f"""
wm.PointTask.length = {LENGTH}
fake.make_train_fn.model_dir = %model_dir
wm.train_eval_loop.train_fn = @fake.make_train_fn()
wm.train_eval_loop.seed_episodes = 2
wm.train_eval_loop.num_train_episodes_per_iteration = 2
wm.train_eval_loop.num_iterations = 3
wm.train_eval_loop.async_training = True
wm.train_eval_loop.train_steps_per_env_step = 0.7
"""


@pytest.fixture
def config(tmp_path, monkeypatch):
    """The gin config above, its fake plugin importable here and in the learner process."""
    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    (plugin_dir / "fake_trainer.py").write_text(textwrap.dedent(FAKE_TRAINER))
    monkeypatch.syspath_prepend(str(plugin_dir))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(plugin_dir), os.environ.get("PYTHONPATH")])))
    path = tmp_path / "async.gin"
    path.write_text(CONFIG)
    return str(path)


class LearnerWatch:
    """At every train episode's start: the learner's progress against what is
    due, and the CPUs collection runs on."""

    def __init__(self, output_dir: str, ratio: float):
        self.output_dir, self.ratio = output_dir, ratio
        self.seen: list[tuple[int, int, int | None]] = []
        self.collection_cpus: list[set[int]] = []

    @hookimpl
    def wm_episode_start(self, phase, episode_index, seed):
        self.collection_cpus.append(os.sched_getaffinity(0))
        if phase == "train":
            state = learner.read_learner_state(self.output_dir) or {}
            due = learner.due_steps(self.ratio, npz.environment_steps(
                os.path.join(self.output_dir, "episodes", "train")))
            self.seen.append((state.get("train_steps", 0), due, state.get("steps_per_call")))


def run_async(config: str, output_dir: str, params=(), watch: LearnerWatch | None = None) -> dict:
    output_dir = configure([config], list(params), output_dir)
    from wm_core.loops.train_eval import train_eval_loop

    plugins = (watch,) if watch else ()
    return train_eval_loop(output_dir=output_dir, hooks=Hooks(create_plugin_manager(False, plugins)))


def test_the_learner_trains_by_the_ratio_and_collection_never_runs_ahead(config, tmp_path):
    output_dir = str(tmp_path / "run")
    watch = LearnerWatch(output_dir, 0.7)
    # a slow learner (0.05 s per step): without waiting, collection would run far ahead
    run_async(config, output_dir, ["fake.make_train_fn.seconds_per_step = 0.05"], watch)
    env_steps = npz.environment_steps(os.path.join(output_dir, "episodes", "train"))
    assert env_steps == (2 + 2 * 3) * LENGTH
    state = learner.read_learner_state(output_dir)
    due = learner.due_steps(0.7, env_steps)  # 28
    assert due <= state["train_steps"] < due + 3 and state["steps_per_call"] == 3
    assert state["error"] is None
    with open(os.path.join(output_dir, "model", "step.json")) as file:
        assert json.load(file)["step"] == state["train_steps"]
    assert len(watch.seen) == 2 + 2 * 3
    for train_steps, due_then, steps_per_call in watch.seen:
        assert train_steps + (steps_per_call or 0) >= due_then, watch.seen
    assert len(npz.episode_paths(os.path.join(output_dir, "episodes", "eval"))) == 1


def test_the_total_training_follows_the_ratio_whatever_the_learners_speed(config, tmp_path):
    steps = []
    for name, seconds in (("fast", 0.0), ("slow", 0.04)):
        output_dir = str(tmp_path / name)
        run_async(config, output_dir, [f"fake.make_train_fn.seconds_per_step = {seconds}"])
        steps.append(learner.read_learner_state(output_dir)["train_steps"])
    assert steps[0] == steps[1]


def test_a_failing_learner_stops_the_run_with_its_error(config, tmp_path):
    with pytest.raises(learner.LearnerFailed, match="the fake model cannot train"):
        run_async(config, str(tmp_path / "run"), ["fake.make_train_fn.fail = True"])


def test_a_resumed_run_goes_on_counting_from_the_learners_state(config, tmp_path):
    output_dir = str(tmp_path / "run")
    run_async(config, output_dir, ["wm.train_eval_loop.num_iterations = 1"])
    first = learner.read_learner_state(output_dir)["train_steps"]
    run_async(config, output_dir, [])
    state = learner.read_learner_state(output_dir)
    due = learner.due_steps(0.7, 8 * LENGTH)
    assert first < state["train_steps"] and due <= state["train_steps"] < due + 3


def test_async_training_needs_a_ratio_and_a_train_fn(tmp_path):
    from wm_core.planning.planners import Random
    from wm_core.loops.train_eval import train_eval_loop

    task = PointTask(length=LENGTH)
    for train_fn, ratio in ((None, 1.0), (lambda path: None, 0.0)):
        with pytest.raises(ValueError, match="async_training needs"):
            train_eval_loop(
                task, Random(task), Random(task), train_fn, episodes_dir=str(tmp_path / "e"),
                model_dir=str(tmp_path / "m"), async_training=True, train_steps_per_env_step=ratio,
            )


def fake_train_fn(steps_per_call: int, counter: list[int]):
    def train_fn(data_path):
        for _ in range(steps_per_call):
            counter[0] += 1
            active_hooks().train_step(counter[0], {"loss": 0.0})
    return train_fn


def test_learn_trains_what_the_episodes_are_due_and_stops_when_idle(tmp_path):
    from wm_core.planning import planners
    from wm_core.rollout import simulate

    task = PointTask(length=LENGTH)
    episodes, _, _ = simulate.simulate(task, planners.Random(task, seed=0), 3, seed=0)
    train_dir = str(tmp_path / "train")
    npz.save_dictionaries(episodes, train_dir)
    counter = [0]
    state = learner.learn(fake_train_fn(4, counter), train_dir, str(tmp_path), 0.5,
                          stop_when_idle=True)
    assert counter[0] == state["train_steps"] == 8  # due: ceil(0.5 * 15) = 8, two calls of 4
    assert state["env_steps"] == 15 and state["steps_per_call"] == 4
    assert learner.read_learner_state(str(tmp_path)) == state
    assert learner.wait_for_learner(str(tmp_path), train_dir, 0.5, timeout_s=1) < 1
    with pytest.raises(TimeoutError):
        learner.wait_for_learner(str(tmp_path), train_dir, 2.0, timeout_s=0.3)


def test_a_train_fn_that_reports_no_steps_is_refused(tmp_path):
    from wm_core.planning import planners
    from wm_core.rollout import simulate

    task = PointTask(length=LENGTH)
    episodes, _, _ = simulate.simulate(task, planners.Random(task, seed=0), 1, seed=0)
    npz.save_dictionaries(episodes, str(tmp_path / "train"))
    with pytest.raises(RuntimeError, match="reported no step"):
        learner.learn(lambda path: None, str(tmp_path / "train"), str(tmp_path), 1.0, stop_when_idle=True)
    with pytest.raises(learner.LearnerFailed, match="reported no step"):
        learner.wait_for_learner(str(tmp_path), str(tmp_path / "train"), 1.0)


def test_wm_run_learn_says_what_is_missing(tmp_path, capsys):
    import signal

    from wm_core import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["learn", "--output_dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "learn needs --output_dir and --train_steps_per_env_step" in capsys.readouterr().err
    handler = signal.getsignal(signal.SIGTERM)
    try:
        assert cli.main(["learn", "--output_dir", str(tmp_path), "--train_steps_per_env_step", "1"]) == 2
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert "operative_config.gin does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_planet_trains_in_its_own_process_beside_collection(tmp_path, users_shell_environment):
    """The tiny PlaNet config through wm-run, asynchronous."""
    import subprocess
    import sys

    pytest.importorskip("wm_planet")
    output_dir = str(tmp_path / "run")
    config = os.path.join(os.path.dirname(__file__), "..", "configs", "tests", "planet_tiny.gin")
    completed = subprocess.run(
        [sys.executable, "-m", "wm_core.cli", "--gin_file", config, "--output_dir", output_dir,
         "--gin_param", "wm.train_eval_loop.async_training = True",
         "--gin_param", "wm.train_eval_loop.train_steps_per_env_step = 0.2",
         "--gin_param", "wm.train_eval_loop.seed_episodes = 1"],
        capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    # quiet by default, the learner process too: no TensorFlow start-up lines
    assert not quiet.START_UP_LINES.search(completed.stdout + completed.stderr), completed.stderr[-3000:]
    state = learner.read_learner_state(output_dir)
    # 3 train episodes of 10 steps: 0.2 x 30 = 6 steps, in calls of 2
    assert (state["train_steps"], state["env_steps"], state["steps_per_call"]) == (6, 30, 2)
    assert os.path.basename(latest_checkpoint_name(os.path.join(output_dir, "model"))) == "ckpt-6"


def latest_checkpoint_name(model_dir: str) -> str:
    with open(os.path.join(model_dir, "checkpoint")) as file:
        return file.readline().split('"')[1]


def test_a_learner_that_recorded_an_error_may_report_it_before_the_run_stops_it(tmp_path):
    # the run reads the error from the state file while the learner is still printing it:
    # stopping the run must not SIGTERM the learner mid-report (seen in CI: its line was lost)
    import subprocess
    import sys

    from wm_core.loops.train_eval import _stop_learner

    learner._write_state(str(tmp_path), {"train_steps": 3, "error": "Boom: at step 5"})
    reporting = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.0)"])
    _stop_learner(reporting, str(tmp_path), grace_s=30.0)
    assert reporting.returncode == 0  # exited by itself, not -SIGTERM

    learner._write_state(str(tmp_path), {"train_steps": 3, "error": None})
    working = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    _stop_learner(working, str(tmp_path), grace_s=30.0)
    assert working.returncode == -15  # a healthy learner is stopped at once


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to split")
def test_learner_cpus_gives_the_learner_and_collection_their_own_cpus(config, tmp_path):
    cpus = os.sched_getaffinity(0)
    output_dir = str(tmp_path / "run")
    watch = LearnerWatch(output_dir, 0.7)
    run_async(config, output_dir, ["wm.train_eval_loop.learner_cpus = 1"], watch)
    with open(os.path.join(output_dir, "model", "cpus.json")) as file:
        assert json.load(file) == [max(cpus)]
    assert watch.collection_cpus and all(seen == cpus - {max(cpus)} for seen in watch.collection_cpus)
    assert os.sched_getaffinity(0) == cpus  # given back when the run ends


def test_learner_cpus_needs_async_training_and_a_cpu_left_for_collection(config, tmp_path):
    too_many = len(os.sched_getaffinity(0))
    for params, message in (
        (["wm.train_eval_loop.async_training = False", "wm.train_eval_loop.learner_cpus = 1"],
         "needs async_training"),
        ([f"wm.train_eval_loop.learner_cpus = {too_many}"], "must leave collection at least one"),
    ):
        with pytest.raises(ValueError, match=message):
            run_async(config, str(tmp_path / "run"), params)
