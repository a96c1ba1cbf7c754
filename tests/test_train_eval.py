from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from wm_core import hookimpl
from wm_core.data import npz
from wm_core.api.hooks import Hooks, create_plugin_manager
from wm_core.planning.planners import Random
from wm_core.tasks.toy import PointTask
from wm_core.loops.train_eval import train_eval_loop

LENGTH = 5


class IterationRecorder:
    def __init__(self):
        self.iterations = []
        self.configured = []
        self.ended = []

    @hookimpl
    def wm_run_configured(self, output_dir, operative_config):
        self.configured.append(output_dir)

    @hookimpl
    def wm_iteration_end(self, phase, global_step, episodes, predictions, scalars):
        self.iterations.append((phase, global_step, len(episodes), sorted(scalars)))

    @hookimpl
    def wm_run_end(self, output_dir):
        self.ended.append(output_dir)


def run_loop(tmp_path, recorder=None, train_calls=None, **overrides):
    task = PointTask(length=LENGTH)
    planner = Random(task, seed=0)
    arguments = dict(
        task=task, train_planner=planner, eval_planner=planner,
        train_fn=(lambda path: train_calls.append(path)) if train_calls is not None else None,
        num_train_episodes_per_iteration=2, eval_every_n_iterations=2, num_iterations=3,
        episodes_dir=str(tmp_path / "episodes"), model_dir=str(tmp_path / "model"),
        hooks=Hooks(create_plugin_manager(load_entry_points=False, plugins=(recorder,) if recorder else ())),
    )
    arguments.update(overrides)
    return train_eval_loop(**arguments)


def saved(tmp_path, phase):
    return npz.episode_paths(str(tmp_path / "episodes" / phase))


def test_loop_collects_trains_and_evaluates_on_schedule(tmp_path):
    recorder, train_calls = IterationRecorder(), []
    results = run_loop(tmp_path, recorder, train_calls)
    assert len(saved(tmp_path, "train")) == 6 and len(saved(tmp_path, "eval")) == 1
    assert train_calls == [str(tmp_path / "episodes" / "train")] * 3
    phases = [(phase, step, count) for phase, step, count, _ in recorder.iterations]
    assert phases == [("train", 10, 2), ("train", 20, 2), ("eval", 20, 1), ("train", 30, 2)]
    assert "train_seconds" in recorder.iterations[0][3] and "score" in recorder.iterations[0][3]
    assert recorder.configured == [str(tmp_path)] and recorder.ended == [str(tmp_path)]
    assert json.loads((tmp_path / "loop_state.json").read_text()) == {"completed_iterations": 3}
    assert (tmp_path / "operative_config.gin").exists()
    assert len(results["train_scores"]) == 3 and len(results["eval_scores"]) == 1
    episodes = npz.load_dictionaries(str(tmp_path / "episodes" / "train"))
    assert results["train_scores"][0] == pytest.approx(np.mean([e["reward"].sum() for e in episodes[:2]]))


def test_one_environment_serves_all_episodes_of_a_phase(tmp_path):
    class CountingTask(PointTask):
        created = 0

        def create_env(self):
            CountingTask.created += 1
            return super().create_env()

    task = CountingTask(length=LENGTH)
    planner = Random(task, seed=0)  # reads the action space: one env, once
    CountingTask.created = 0
    train_eval_loop(task, planner, planner, None, num_train_episodes_per_iteration=3,
                    eval_every_n_iterations=1, num_eval_episodes=2, num_iterations=2,
                    episodes_dir=str(tmp_path / "episodes"), model_dir=str(tmp_path / "model"),
                    hooks=Hooks(create_plugin_manager(load_entry_points=False)))
    assert len(saved(tmp_path, "train")) == 6 and len(saved(tmp_path, "eval")) == 4
    assert CountingTask.created == 4  # one per phase per iteration, not one per episode


def test_finished_run_does_nothing_and_a_longer_run_continues(tmp_path):
    run_loop(tmp_path)
    calls = []
    run_loop(tmp_path, train_calls=calls)
    assert calls == [] and len(saved(tmp_path, "train")) == 6
    run_loop(tmp_path, train_calls=calls, num_iterations=4)
    assert len(calls) == 1
    assert len(saved(tmp_path, "train")) == 8 and len(saved(tmp_path, "eval")) == 2


