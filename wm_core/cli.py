"""``wm-run``: the command line (argument parsing, and printing what a command returns).

    wm-run --gin_file CONFIG [--gin_file ...] [--gin_param 'cem.CEM.horizon=8' ...]
           --output_dir DIR [--seed N] [--verbose]
    wm-run plugins [--check]
    wm-run evaluate --run_dir DIR [--num_states N] [--num_sequences K] [--horizon H] [--seed S]
    wm-run learn --output_dir DIR --train_steps_per_env_step R [--gin_file CONFIG]
           [--model_dir DIR] [--episodes_dir DIR] [--poll_s S] [--stop_when_idle]

A run loads the configs (:mod:`wm_core.loops.config`: plugins named by the
configs' ``import`` lines first, run macros from ``--output_dir`` and
``--seed``) and calls the gin-configured ``wm.train_eval_loop``
(:func:`wm_core.loops.train_eval.run_experiment`), leaving
``operative_config.gin`` in the output directory.

``wm-run evaluate`` scores the planning quality of a run's world model
against the task's simulator (:func:`wm_core.loops.run_evaluation.evaluate_run`,
``docs/evaluation.md``); here ``--seed`` seeds the states and action
sequences drawn (default 0).

``wm-run learn`` is the learner process of an asynchronous run
(:func:`wm_core.loops.learner.run_learner`): ``train_eval_loop`` starts it
with ``async_training``; it trains the run's world model beside collection
at a fixed ratio of train steps to environment steps.

Every command is quiet (:mod:`wm_core.reporting.quiet`): no TensorFlow
start-up lines, in its child processes either, unless given ``--verbose``.

Exit status: 0 done, 1 a run stopped by a full disk (the message names the
file; nothing partial is left, so the same command resumes once there is
space), by diverged training or by a failed learner process, each said in
one line, 2 a usage, config or plugin error (a configured class that refuses
its arguments with a ``ValueError`` included: one line naming the class and
its gin scope; with ``--verbose`` the traceback instead, status 1), or a run
directory (or ``model_dir``) in use by another process (the message on stderr
names it: :mod:`wm_core.ownership`), 130 interrupted.  ``wm-run evaluate`` only
reads a run directory and takes no lock.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from typing import Callable, Sequence

from wm_core.api import registry
from wm_core.api.checks import check_int_at_least
from wm_core.data.atomic import DiskFullError
from wm_core.deprecation import moved_attributes
from wm_core.loops import config
from wm_core.loops.learner import LearnerFailed
from wm_core.loops.training import TrainingDivergedError
from wm_core.ownership import DirectoryInUseError, die_with_parent
from wm_core.reporting import quiet
from wm_core.reporting.progress import format_score

__all__ = ["main", "list_plugins"]

__getattr__ = moved_attributes(__name__, {
    **{name: f"wm_core.loops.config.{name}" for name in (
        "CORE_CONFIGURABLE_MODULES", "ConfigError", "PluginImport", "PluginMissing",
        "config_search_path", "configure", "required_plugins", "seed_global_generators",
    )},
    "run": "wm_core.loops.train_eval.run_experiment",
    "evaluate": "wm_core.loops.run_evaluation.evaluate_run",
})

# What a command reports as a usage error (exit status 2) instead of a traceback.
_USER_ERRORS = (config.PluginMissing, config.ConfigError, registry.PluginNotFoundError, FileNotFoundError,
                DirectoryInUseError)
# What stops a run with a one-line error (exit status 1) instead of a traceback.
_RUN_FAILURES = (DiskFullError, TrainingDivergedError, LearnerFailed)


# How gin begins each note it appends to an exception raised inside a configurable's call.
_GIN_CALL_NOTE = "In call to configurable"


def _user_error(error: BaseException) -> str:
    """A usage or config error's message, without the "In call to configurable ..."
    lines gin appends (gin's own location lines for a bad binding stay)."""
    return "\n".join(line for line in str(error).splitlines()
                     if not line.lstrip().startswith(_GIN_CALL_NOTE))


# gin's note on an exception that left a configured class's constructor (its first such line
# is the innermost call): the class's import path and its scope, if any.
_CONSTRUCTOR_CALL = re.compile(r"\s*In call to configurable '[^']+' \(<class '([^']+)'>\)(?: in scope '([^']+)')?")


def _refused_arguments(error: BaseException) -> str | None:
    """For a ``ValueError`` raised by a configured class's constructor, which is how a class
    refuses the arguments its gin bindings gave it: its message in one line, naming the class
    and scope.  ``None`` for any other error (one raised while running, or outside gin)."""
    if not isinstance(error, ValueError):
        return None
    lines = str(error).splitlines()
    calls = [line for line in lines if line.lstrip().startswith(_GIN_CALL_NOTE)]
    match = _CONSTRUCTOR_CALL.match(calls[0]) if calls else None
    if match is None:
        return None
    path, scope = match.groups()
    where = f"{path} in gin scope '{scope}'" if scope else path
    return f"{lines[0]} (an argument of {where}: check its bindings; --verbose shows the traceback)"


def _failure_line(error: BaseException) -> str:
    """One of :data:`_RUN_FAILURES` in one line (gin appends "In call to configurable ..." lines)."""
    line = str(error).splitlines()[0]
    if isinstance(error, DiskFullError):
        line += "; free some space, then run again with the same --output_dir to resume"
    return line


def _print_quality(quality, out=None) -> None:
    """The aggregates as a few readable lines."""
    out = out or sys.stdout
    mean, median = quality.mean, quality.median
    print(f"wm-run evaluate: {len(quality.states)} states of {quality.episodes_dir}, "
          f"{quality.num_sequences} sequences each, horizon {quality.horizon}, "
          f"objective {quality.objective}", file=out)
    for name in ("rank_correlation", "regret", "normalized_regret"):
        print(f"  {name:<18} mean {mean[name]:.4g}  median {median[name]:.4g}", file=out)
    for name in ("reward_abs_error", "frame_squared_error"):
        steps = [mean[key] for key in mean if key.startswith(f"{name}_h")]
        if steps:
            print(f"  {name:<18} mean per step ahead: {' '.join(f'{v:.3g}' for v in steps)}", file=out)


def list_plugins(out=sys.stdout, check: bool = False) -> None:
    """Print every installed plugin distribution and its entry points, per kind.

    From package metadata alone (nothing is imported): each entry point's
    target.  With ``check``, each is loaded and its status printed instead
    (hook plugins with the hooks they implement).
    """
    manager = None
    if check:
        from wm_core.api.hooks import create_plugin_manager

        manager = create_plugin_manager()
    by_distribution: dict[str, list[str]] = {}
    for kind in (*registry.KINDS, "plugins"):
        points = registry.entry_points(kind) if kind != "plugins" else _hook_entry_points()
        for point in points:
            dist = f"{point.dist.name} {point.dist.version}" if point.dist else "unknown"
            status = _load_status(kind, point.name, manager) if check else point.value
            by_distribution.setdefault(dist, []).append(f"  {kind:<13} {point.name:<24} {status}")
    for dist in sorted(by_distribution):
        print(dist, file=out)
        print("\n".join(by_distribution[dist]), file=out)


def _hook_entry_points():
    from importlib import metadata

    return sorted(metadata.entry_points(group="wm.plugins"), key=lambda point: point.name)


def _load_status(kind: str, name: str, manager) -> str:
    if kind == "plugins":
        if name in manager.load_failures:
            return f"FAILED: {manager.load_failures[name]}"
        plugin = manager.get_plugin(name)
        hooks = sorted(caller.name for caller in manager.get_hookcallers(plugin) or ())
        return f"loaded; hooks: {', '.join(hooks) or 'none'}"
    try:
        registry.load(kind, name)
    except Exception as error:  # report, never crash the listing
        return f"FAILED: {error}"
    return "loaded"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wm-run",
        description="Run a gin-configured wm experiment ('wm-run plugins' lists plugins).",
    )
    parser.add_argument(
        "command", nargs="?", choices=["plugins", "evaluate", "learn"],
        help="'plugins': list installed plugins; 'evaluate': planning quality of a run's world "
        "model; 'learn': the learner process of an asynchronous run",
    )
    parser.add_argument("--gin_file", action="append", default=[],
                        help="gin config (repeatable); learn: one, default <output_dir>/operative_config.gin")
    parser.add_argument("--gin_param", action="append", default=[], help="gin binding (repeatable)")
    parser.add_argument("--output_dir", help="run directory (model, episodes, summaries)")
    parser.add_argument(
        "--seed", type=int,
        help="run: seed of the first episode (default: the config's, else 0); "
        "evaluate: seed of the states and sequences drawn (default 0)",
    )
    parser.add_argument("--check", action="store_true",
                        help="plugins: import each plugin and say whether it loads")
    parser.add_argument("--run_dir", help="evaluate: the run directory (an --output_dir of wm-run)")
    parser.add_argument("--num_states", type=_int_at_least("--num_states"), default=50, help="evaluate: states (default 50)")
    parser.add_argument("--num_sequences", type=_int_at_least("--num_sequences", 2), default=32,
                        help="evaluate: action sequences per state, >= 2 (default 32)")
    parser.add_argument("--horizon", type=_int_at_least("--horizon"),
                        help="evaluate: steps per sequence (default: the planner's, else 12)")
    parser.add_argument("--train_steps_per_env_step", type=float,
                        help="learn: train steps due per collected environment step")
    parser.add_argument("--model_dir", help="learn: the model_dir macro (default: <output_dir>/model)")
    parser.add_argument("--episodes_dir",
                        help="learn: the episodes_dir macro (default: <output_dir>/episodes)")
    parser.add_argument("--poll_s", type=float, default=0.2,
                        help="learn: seconds between looks for new episodes (default 0.2)")
    parser.add_argument("--stop_when_idle", action="store_true",
                        help="learn: exit once no training is due instead of waiting for more episodes")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up and C++ log lines (hidden by default)")
    return parser


