"""Planning-quality evaluation against ground truth (wm_core.evaluation, ``wm-run evaluate``)."""

from __future__ import annotations

import csv
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys

import gymnasium
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from wm_core import cli
from wm_core.api import spaces
from wm_core.data import npz
from wm_core.api.contracts import WorldModel
from wm_core.evaluation import (
    EvaluationError,
    WorldModelFns,
    average_ranks,
    choose_states,
    draw_sequences,
    evaluate_planning,
    find_world_model,
    regret,
    spearman,
    write_csv,
    write_summaries,
)
from wm_core.planning.objectives import DiscountedReward
from wm_core.models.oracle import OracleWorldModel
from wm_core.planning.planners import GaussianRandomNoise, ModelPlanner, Random
from wm_core.rollout.simulate import simulate
from wm_core.tasks.toy import PointEnv, PointTask
from wm_core.loops.train_eval import EVAL_SEED_OFFSET

ROOT = pathlib.Path(__file__).resolve().parents[1]
LENGTH, HORIZON = 8, 3


# --------------------------------------------------------------------------- helpers


def save_random_episodes(task, directory, count=2, seed=10):
    episodes, _, _ = simulate(task, Random(task, seed=0), num_episodes=count, seed=seed)
    npz.save_dictionaries(episodes, str(directory))
    return episodes


@pytest.fixture(params=[False, True], ids=["box", "discrete"])
def task(request):
    return PointTask(discrete=request.param, length=LENGTH)


@pytest.fixture
def episodes_dir(task, tmp_path):
    save_random_episodes(task, tmp_path / "episodes")
    return str(tmp_path / "episodes")


class Distorted(WorldModel):
    """The oracle, with its predictions passed through ``distort(predictions, state)``."""

    def __init__(self, task, distort, render=False):
        self.oracle = OracleWorldModel(task, render=render)
        self.distort = distort

    def reset(self, **kwargs):
        return {"oracle": self.oracle.reset(**kwargs), "last_reward": np.float32(0)}

    def observe(self, frames, actions, rewards, state):
        return {"oracle": self.oracle.observe(frames, actions, rewards, state["oracle"]),
                "last_reward": np.float32(rewards[-1])}

    def predict(self, future_actions, state):
        return self.distort(self.oracle.predict(future_actions, state["oracle"]), state)


def negated(predictions, state):
    return {**predictions, "reward": -predictions["reward"]}


def one_step_late(predictions, state):
    """Rewards one step late: step j predicts the reward of step j - 1 (step 0: the last observed)."""
    reward = predictions["reward"]
    late = np.concatenate([np.full((len(reward), 1), state["last_reward"], np.float32), reward[:, :-1]], 1)
    return {"reward": late}


def constant(predictions, state):
    return {"reward": np.zeros_like(predictions["reward"])}


def black_frames(predictions, state):
    proposals, horizon = predictions["reward"].shape
    return {**predictions, "image": np.zeros((proposals, horizon, 64, 64, 3), np.uint8)}


def evaluate(task, model, episodes_dir, **kwargs):
    settings = dict(num_states=6, num_sequences=8, horizon=HORIZON, seed=0)
    return evaluate_planning(task, model, episodes_dir, **{**settings, **kwargs})


def episode_of(episodes_dir, state):
    return npz.load_episode(os.path.join(episodes_dir, state.episode))


# --------------------------------------------------------------------------- ranking figures by hand


def test_average_ranks_share_the_mean_rank_of_ties():
    np.testing.assert_array_equal(average_ranks([10, 30, 30, 20, 30]), [1, 4, 4, 2, 4])
    np.testing.assert_array_equal(average_ranks([2.0, 1.0]), [2, 1])
    np.testing.assert_array_equal(average_ranks([7, 7, 7]), [2, 2, 2])