def test_offline_mode_trains_and_evaluates_without_collecting(tmp_path):
    run_loop(tmp_path, num_iterations=1)
    before = saved(tmp_path, "train")
    calls = []
    run_loop(tmp_path / "offline", train_calls=calls, offline=True, num_iterations=2,
             episodes_dir=str(tmp_path / "episodes"), output_dir=str(tmp_path / "offline"))
    assert saved(tmp_path, "train") == before and len(calls) == 2
    assert len(saved(tmp_path, "eval")) == 1


def test_offline_mode_without_episodes_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="offline mode needs episodes in .*train"):
        run_loop(tmp_path, offline=True)


def test_invalid_schedule_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="eval_every_n_iterations must be an integer >= 1, got 0"):
        run_loop(tmp_path, eval_every_n_iterations=0)


RUN_SCRIPT = textwrap.dedent('''
    import os, sys, time
    from wm_core.planning.planners import Random
    from wm_core.tasks.toy import PointTask
    from wm_core.loops.train_eval import train_eval_loop

    output, hang_at = sys.argv[1], sys.argv[2]
    task = PointTask(length=5)

    def hang(where):
        if hang_at == where:
            open(os.path.join(output, "hanging"), "w").close()
            time.sleep(600)

    class HangingRandom(Random):
        def reset(self, **kwargs):
            super().reset(**kwargs)
            if kwargs["episode_index"] == 3:
                hang("collect")

    def train_fn(path):
        if len(os.listdir(path)) >= 4:
            hang("train")

    train_eval_loop(task, HangingRandom(task, seed=0), Random(task, seed=1), train_fn,
                    num_train_episodes_per_iteration=2, eval_every_n_iterations=1, num_iterations=3,
                    episodes_dir=os.path.join(output, "episodes"), model_dir=os.path.join(output, "model"))
''')


def kill_when_hanging(command: list[str], output) -> None:
    """Run ``command`` and SIGKILL it once it has written ``output / "hanging"``."""
    process = subprocess.Popen(command)
    deadline = time.monotonic() + 120
    while not (output / "hanging").exists():
        assert process.poll() is None and time.monotonic() < deadline, "run ended before the kill"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("hang_at", ["collect", "train"])
def test_killed_run_resumes_without_losing_or_duplicating_episodes(tmp_path, hang_at):
    script = tmp_path / "run.py"
    script.write_text(RUN_SCRIPT)
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    subprocess.run([sys.executable, str(script), str(reference), "never"], check=True, timeout=120)
    killed.mkdir()
    kill_when_hanging([sys.executable, str(script), str(killed), hang_at], killed)
    subprocess.run([sys.executable, str(script), str(killed), "never"], check=True, timeout=120)
    for phase in ("train", "eval"):
        expected = npz.load_dictionaries(str(reference / "episodes" / phase))
        resumed = npz.load_dictionaries(str(killed / "episodes" / phase))
        assert len(resumed) == len(expected) == (6 if phase == "train" else 3)
        # Same environment and planner seeds per episode index: the same
        # start states and the same actions, in order.
        for key in ("state", "action"):
            np.testing.assert_array_equal(
                [episode[key] for episode in expected], [episode[key] for episode in resumed]
            )


class CountingPlanner(Random):
    """A random planner that counts the decisions asked of it."""

    def __init__(self, task):
        super().__init__(task, seed=1)
        self.decisions = 0

    def __call__(self, prev_image, prev_action, prev_reward):
        self.decisions += 1
        return super().__call__(prev_image, prev_action, prev_reward)


def test_seed_episodes_are_random_and_come_before_the_first_training(tmp_path):
    task = PointTask(length=LENGTH)
    planner = CountingPlanner(task)
    files_at_training = []
    run_loop(tmp_path, train_planner=planner, eval_planner=planner, seed_episodes=3,
             num_iterations=2, eval_every_n_iterations=5,
             train_fn=lambda path: files_at_training.append(len(npz.episode_paths(path))))
    assert files_at_training == [3 + 2, 3 + 4]
    assert planner.decisions == 4 * LENGTH  # the 3 seed episodes never asked the planner
    seeds = [int(npz.load_episode(path)["seed"][0]) for path in saved(tmp_path, "train")]
    assert seeds == list(range(7))


