"""Learning curves of the CPU world-model configs, with random and oracle lines.

    .venv/bin/python benchmarks/learning_curves.py [--models planet tdmpc]
        [--tasks balance swingup] [--seeds 0 1 2] [--iterations N] [--oracle_episodes 1]
        [--output runs/learning] [--param 'GIN BINDING' ...] [--label NAME]

Not part of CI: a full run is hours on 2 cores.  For each task, model and
seed it runs (or resumes) ``wm-run`` on the model's CPU config (``MODELS``:
``configs/planet_cem_cartpole_<task>_cpu.gin``,
``configs/tdmpc_mppi_cartpole_<task>_cpu.gin``) with the eval planner's
planning quality recorded after every evaluation, then reads each run's
``metrics.jsonl``.  Lines:

* **planet**, **tdmpc**: the mean eval score at each evaluation, at its
  environment steps and at its wall-clock seconds since the run started
  (``wall_s`` of the metrics rows: training, evaluation and the
  planning-quality measurement, one run at a time on this machine), with its
  planning quality (rank correlation of predicted vs true returns,
  normalised regret);
* **random**: the returns of the random seed episodes, once per seed (the runs of a seed
  start with the same ones);
* **oracle**: the same CEM planning with the ground-truth simulator, for
  ``--oracle_episodes`` episodes per seed (``wm-run`` on
  ``configs/oracle_cem_cartpole_<task>_cpu.gin``);
* **published**: PlaNet's published scores where they exist (cartpole
  swing-up only; see ``PUBLISHED``).

``--param`` adds gin bindings to every model run (a variant of the configs,
e.g. a loop setting; a binding of one model's configurables needs
``--models`` naming that model alone); ``--label`` names the variant: its
runs go to ``<output>/<task>/<model>-<label>_seed<k>`` and its rows carry
``<model>-<label>`` as their line, so variants share one CSV and plot.

Writes ``<output>/learning_curves.csv`` and, with matplotlib installed
(``pip install 'wm-core[bench]'``), ``<output>/learning_curves.png``: per
task, the curves against environment steps (agent steps x action repeat 8)
and against wall-clock seconds.  Prints the processor's flags (``processor.py``).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "benchmarks")]

from processor import describe  # noqa: E402
from wm_core.ownership import child_environment  # noqa: E402
from wm_core.reporting.metrics_log import read_metrics  # noqa: E402
from wm_tf.onednn import prefer_onednn  # noqa: E402

ACTION_REPEAT = 8
#: model -> (config file for a task, the planner it plans with).
MODELS = {
    "planet": ("planet_cem_cartpole_{task}_cpu.gin", "CEM"),
    "tdmpc": ("tdmpc_mppi_cartpole_{task}_cpu.gin", "MPPI"),
}
#: (environment steps, score, source) of PlaNet on cartpole swing-up.
PUBLISHED = {
    "swingup": [
        (100_000, 297.0, "CURL (Laskin et al. 2020) table 1: PlaNet at 100k steps, 297 +- 39"),
        (1_000_000, 821.0, "PlaNet (Hafner et al. 2019) table 1: 821 after 1000 episodes"),
    ],
}
COLUMNS = ["task", "seed", "line", "env_steps", "wall_seconds", "score", "rank_correlation",
           "normalized_regret", "note"]


def wm_run(config: str, output_dir: str, seed: int, params: list[str]) -> None:
    """Run (or resume) one experiment; raise if it fails."""
    command = [os.path.join(ROOT, ".venv", "bin", "wm-run"), "--gin_file", config,
               "--output_dir", output_dir, "--seed", str(seed)]
    for param in params:
        command += ["--gin_param", param]
    print(" ".join(command), flush=True)
    # child_environment: the run ends with this script, however the script ends.
    subprocess.run(command, check=True, env=child_environment({"MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}))


def model_rows(task: str, seed: int, output_dir: str, line: str) -> list[dict]:
    """A row per random seed episode and per evaluation of one model run (``wall_seconds``
    is ``None`` for a run logged before metrics rows had ``wall_s``)."""
    rows = []
    for row in read_metrics(output_dir):
        if row["phase"] == "train" and "model_step" not in row:  # the random seed episodes
            scores = row.get("scores", [row["score"]])
            rows += [dict(line="random", env_steps=0, score=score) for score in scores]
        elif row["phase"] == "eval":
            rows.append(dict(
                line=line, env_steps=row["env_steps"] * ACTION_REPEAT, wall_seconds=row.get("wall_s"),
                score=row["score"],
                rank_correlation=row.get("planning_quality/rank_correlation"),
                normalized_regret=row.get("planning_quality/normalized_regret"),
            ))
    return [dict(task=task, seed=seed, **row) for row in rows]


def oracle_rows(task: str, seed: int, output_dir: str) -> list[dict]:
    rows = [row for row in read_metrics(output_dir) if row["phase"] == "eval"]
    return [dict(task=task, seed=seed, line="oracle", env_steps=0, score=row["score"])
            for row in rows]


def gather(output: str) -> list[dict]:
    """Rows of every run under ``output`` (``<task>/<line>_seed<k>``), so models, variants
    and earlier invocations share one table; a random row per seed episode, each seed's from
    its run with the most; the published points last."""
    rows = []
    for task in sorted(os.listdir(output)):
        if not os.path.isdir(os.path.join(output, task)):
            continue
        random_rows = {}  # seed -> the random rows of its run with the most seed episodes
        for run in sorted(os.listdir(os.path.join(output, task))):
            line, _, seed = run.rpartition("_seed")
            run_dir = os.path.join(output, task, run)
            if not (line and seed.isdigit() and os.path.isdir(run_dir)):
                continue
            if line == "oracle":
                rows += oracle_rows(task, int(seed), run_dir)
                continue
            run_rows = model_rows(task, int(seed), run_dir, line)
            random = [row for row in run_rows if row["line"] == "random"]
            if len(random) > len(random_rows.get(seed, [])):
                random_rows[seed] = random
            rows += [row for row in run_rows if row["line"] != "random"]
        rows += [row for seed in sorted(random_rows, key=int) for row in random_rows[seed]]
        rows += [dict(task=task, seed="", line="published", env_steps=steps, score=score, note=note)
                 for steps, score, note in PUBLISHED.get(task, [])]
    return rows


def plot(rows: list[dict], path: str) -> bool:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed (pip install 'wm-core[bench]'): no PNG written")
        return False
    matplotlib.use("Agg")
    from matplotlib import pyplot

    tasks = sorted({row["task"] for row in rows})
    figure, axes = pyplot.subplots(len(tasks), 2, figsize=(12, 4 * len(tasks)), squeeze=False)
    for (steps_axis, wall_axis), task in zip(axes, tasks):
        mine = [row for row in rows if row["task"] == task]
        curves = sorted({(row["line"], row["seed"]) for row in mine if "rank_correlation" in row})
        for line, seed in curves:
            curve = [row for row in mine if (row["line"], row["seed"]) == (line, seed)]
            label = f"{line} + {MODELS.get(line.partition('-')[0], ('', 'planner'))[1]}, seed {seed}"
            steps_axis.plot([r["env_steps"] for r in curve], [r["score"] for r in curve], "o-", label=label)
            timed = [r for r in curve if r["wall_seconds"] is not None]
            wall_axis.plot([r["wall_seconds"] for r in timed], [r["score"] for r in timed], "o-", label=label)
        for line, colour in (("random", "k"), ("oracle", "g")):
            scores = [row["score"] for row in mine if row["line"] == line]
            if scores:
                for axis in (steps_axis, wall_axis):
                    axis.axhline(sum(scores) / len(scores), color=colour, linestyle="--",
                                 label=f"{line} (mean of {len(scores)})")
        published = PUBLISHED.get(task, [])
        for steps, score, _ in published:
            steps_axis.plot([steps], [score], "r*", markersize=12)
        # The steps the runs reached, and the first published point (later ones lie off the axis).
        reached = [row["env_steps"] for row in mine if "rank_correlation" in row]
        reached += [steps for steps, _, _ in published[:1]]
        if reached:
            steps_axis.set_xlim(0, 1.05 * max(reached))
        steps_axis.set(title=f"cartpole-{task}", xlabel="environment steps", ylabel="eval return")
        wall_axis.set(title=f"cartpole-{task}", xlabel="wall-clock seconds since the run started",
                      ylabel="eval return")
        steps_axis.legend(fontsize=7)
        wall_axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--tasks", nargs="+", default=["balance", "swingup"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, help="override num_iterations")
    parser.add_argument("--oracle_episodes", type=int, default=1)
    parser.add_argument("--planning_quality_states", type=int, default=20)
    parser.add_argument("--param", action="append", default=[], help="a gin binding for every model run")
    parser.add_argument("--label", default="", help="the variant's name (run folders, CSV lines)")
    parser.add_argument("--output", default=os.path.join(ROOT, "runs", "learning"))
    args = parser.parse_args(argv)
    if "_seed" in args.label or "/" in args.label:
        parser.error(f"--label {args.label!r}: a name without '_seed' or '/', please")
    prefer_onednn()  # what the runs' plugins set: their kernels, in the printed flags
    print(describe(), flush=True)
    params = [f"wm.train_eval_loop.planning_quality_states = {args.planning_quality_states}"]
    if args.iterations:
        params.append(f"wm.train_eval_loop.num_iterations = {args.iterations}")
    for task in args.tasks:
        for seed in args.seeds:
            for model in args.models:
                line = f"{model}-{args.label}" if args.label else model
                wm_run(os.path.join(ROOT, "configs", MODELS[model][0].format(task=task)),
                       os.path.join(args.output, task, f"{line}_seed{seed}"), seed,
                       params + args.param)
            if args.oracle_episodes:
                wm_run(os.path.join(ROOT, "configs", f"oracle_cem_cartpole_{task}_cpu.gin"),
                       os.path.join(args.output, task, f"oracle_seed{seed}"), seed,
                       [f"wm.train_eval_loop.num_eval_episodes = {args.oracle_episodes}"])
    rows = gather(args.output)
    csv_path = os.path.join(args.output, "learning_curves.csv")
    with open(csv_path, "w", newline="") as file:
        writer = csv.DictWriter(file, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    for row in rows:
        print(",".join(str(row.get(column, "")) for column in COLUMNS))
    print(f"wrote {csv_path}")
    if plot(rows, os.path.join(args.output, "learning_curves.png")):
        print(f"wrote {os.path.join(args.output, 'learning_curves.png')}")
    print(describe(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