def _int_at_least(name: str, minimum: int = 1) -> Callable[[str], int]:
    """An argparse ``type``: the option ``name``'s text as an ``int >= minimum``."""

    def parse(text: str) -> int:
        try:
            return check_int_at_least(name, int(text), minimum)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def _main_evaluate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from wm_core.evaluation.planning_quality import EvaluationError
    from wm_core.loops.run_evaluation import evaluate_run

    if not args.run_dir:
        parser.error("evaluate needs --run_dir")
    if args.seed is not None and args.seed < 0:
        parser.error(f"evaluate needs --seed >= 0, got {args.seed}")
    try:
        quality, csv_path = evaluate_run(
            args.run_dir, args.num_states, args.num_sequences, args.horizon,
            0 if args.seed is None else args.seed, out=sys.stderr,
        )
    except (EvaluationError, *_USER_ERRORS) as error:
        print(f"wm-run: error: {_user_error(error)}", file=sys.stderr)
        return 2
    _print_quality(quality)
    summary_dir = os.path.join(os.path.abspath(args.run_dir), "summaries", "evaluation")
    print(f"wm-run evaluate: wrote {csv_path}; TensorBoard scalars in {summary_dir}")
    return 0


def _main_learn(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from wm_core.loops.learner import run_learner

    if not args.output_dir or args.train_steps_per_env_step is None:
        parser.error("learn needs --output_dir and --train_steps_per_env_step")
    if len(args.gin_file) > 1:
        parser.error("learn takes at most one --gin_file (the run's config)")
    signal.signal(signal.SIGTERM, _interrupt)  # ends the learner like Ctrl-C
    try:
        die_with_parent()  # SIGTERM when the run that started it dies
        run_learner(
            args.output_dir, args.train_steps_per_env_step,
            gin_file=args.gin_file[0] if args.gin_file else None, gin_params=args.gin_param, model_dir=args.model_dir, episodes_dir=args.episodes_dir,
            poll_s=args.poll_s, stop_when_idle=args.stop_when_idle,
        )
    except _RUN_FAILURES as error:  # recorded in learner_state.json for the run to report
        print(f"wm-run learn: error: {_failure_line(error)}", file=sys.stderr)
        return 1
    except (*_USER_ERRORS, ValueError) as error:
        print(f"wm-run learn: error: {_user_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """``wm-run`` with the arguments ``argv`` (default ``sys.argv[1:]``); the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    quiet.apply_verbose_flag(args.verbose)
    if args.command == "plugins":
        list_plugins(check=args.check)
        return 0
    if args.command == "evaluate":
        return _main_evaluate(parser, args)
    if args.command == "learn":
        return _main_learn(parser, args)
    if not args.gin_file or not args.output_dir:
        parser.error("--gin_file and --output_dir are required to run an experiment")
    from wm_core.loops.train_eval import run_experiment

    die_with_parent()  # started by a process that owns it (child_environment): end with it
    try:
        results = run_experiment(args.gin_file, args.gin_param, args.output_dir, args.seed)
    except _USER_ERRORS as error:
        print(f"wm-run: error: {_user_error(error)}", file=sys.stderr)
        return 2
    except _RUN_FAILURES as error:
        print(f"wm-run: error: {_failure_line(error)}", file=sys.stderr)
        return 1
    except ValueError as error:
        refused = _refused_arguments(error)
        if refused is None or args.verbose:
            raise
        print(f"wm-run: error: {refused}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wm-run: interrupted; run again with the same --output_dir to resume", file=sys.stderr)
        return 130
    print(f"wm-run: done; summaries in {os.path.join(args.output_dir, 'summaries')}")
    print(_score_line(results))
    return 0


def _score_line(results: dict) -> str:
    """The run's final evaluation score against random actions, in one line."""
    final, random_score = results["final_eval_score"], results["random_score"]
    final_text = "no evaluation ran" if final is None else f"final eval score {format_score(final)}"
    random_text = (
        "no random seed episodes to compare with" if random_score is None
        else f"random actions {format_score(random_score)} (seed episodes)"
    )
    return f"wm-run: {final_text}; {random_text}"


if __name__ == "__main__":
    sys.exit(main())