def test_spearman_by_hand():
    # Ranks of y: [1, 2, 3.5, 5, 3.5]; centred dot product 8, norms^2 10 and 9.5.
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95), abs=1e-12)
    # Ties on one side: ranks [1.5, 1.5, 3.5, 3.5] against [1, 2, 3, 4].
    assert spearman([1, 1, 2, 2], [1, 2, 3, 4]) == pytest.approx(4 / math.sqrt(20), abs=1e-12)
    assert spearman([1, 2, 3], [1, 10, 100]) == pytest.approx(1.0)  # monotone, not linear
    assert spearman([1, 2, 3], [3, 2, -50]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError):
        spearman([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        spearman([1, np.nan], [1, 2])


def test_regret_by_hand():
    assert regret([0.1, 0.9, 0.5], [3.0, 1.0, 2.0]) == pytest.approx(2.0)
    assert regret([0.9, 0.1, 0.5], [3.0, 1.0, 2.0]) == 0.0
    # Tied favourites: the mean of their true values, (3 + 1) / 2.
    assert regret([1.0, 1.0, 0.0], [3.0, 1.0, 2.0]) == pytest.approx(1.0)


# --------------------------------------------------------------------------- states and sequences


def test_states_are_drawn_without_replacement_where_the_horizon_fits():
    rng = np.random.default_rng(0)
    assert choose_states([3, 1, 5], 10, 2, rng) == [(0, 0), (0, 1), (2, 0), (2, 1), (2, 2), (2, 3)]
    states = choose_states([50, 50], 20, 4, np.random.default_rng(1))
    assert len(set(states)) == 20 and states == sorted(states)
    assert all(0 <= row <= 46 for _, row in states)
    assert states == choose_states([50, 50], 20, 4, np.random.default_rng(1))
    assert states != choose_states([50, 50], 20, 4, np.random.default_rng(2))


def test_sequences_start_with_the_recorded_one_and_stay_in_the_action_space(task):
    space = task.action_space
    recorded = spaces.sample_action_vectors(space, np.random.default_rng(0), (5,))
    first = draw_sequences(space, recorded, 9, np.random.default_rng(3))
    assert first.shape == (9, 5, recorded.shape[1]) and first.dtype == np.float32
    np.testing.assert_array_equal(first[0], recorded)
    np.testing.assert_array_equal(first, draw_sequences(space, recorded, 9, np.random.default_rng(3)))
    assert not np.array_equal(first, draw_sequences(space, recorded, 9, np.random.default_rng(4)))
    if task.kwargs["discrete"]:
        assert set(np.unique(first)) <= {0.0, 1.0} and (first.sum(-1) == 1).all()
    else:
        assert first.min() >= -1 and first.max() <= 1
        # The least perturbed copy (noise 1/4 of the half-range) stays closer than the uniform ones.
        deviation = np.abs(first - recorded).mean(axis=(1, 2))
        assert deviation[1] < deviation[5:].mean()


# --------------------------------------------------------------------------- models against the truth


def test_the_oracle_against_itself_is_perfect(task, episodes_dir):
    quality = evaluate(task, OracleWorldModel(task, render=True), episodes_dir)
    assert len(quality.states) == 6
    assert len({(s.episode, s.row) for s in quality.states}) == 6
    assert all(0 <= s.row <= LENGTH - HORIZON for s in quality.states)
    figures = quality.figures()
    assert np.nanmin(figures["rank_correlation"]) == pytest.approx(1.0)
    assert np.isfinite(figures["rank_correlation"]).sum() >= 5
    assert (figures["regret"] == 0).all() and (figures["chosen_true_return"] == figures["best_true_return"]).all()
    for name, values in figures.items():
        if name.startswith(("reward_", "frame_")):
            assert (values == 0).all(), name
    assert quality.has_frames and "frame_squared_error_h3" in quality.mean


def test_the_recorded_continuations_true_return_is_the_objective_of_the_episodes_rewards(task, episodes_dir):
    quality = evaluate(task, OracleWorldModel(task), episodes_dir)
    objective = DiscountedReward()
    for state in quality.states:
        rewards = episode_of(episodes_dir, state)["reward"][state.row + 1 : state.row + 1 + HORIZON]
        assert state.recorded_true_return == pytest.approx(float(objective({"reward": rewards[None]})[0]))


def test_a_model_predicting_negated_rewards_ranks_backwards_and_picks_the_worst(task, episodes_dir):
    quality = evaluate(task, Distorted(task, negated), episodes_dir)
    figures = quality.figures()
    assert quality.mean["rank_correlation"] == pytest.approx(-1.0)
    assert quality.mean["regret"] > 0.1
    assert np.nanmin(figures["normalized_regret"]) == pytest.approx(1.0)  # always the worst sequence
    for state in quality.states:  # |-r - r| = 2 |r|, r the episode's reward k steps ahead
        rewards = episode_of(episodes_dir, state)["reward"]
        for k in range(1, HORIZON + 1):
            expected = 2 * abs(float(rewards[state.row + k]))
            assert state.reward_abs_error[k - 1] == pytest.approx(expected, rel=1e-6)
            assert state.reward_squared_error[k - 1] == pytest.approx(expected**2, rel=1e-6)


def test_reward_errors_are_aligned_with_the_episode_rows(task, episodes_dir):
    """A model one step late predicts, k steps ahead, the reward of row t + k - 1
    where the truth is row t + k: its errors are the episode's reward steps."""
    quality = evaluate(task, Distorted(task, one_step_late), episodes_dir, num_states=12)
    assert quality.mean["reward_abs_error_h1"] > 0
    for state in quality.states:
        rewards = episode_of(episodes_dir, state)["reward"].astype(np.float64)
        expected = np.abs(rewards[state.row : state.row + HORIZON] - rewards[state.row + 1 : state.row + 1 + HORIZON])
        np.testing.assert_allclose(state.reward_abs_error, expected, rtol=1e-6, atol=1e-7)


def test_a_constant_model_has_no_rank_information_and_regret(task, episodes_dir):
    quality = evaluate(task, Distorted(task, constant), episodes_dir)
    figures = quality.figures()
    defined = ~np.isnan(figures["normalized_regret"])
    assert (figures["rank_correlation"][defined] == 0).all()
    assert quality.mean["regret"] > 0
    # Ties are broken at random: the chosen return is the mean over sequences, below the best.
    assert (figures["chosen_true_return"] <= figures["best_true_return"]).all()


@pytest.mark.parametrize("where", ["predict_fn", "frame_predict_fn"])
def test_frame_errors_by_hand(where, tmp_path):
    """The toy frame is black with one white column: a black prediction is off
    by 1 on 64 * 3 of 64 * 64 * 3 values, a squared error of 1/64."""
    task = PointTask(length=LENGTH)
    save_random_episodes(task, tmp_path)
    model = Distorted(task, black_frames)
    if where == "frame_predict_fn":
        oracle = OracleWorldModel(task)
        model = WorldModelFns(oracle.reset_fn, oracle.observe_fn, oracle.predict_fn,
                              frame_predict_fn=lambda actions, state: black_frames(oracle.predict(actions, state), state))
    quality = evaluate(task, model, str(tmp_path))
    for k in range(1, HORIZON + 1):
        assert quality.figures()[f"frame_squared_error_h{k}"] == pytest.approx(1 / 64)
    assert "frame_squared_error_h1" not in evaluate(task, OracleWorldModel(task), str(tmp_path)).mean


def test_evaluation_is_reproducible_from_its_seed(tmp_path):
    task = PointTask(length=LENGTH)
    save_random_episodes(task, tmp_path, count=3)
    model = Distorted(task, one_step_late)
    first, again = (evaluate(task, model, str(tmp_path), seed=4).rows() for _ in range(2))
    np.testing.assert_equal(first, again)  # NaNs compare equal here
    other = evaluate(task, model, str(tmp_path), seed=5).rows()
    assert [(r["episode"], r["row"]) for r in other] != [(r["episode"], r["row"]) for r in first]


# --------------------------------------------------------------------------- seeds and restoring


def strip_seeds(directory):
    for path in npz.episode_paths(directory):
        episode = npz.load_episode(path)
        del episode["seed"]
        os.remove(path)
        npz.save_dictionaries([episode], directory)


def test_episodes_record_their_seed(tmp_path):
    task = PointTask(length=LENGTH)
    save_random_episodes(task, tmp_path, count=2, seed=10)
    seeds = [npz.load_episode(path)["seed"] for path in npz.episode_paths(str(tmp_path))]
    assert [set(s.tolist()) for s in seeds] == [{10}, {11}]
    quality = evaluate(task, OracleWorldModel(task), str(tmp_path))
    assert {state.seed for state in quality.states} <= {10, 11}


def test_episodes_without_a_seed_use_first_seed_and_are_checked_by_replay(tmp_path):
    task = PointTask(length=LENGTH)
    save_random_episodes(task, tmp_path, count=2, seed=10)
    strip_seeds(str(tmp_path))
    with pytest.raises(EvaluationError, match="does not record its environment seed"):
        evaluate(task, OracleWorldModel(task), str(tmp_path))
    quality = evaluate(task, OracleWorldModel(task), str(tmp_path), first_seed=10)
    assert quality.mean["regret"] == 0 and {s.seed for s in quality.states} <= {10, 11}
    with pytest.raises(EvaluationError, match=r"does not replay in the simulator from seed 3[: ]"):
        evaluate(task, OracleWorldModel(task), str(tmp_path), first_seed=3)


class NoSnapshotEnv(PointEnv):
    def _get_simulator_state(self):
        raise NotImplementedError("toy:no-snapshot has no simulator state to snapshot")


class PlainGymTask(PointTask):
    def create_env(self):
        return gymnasium.wrappers.TimeLimit(PointEnv(**self.kwargs), LENGTH)  # no rollout()


class NoSnapshotTask(PointTask):
    def create_env(self):
        return NoSnapshotEnv(**self.kwargs)


@pytest.mark.parametrize("task_class", [PlainGymTask, NoSnapshotTask])
def test_a_task_whose_simulator_cannot_be_restored_is_a_clear_error(task_class, tmp_path):
    save_random_episodes(PointTask(length=LENGTH), tmp_path)
    task = task_class(length=LENGTH)
    with pytest.raises(EvaluationError, match="cannot be evaluated against ground truth: its simulator cannot be restored"):
        evaluate(task, OracleWorldModel(PointTask(length=LENGTH)), str(tmp_path))


def test_episode_directory_errors_name_the_directory(tmp_path):
    task = PointTask(length=LENGTH)
    model = OracleWorldModel(task)
    with pytest.raises(EvaluationError, match=re.escape(f"{tmp_path / 'nope'} does not exist")):
        evaluate(task, model, str(tmp_path / "nope"))
    with pytest.raises(EvaluationError, match=re.escape(f"no episode files (*.npz) in {tmp_path}")):
        evaluate(task, model, str(tmp_path))
    save_random_episodes(PointTask(length=2), tmp_path)
    with pytest.raises(EvaluationError, match=re.escape(f"no episode in {tmp_path} has more than 2 steps")):
        evaluate(task, model, str(tmp_path))


def test_the_world_model_is_found_inside_exploration_wrappers():
    task = PointTask(length=LENGTH)
    oracle = OracleWorldModel(task)
    base = ModelPlanner(task, oracle.predict_fn, oracle.observe_fn, oracle.reset_fn, DiscountedReward())
    assert find_world_model(GaussianRandomNoise(task, 0.1, base_planner=base)) is base
    assert WorldModelFns.of(oracle).predict_fn == oracle.predict_fn
    with pytest.raises(EvaluationError, match="Random has no world model to evaluate"):
        find_world_model(Random(task))


# --------------------------------------------------------------------------- output


def test_csv_has_a_row_per_state_then_mean_and_median(tmp_path):
    task = PointTask(length=LENGTH)
    save_random_episodes(task, tmp_path / "episodes")
    quality = evaluate(task, Distorted(task, one_step_late), str(tmp_path / "episodes"))
    path = str(tmp_path / "out" / "evaluation" / "planning_quality.csv")
    assert write_csv(quality, path) == path
    assert os.listdir(os.path.dirname(path)) == ["planning_quality.csv"]  # no temporary file left
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["row_type"] for row in rows] == ["state"] * 6 + ["mean", "median"]
    states = rows[:6]
    assert [int(row["row"]) for row in states] == [s.row for s in quality.states]
    assert [row["episode"] for row in states] == [s.episode for s in quality.states]
    for name in ("rank_correlation", "regret", "reward_abs_error_h2"):
        values = np.array([float(row[name]) for row in states])
        assert float(rows[6][name]) == pytest.approx(np.nanmean(values))
        assert float(rows[7][name]) == pytest.approx(np.nanmedian(values))
        assert float(rows[6][name]) == pytest.approx(quality.mean[name])


def test_summaries_hold_every_defined_aggregate(tmp_path, tensorboard_reader_without_tensorflow):
    from wm_core.reporting import summaries

    task = PointTask(length=LENGTH)
    save_random_episodes(task, tmp_path / "episodes")
    quality = evaluate(task, Distorted(task, negated), str(tmp_path / "episodes"))
    summary_dir = str(tmp_path / "summaries")
    write_summaries(quality, summary_dir, global_step=42)
    summaries.close(summary_dir)
    scalars = read_scalars(summary_dir)
    assert scalars["planning_quality/rank_correlation/mean"] == [(42, pytest.approx(-1.0))]
    assert scalars["planning_quality/regret/median"] == [(42, pytest.approx(quality.median["regret"]))]
    assert len(scalars) == 2 * len(quality.mean)


def read_scalars(summary_dir) -> dict[str, list[tuple[int, float]]]:
    events = event_accumulator.EventAccumulator(str(summary_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


# --------------------------------------------------------------------------- wm-run evaluate


def wm_run(*args):
    return subprocess.run([sys.executable, "-m", "wm_core.cli", *args], capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory):
    """A tiny run of CEM with the oracle: 2 train and 2 eval episodes of 10 steps."""
    run_dir = tmp_path_factory.mktemp("oracle_run")
    result = wm_run("--gin_file", str(ROOT / "configs/tests/oracle_cem_toy.gin"), "--output_dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.fixture
def run_copy(oracle_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(oracle_run, copy)
    return copy


def read_csv(run_dir):
    with open(run_dir / "evaluation" / "planning_quality.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_wm_run_evaluate_scores_the_runs_model_on_its_eval_episodes(run_copy, tensorboard_reader_without_tensorflow):
    result = wm_run("evaluate", "--run_dir", str(run_copy), "--num_states", "5", "--num_sequences", "6")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank_correlation   mean 1  median 1" in result.stdout
    assert f"5 states of {run_copy / 'episodes' / 'eval'}" in result.stdout
    assert "horizon 5" in result.stdout  # the planner's horizon (cem.CEM.horizon = 5)
    rows = read_csv(run_copy)
    assert [row["row_type"] for row in rows] == ["state"] * 5 + ["mean", "median"]
    assert all(int(row["seed"]) >= EVAL_SEED_OFFSET for row in rows[:5])
    assert float(rows[5]["regret"]) == 0.0 and float(rows[5]["reward_abs_error_h5"]) == 0.0
    scalars = read_scalars(run_copy / "summaries" / "evaluation")
    assert scalars["planning_quality/rank_correlation/mean"] == [(20, 1.0)]  # at the train steps: 2 episodes x 10


def test_evaluate_falls_back_to_the_train_episodes_and_says_so(run_copy, capsys):
    shutil.rmtree(run_copy / "episodes" / "eval")
    assert cli.main(["evaluate", "--run_dir", str(run_copy), "--num_states", "4", "--num_sequences", "4"]) == 0
    captured = capsys.readouterr()
    assert f"no eval episodes in {run_copy / 'episodes' / 'eval'}; using the train episodes" in captured.err
    assert f"4 states of {run_copy / 'episodes' / 'train'}" in captured.out
    rows = read_csv(run_copy)
    assert all(int(row["seed"]) < EVAL_SEED_OFFSET for row in rows[:4])


def test_old_run_episodes_without_seeds_replay_with_the_loops_seeds(run_copy, capsys):
    strip_seeds(str(run_copy / "episodes" / "eval"))
    assert cli.main(["evaluate", "--run_dir", str(run_copy), "--num_states", "4", "--num_sequences", "4"]) == 0
    assert float(read_csv(run_copy)[4]["regret"]) == 0.0


def evaluate_error(args, capsys):
    code = cli.main(["evaluate", *args])
    captured = capsys.readouterr()
    assert code == 2, captured
    assert "Traceback" not in captured.err
    return captured.err


def test_evaluate_errors_name_the_directory(run_copy, tmp_path, capsys):
    missing = tmp_path / "missing"
    assert f"run directory {missing} does not exist" in evaluate_error(["--run_dir", str(missing)], capsys)
    (tmp_path / "empty").mkdir()
    err = evaluate_error(["--run_dir", str(tmp_path / "empty")], capsys)
    assert f"run directory {tmp_path / 'empty'} has no operative_config.gin" in err
    for phase in ("eval", "train"):
        shutil.rmtree(run_copy / "episodes" / phase)
    err = evaluate_error(["--run_dir", str(run_copy)], capsys)
    assert f"no episode files in {run_copy / 'episodes' / 'eval'} or {run_copy / 'episodes' / 'train'}" in err


def test_a_learned_model_without_checkpoints_is_a_clear_error(run_copy, capsys):
    """The oracle declared learned (the loop gets a train_fn); its model dir holds nothing."""
    with open(run_copy / "operative_config.gin", "a") as config:
        config.write("\ntrain_eval_loop.train_fn = @wm.train_fn()\nwm.train_fn.model = %MODEL\n")
    err = evaluate_error(["--run_dir", str(run_copy)], capsys)
    assert f"model directory {run_copy / 'model'} holds no checkpoint" in err
    (run_copy / "model" / "checkpoint").write_text("")
    assert cli.main(["evaluate", "--run_dir", str(run_copy), "--num_states", "2", "--num_sequences", "2"]) == 0


def test_a_run_without_a_world_model_is_a_clear_error(tmp_path, capsys):
    result = wm_run("--gin_file", str(ROOT / "configs/tests/random_toy.gin"), "--output_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Random has no world model to evaluate" in evaluate_error(["--run_dir", str(tmp_path)], capsys)


def test_evaluate_needs_a_run_dir_and_sane_counts(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate"])
    assert exit_info.value.code == 2 and "evaluate needs --run_dir" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", "--run_dir", "x", "--num_sequences", "1"])
    assert exit_info.value.code == 2 and "must be an integer >= 2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", "--run_dir", "x", "--seed", "-1"])
    assert exit_info.value.code == 2 and "evaluate needs --seed >= 0, got -1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        evaluate_planning(PointTask(), OracleWorldModel(PointTask()), "x", seed=-1)