def test_seed_episodes_are_not_collected_again_on_resume(tmp_path):
    run_loop(tmp_path, seed_episodes=2, num_iterations=1)
    run_loop(tmp_path, seed_episodes=2, num_iterations=2)
    assert len(saved(tmp_path, "train")) == 2 + 2 * 2


def test_negative_seed_episodes_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="seed_episodes"):
        run_loop(tmp_path, seed_episodes=-1)


def test_scores_of_seed_episodes_and_last_evaluation_are_reported_from_disk(tmp_path):
    run_loop(tmp_path, seed_episodes=2, num_iterations=2, eval_every_n_iterations=1,
             num_eval_episodes=3)
    results = run_loop(tmp_path, seed_episodes=2, num_iterations=2, eval_every_n_iterations=1,
                       num_eval_episodes=3)  # resumed: nothing left to run
    returns = {phase: [npz.load_episode(p)["reward"].sum() for p in saved(tmp_path, phase)]
               for phase in ("train", "eval")}
    assert results["eval_scores"] == []
    assert results["random_score"] == pytest.approx(np.mean(returns["train"][:2]))
    assert results["final_eval_score"] == pytest.approx(np.mean(returns["eval"][3:]))
    assert len(returns["eval"]) == 6


def test_no_seed_episodes_and_no_evaluation_report_none(tmp_path):
    results = run_loop(tmp_path, num_iterations=1, eval_every_n_iterations=2)
    assert results["random_score"] is None and results["final_eval_score"] is None


def test_planning_quality_of_the_eval_planner_is_reported_after_each_evaluation(tmp_path):
    from wm_core.models.oracle import OracleWorldModel
    from wm_core.planning.planners import ModelPlanner
    from wm_core.planning import objectives

    task = PointTask(length=LENGTH)
    oracle = OracleWorldModel(task)

    class FirstProposal(ModelPlanner):
        horizon = 3

        def plan(self, state):
            return np.zeros(1, np.float32), None

    planner = FirstProposal(task, oracle.predict_fn, oracle.observe_fn, oracle.reset_fn,
                            objectives.TotalReward())
    recorder = IterationRecorder()
    run_loop(tmp_path, recorder, train_planner=planner, eval_planner=planner, num_iterations=2,
             planning_quality_states=3)
    (eval_scalars,) = [names for phase, _, _, names in recorder.iterations if phase == "eval"]
    assert "planning_quality/rank_correlation" in eval_scalars
    assert not [name for name in eval_scalars if name.endswith("_h1")]


# --------------------------------------------------------------------------- several environments

VECTOR_TASKS = textwrap.dedent('''
    """A point task whose episode of seed s lasts 2 + (7 * s) % 5 steps, so
    episodes in several environments end out of order.  Every env writes its
    process id to <marker_dir>/pid-<pid> (the test checks none outlives a run)."""
    import os
    from wm_core.tasks.toy import PointEnv, PointTask

    class VariableEnv(PointEnv):
        def __init__(self, marker_dir, **kwargs):
            super().__init__(**kwargs)
            open(os.path.join(marker_dir, f"pid-{os.getpid()}"), "w").close()

        def reset(self, *, seed=None, options=None):
            self.time_limit = 2 + (7 * seed) % 5
            return super().reset(seed=seed, options=options)

    class VariableTask(PointTask):
        def __init__(self, marker_dir):
            super().__init__(length=50, size=16)
            self.marker_dir = marker_dir

        def create_env(self):
            return VariableEnv(self.marker_dir, **self.kwargs)
''')

