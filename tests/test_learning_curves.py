"""benchmarks/learning_curves.py: the table it gathers from runs' metrics (no run started)."""

from __future__ import annotations

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import learning_curves  # noqa: E402


def write_run(path, random_scores, evals):
    """A run folder whose metrics.jsonl holds random seed episodes, then (env_steps, wall_s,
    score) evaluations with their planning quality."""
    os.makedirs(path)
    rows = [dict(phase="train", scores=random_scores, score=sum(random_scores) / max(len(random_scores), 1),
                 env_steps=10 * len(random_scores))]
    for steps, wall, score in evals:
        rows.append(dict(phase="train", score=0.0, env_steps=steps, model_step=1))  # a learned episode
        rows.append({"phase": "eval", "score": score, "env_steps": steps, "wall_s": wall,
                     "planning_quality/rank_correlation": 0.5, "planning_quality/normalized_regret": 0.25})
    with open(os.path.join(path, "metrics.jsonl"), "w") as file:
        file.writelines(json.dumps(row) + "\n" for row in rows)


def test_gather_reads_every_run_with_one_random_line_per_seed(tmp_path):
    # Two models on seed 0 start with the same random episodes, tdmpc with more: they count
    # once in the random line, episode by episode.
    write_run(tmp_path / "swingup" / "planet_seed0", [100.0, 120.0], [(1000, 60.0, 150.0)])
    write_run(tmp_path / "swingup" / "tdmpc_seed0", [100.0, 120.0, 60.0],
              [(1000, 30.0, 200.0), (1500, 50.0, 250.0)])
    write_run(tmp_path / "swingup" / "tdmpc_seed1", [80.0], [(1000, 40.0, 90.0)])
    os.makedirs(tmp_path / "swingup" / "oracle_seed0")
    (tmp_path / "swingup" / "oracle_seed0" / "metrics.jsonl").write_text(
        json.dumps(dict(phase="eval", score=800.0, env_steps=125)) + "\n")
    os.makedirs(tmp_path / "swingup" / "logs")  # not a run: skipped

    rows = learning_curves.gather(str(tmp_path))

    random = [(row["seed"], row["score"]) for row in rows if row["line"] == "random"]
    assert random == [(0, 100.0), (0, 120.0), (0, 60.0), (1, 80.0)]
    tdmpc = [(row["seed"], row["env_steps"], row["wall_seconds"], row["score"]) for row in rows
             if row["line"] == "tdmpc"]
    # env_steps are agent steps x the action repeat (8).
    assert tdmpc == [(0, 8000, 30.0, 200.0), (0, 12000, 50.0, 250.0), (1, 8000, 40.0, 90.0)]
    planet = [row for row in rows if row["line"] == "planet"]
    assert [(row["score"], row["rank_correlation"], row["normalized_regret"]) for row in planet] == [
        (150.0, 0.5, 0.25)]
    assert [(row["seed"], row["score"]) for row in rows if row["line"] == "oracle"] == [(0, 800.0)]
    published = [(row["env_steps"], row["score"]) for row in rows if row["line"] == "published"]
    assert published == [(100_000, 297.0), (1_000_000, 821.0)]
    assert rows[-2:] == [row for row in rows if row["line"] == "published"]


@pytest.mark.parametrize("label", ["a_seed1", "a/b"])
def test_a_label_that_would_break_the_run_folders_is_refused(label, capsys):
    with pytest.raises(SystemExit):
        learning_curves.main(["--label", label, "--output", "/nonexistent"])
    assert "--label" in capsys.readouterr().err