VECTOR_RUN_SCRIPT = textwrap.dedent('''
    import os, sys, time
    from wm_core import hookimpl
    from wm_core.api.hooks import Hooks, create_plugin_manager
    from wm_core.planning.planners import Random
    from wm_core.loops.train_eval import train_eval_loop
    from vector_tasks import VariableTask

    output, num_envs, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(os.path.join(output, "markers"), exist_ok=True)
    task = VariableTask(os.path.join(output, "markers"))

    class SlowRandom(Random):
        """Random actions, a little slowly (so random kills land mid-run); in
        mode 'hang' it hangs at the last decision of train episode 2."""

        def reset(self, **kwargs):
            super().reset(**kwargs)
            self.episode, self.decisions = kwargs["episode_index"], 0

        def __call__(self, *args):
            self.decisions += 1
            if mode == "hang" and self.episode == 2 and self.decisions == 6:
                open(os.path.join(output, "hanging"), "w").close()
                time.sleep(600)
            time.sleep(0.01)
            return super().__call__(*args)

    class EndLog:
        @hookimpl
        def wm_episode_end(self, phase, episode_index):
            with open(os.path.join(output, "ended"), "a") as log:
                log.write(f"{phase} {episode_index}\\n")

    train_eval_loop(task, SlowRandom(task, seed=0), Random(task, seed=1), lambda path: time.sleep(0.1),
                    num_train_episodes_per_iteration=4, eval_every_n_iterations=2, num_eval_episodes=3,
                    num_iterations=4, seed_episodes=0 if mode.startswith("hang") else 3, num_envs=num_envs,
                    episodes_dir=os.path.join(output, "episodes"), model_dir=os.path.join(output, "model"),
                    hooks=Hooks(create_plugin_manager(load_entry_points=False, plugins=(EndLog(),))))
''')


def write_vector_run(tmp_path):
    (tmp_path / "vector_tasks.py").write_text(VECTOR_TASKS)
    script = tmp_path / "run.py"
    script.write_text(VECTOR_RUN_SCRIPT)
    return script


def assert_episodes_equal_by_seed(reference, resumed, phase):
    expected = npz.load_dictionaries(str(reference / "episodes" / phase))
    actual = npz.load_dictionaries(str(resumed / "episodes" / phase))
    seeds = [int(episode["seed"][0]) for episode in actual]
    assert seeds == [int(episode["seed"][0]) for episode in expected]  # none lost or duplicated
    assert seeds == sorted(seeds)  # saved in episode order
    for want, got in zip(expected, actual):
        assert sorted(want) == sorted(got)
        for key in want:
            np.testing.assert_array_equal(want[key], got[key], err_msg=f"{phase} seed {got['seed'][0]} {key}")


def assert_no_worker_outlives(output):
    pids = [int(path.name[4:]) for path in (output / "markers").glob("pid-*")]
    assert len(pids) > 1  # the workers wrote theirs
    deadline = time.monotonic() + 20
    for pid in pids:
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            assert time.monotonic() < deadline, f"environment worker {pid} outlived its run"
            time.sleep(0.05)


def test_killed_four_environment_run_drops_episodes_that_ended_before_an_earlier_one(tmp_path):
    """Episode 3 ends before episode 2; killed then, the run has saved 0 and 1
    only, and the resumed run collects 2 and 3 to the same arrays."""
    script = write_vector_run(tmp_path)
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    subprocess.run([sys.executable, str(script), str(reference), "1", "hang-free"], check=True, timeout=120)
    killed.mkdir()
    kill_when_hanging([sys.executable, str(script), str(killed), "4", "hang"], killed)
    ended = (killed / "ended").read_text().split("\n")
    assert "train 3" in ended and "train 2" not in ended  # 3 ended before 2...
    assert len(npz.episode_paths(str(killed / "episodes" / "train"))) == 2  # ...and was not saved
    assert_no_worker_outlives(killed)
    subprocess.run([sys.executable, str(script), str(killed), "4", "hang-free"], check=True, timeout=120)
    for phase in ("train", "eval"):
        assert_episodes_equal_by_seed(reference, killed, phase)


def test_four_environment_run_killed_at_random_moments_equals_an_uninterrupted_one(tmp_path):
    script = write_vector_run(tmp_path)
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    start = time.monotonic()
    subprocess.run([sys.executable, str(script), str(reference), "1", "run"], check=True, timeout=120)
    duration = time.monotonic() - start
    rng = np.random.default_rng(0)
    killed_mid_run = 0
    for _ in range(5):
        process = subprocess.Popen([sys.executable, str(script), str(killed), "4", "run"])
        time.sleep(rng.uniform(0.5, duration))
        if process.poll() is None:
            killed_mid_run += 1
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    subprocess.run([sys.executable, str(script), str(killed), "4", "run"], check=True, timeout=120)
    assert killed_mid_run >= 3
    assert json.loads((killed / "loop_state.json").read_text()) == {"completed_iterations": 4}
    for phase in ("train", "eval"):
        assert_episodes_equal_by_seed(reference, killed, phase)
        assert not [name for name in os.listdir(killed / "episodes" / phase) if name.startswith(".")]
    assert_no_worker_outlives(killed)
