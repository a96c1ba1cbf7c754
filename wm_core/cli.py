"""``wm-run``: run a gin-configured experiment, or list the installed plugins.

    wm-run --gin_file CONFIG [--gin_file ...] [--gin_param 'cem.CEM.horizon=8' ...]
           --output_dir DIR [--seed N]
    wm-run plugins
    wm-run evaluate --run_dir DIR [--num_states N] [--num_sequences K] [--horizon H] [--seed S]

A config names the plugins it needs with gin ``import`` lines (``import
wm_cem``), its own or those of the files it includes (``include
'base/planet_cem.gin'``, followed recursively); they are imported before any
binding is parsed, so a missing one is reported with the config file, the
line, and how to install it.  The directory of each ``--gin_file`` is added
to gin's search path, so ``include`` paths (nested ones too) may be relative
to it, whatever the working directory (gin tries the working directory
first).  The gin macros ``model_dir`` and ``episodes_dir`` are filled from ``--output_dir``
(``<output_dir>/model``, ``<output_dir>/episodes``) and ``seed`` from
``--seed`` (default 0), overriding what the configs say; the run calls the gin-configured ``wm.train_eval_loop`` and
leaves ``operative_config.gin`` in the output directory.  The run seed also
seeds Python's and NumPy's global generators (:func:`seed_global_generators`),
so with the shipped configs a run is reproducible from its seed.

``wm-run evaluate`` scores the planning quality of a run's world model
against the task's simulator (:mod:`wm_core.evaluation`, ``docs/evaluation.md``):
it rebuilds the run's eval planner from ``<run_dir>/operative_config.gin``,
evaluates its world model on the run's eval episodes (the train episodes if
there are none), and writes ``<run_dir>/evaluation/planning_quality.csv``
and TensorBoard scalars under ``<run_dir>/summaries/evaluation``.  Here
``--seed`` seeds the states and action sequences drawn (default 0).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import logging
import os
import random
import re
import sys
from typing import NamedTuple, Sequence

import gin
import numpy as np

from wm_core import registry

__all__ = [
    "main", "run", "evaluate", "configure", "seed_global_generators", "required_plugins",
    "config_search_path", "PluginImport", "PluginMissing", "ConfigError",
]

# Modules whose gin configurables every config may use.
CORE_CONFIGURABLE_MODULES = (
    "wm_core.configurables",
    "wm_core.objectives",
    "wm_core.oracle",
    "wm_core.planners",
    "wm_core.simulate",
    "wm_core.tasks",
    "wm_core.tasks.toy",
    "wm_core.train_eval",
)
OUR_PLUGIN_PACKAGES = ("wm_cem", "wm_planet", "wm_sv2p")
_IMPORT_LINE = re.compile(r"^\s*import\s+([\w.]+)\s*(?:#.*)?$")
_INCLUDE_LINE = re.compile(r"""^\s*include\s+('[^'\n]*'|"[^"\n]*")\s*(?:#.*)?$""")
_GIN_SEARCH_PATH: list[str] = []  # the directories this module added to gin's search path


class PluginMissing(Exception):
    """A config imports a plugin module that is not installed (or broken)."""

    def __init__(
        self, config: str, line: int, module: str, cause: str,
        included_from: Sequence[tuple[str, int]] = (),
    ):
        super().__init__(config, line, module, cause)
        self.config, self.line, self.module, self.cause = config, line, module, cause
        self.included_from = tuple(included_from)  # (file, line) of each include, outermost first

    def __str__(self) -> str:
        package = self.module.split(".")[0]
        if package in OUR_PLUGIN_PACKAGES:
            how = f"pip install ./plugins/{package}  (distribution '{package.replace('_', '-')}')"
        else:
            how = f"install the distribution that provides the module '{package}'"
        return (
            f"config {self.config} (line {self.line}{_included_from(self.included_from)}) "
            f"needs plugin '{package}': {how}; "
            f"importing it failed with {self.cause}"
        )


class ConfigError(ValueError):
    """A gin config or binding could not be parsed (gin's message, with file and line)."""


class PluginImport(NamedTuple):
    """A gin ``import`` line: the file it is in, its line number, the module,
    and the ``(file, line)`` of each ``include`` that led there, outermost first."""

    config: str
    line: int
    module: str
    included_from: tuple[tuple[str, int], ...] = ()


def config_search_path(config_paths: Sequence[str]) -> list[str]:
    """The directories of the given configs, absolute, in order, without repeats:
    where (after the working directory) their ``include`` paths are looked up."""
    return list(dict.fromkeys(os.path.dirname(os.path.abspath(path)) for path in config_paths))


def _add_to_gin_search_path(directories: Sequence[str]) -> None:
    for directory in directories:
        if directory not in _GIN_SEARCH_PATH:  # gin's list only grows: add each once
            gin.add_config_file_search_path(directory)
            _GIN_SEARCH_PATH.append(directory)


def _resolve_include(name: str, search_path: Sequence[str]) -> str | None:
    """Where gin will find ``include name``: absolute as it is, else under the
    first of the working directory and the search path that has it, as a file
    or as a Python package resource (gin's own order and readers)."""
    for path in [name] if os.path.isabs(name) else [os.path.join(prefix, name) for prefix in ("", *search_path)]:
        if os.path.isfile(path):
            return os.path.normpath(path)
        if resource := _package_resource(path):
            return resource
    return None


def _package_resource(path: str) -> str | None:
    """gin's second file reader: ``pkg/sub/x.gin`` is ``x.gin`` in package ``pkg.sub``."""
    head, filename = os.path.split(path)
    try:
        spec = importlib.util.find_spec(head.replace("/", "."))
    except Exception:  # no such package, or not a package name at all
        return None
    if spec is None or not spec.origin:
        return None
    resource = os.path.join(os.path.dirname(spec.origin), filename)
    return resource if os.path.isfile(resource) else None


class _QuietGinResourceMisses(logging.Filter):
    """gin looks a relative ``include`` up as a package resource too, and logs
    an ERROR when no package has that name (``base/x.gin``: no package
    ``base``), even when the file is then found on the search path.
    :func:`required_plugins` has already resolved every include (and reported
    one that is nowhere), so those records are noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        from_gin_reader = record.pathname.endswith(os.path.join("gin", "resource_reader.py"))
        return not (from_gin_reader and record.msg == "Path not found: %s")


def required_plugins(config_path: str, search_path: Sequence[str] | None = None) -> list[PluginImport]:
    """Every gin ``import`` line of a config and of the files it includes, recursively.

    ``include`` paths are resolved as gin resolves them: absolute, or relative
    to the working directory, else to a directory of ``search_path`` (default:
    the config's own directory).  Raises :class:`ConfigError` for an include
    that is nowhere on that path, or that includes itself again.
    """
    search_path = config_search_path([config_path]) if search_path is None else list(search_path)
    found: list[PluginImport] = []

    def scan(path: str, included_from: tuple[tuple[str, int], ...]) -> None:
        with open(path) as file:
            lines = list(file)
        for number, line in enumerate(lines, start=1):
            if match := _IMPORT_LINE.match(line):
                found.append(PluginImport(path, number, match.group(1), included_from))
            elif match := _INCLUDE_LINE.match(line):
                name = ast.literal_eval(match.group(1))
                chain = (*included_from, (path, number))
                where = f"config {path} (line {number}{_included_from(included_from)})"
                target = _resolve_include(name, search_path)
                if target is None:
                    places = ", ".join([f"{os.getcwd()} (working directory)", *search_path])
                    raise ConfigError(f"{where} includes {name!r}, which is in none of: {places}")
                if os.path.abspath(target) in {os.path.abspath(file) for file, _ in chain}:
                    raise ConfigError(f"{where} includes {name!r} ({target}) again: an include cycle")
                scan(target, chain)

    scan(config_path, ())
    return found


def _included_from(chain: Sequence[tuple[str, int]]) -> str:
    return "".join(f", included from {file} line {line}" for file, line in reversed(chain))


def _import_plugins(config_paths: Sequence[str], search_path: Sequence[str] | None = None) -> None:
    for module in CORE_CONFIGURABLE_MODULES:
        importlib.import_module(module)
    search_path = config_search_path(config_paths) if search_path is None else search_path
    for config in config_paths:
        for found in required_plugins(config, search_path):
            try:
                importlib.import_module(found.module)
            except ImportError as error:
                raise PluginMissing(
                    found.config, found.line, found.module, f"{type(error).__name__}: {error}",
                    found.included_from,
                ) from error


def _bind_run_macros(output_dir: str, seed: int | None) -> None:
    """Fill the run macros; parsed after the configs, so the command line wins
    over what a replayed ``operative_config.gin`` recorded."""
    bindings = [
        f"model_dir = {os.path.join(output_dir, 'model')!r}",
        f"episodes_dir = {os.path.join(output_dir, 'episodes')!r}",
        f"output_dir = {output_dir!r}",
    ]
    gin.parse_config(bindings + ([] if seed is None else [f"seed = {seed}"]))


def configure(
    gin_files: Sequence[str], gin_params: Sequence[str], output_dir: str, seed: int | None = None
) -> str:
    """Import the configs' plugins, parse them and fill the run macros.

    Returns the absolute output directory.  Raises :class:`PluginMissing`,
    :class:`ConfigError` (also for a run seed outside ``[0, 2**32)``) or
    ``FileNotFoundError`` with what to fix.
    """
    for path in gin_files:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"gin config {path} does not exist")
    output_dir = os.path.abspath(output_dir)
    search_path = config_search_path(gin_files)
    _add_to_gin_search_path(search_path)
    with gin.unlock_config():  # an earlier run in this process may have locked it
        _import_plugins(gin_files, search_path)
        gin.clear_config()
        quiet = _QuietGinResourceMisses()
        logging.getLogger().addFilter(quiet)
        try:
            gin.parse_config("seed = 0")  # the default, for configs that use %seed
            gin.parse_config_files_and_bindings(gin_files, gin_params, finalize_config=False)
            _bind_run_macros(output_dir, seed)
            gin.finalize()
        except (ValueError, SyntaxError, KeyError) as error:  # gin names the file and line
            raise ConfigError(str(error)) from error
        finally:
            logging.getLogger().removeFilter(quiet)
    run_seed = gin.query_parameter("%seed")
    if isinstance(run_seed, bool) or not isinstance(run_seed, int) or not 0 <= run_seed < 2**32:
        raise ConfigError(
            f"the run seed (--seed, else the configs' `seed` macro) must be an integer in "
            f"[0, 2**32), got {run_seed!r}"
        )
    return output_dir


def seed_global_generators(seed: int) -> None:
    """Seed the process-wide generators that libraries draw unseeded
    randomness from: Python's ``random`` (TF-Keras picks the seeds of
    unseeded weight initializers from it) and NumPy's legacy global one.
    Everything of ours takes an explicit seed; this makes model weights
    and third-party code follow ``--seed`` too."""
    random.seed(seed)
    np.random.seed(seed)


def run(
    gin_files: Sequence[str], gin_params: Sequence[str], output_dir: str, seed: int | None = None
) -> dict:
    """Configure from gin and run ``wm.train_eval_loop`` with the run's hooks."""
    from wm_core.hooks import Hooks, create_plugin_manager
    from wm_core.train_eval import train_eval_loop

    output_dir = configure(gin_files, gin_params, output_dir, seed)
    os.makedirs(output_dir, exist_ok=True)
    seed_global_generators(gin.query_parameter("%seed"))
    hooks = Hooks(create_plugin_manager())
    return train_eval_loop(output_dir=output_dir, hooks=hooks)


def evaluate(
    run_dir: str,
    num_states: int = 50,
    num_sequences: int = 32,
    horizon: int | None = None,
    seed: int = 0,
    out=None,
):
    """Evaluate the planning quality of a run's world model (see module docs).

    ``horizon`` defaults to the eval planner's, else 12; the objective is the
    planner's ``objective_fn`` (default ``DiscountedReward()``).  Returns the
    :class:`~wm_core.evaluation.PlanningQuality` and the CSV's path.  Raises
    :class:`~wm_core.evaluation.EvaluationError` for a directory that is not
    a run, has no episodes, or whose learned model has no checkpoint.
    Notes (which episodes are used) go to ``out`` (default ``sys.stdout``).
    """
    from wm_core import evaluation
    from wm_core.reporting import summaries
    from wm_core.train_eval import EVAL_SEED_OFFSET, _environment_steps

    run_dir = os.path.abspath(run_dir)
    config = os.path.join(run_dir, "operative_config.gin")
    if not os.path.isfile(config):
        what = "does not exist" if not os.path.isdir(run_dir) else "has no operative_config.gin"
        raise evaluation.EvaluationError(f"run directory {run_dir} {what}: not a wm-run output directory")
    configure([config], [], run_dir)
    episodes_root = _loop_setting("episodes_dir")
    episodes_dir, phase = _evaluation_episodes(episodes_root, out or sys.stdout)
    first_seed = _loop_setting("seed", 0) + (EVAL_SEED_OFFSET if phase == "eval" else 0)
    if _loop_setting("train_fn", None, evaluate=False) is not None:
        _require_checkpoint(_loop_setting("model_dir"))
    seed_global_generators(seed)
    quality = evaluation.evaluate_planner(
        _loop_setting("task"), _loop_setting("eval_planner"), episodes_dir, num_states,
        num_sequences, horizon, seed, first_seed,
    )
    csv_path = evaluation.write_csv(quality, os.path.join(run_dir, "evaluation", "planning_quality.csv"))
    summary_dir = os.path.join(run_dir, "summaries", "evaluation")
    evaluation.write_summaries(quality, summary_dir, _environment_steps(os.path.join(episodes_root, "train")))
    summaries.close(summary_dir)
    return quality, csv_path


_REQUIRED = object()


def _loop_setting(name: str, default=_REQUIRED, evaluate: bool = True):
    """The value ``wm.train_eval_loop.<name>`` is configured with (with
    ``evaluate``, references and macros are evaluated, so singletons are the
    run's objects)."""
    try:
        value = gin.query_parameter(f"wm.train_eval_loop.{name}")
    except ValueError as error:
        if default is _REQUIRED:
            raise ConfigError(f"the run's operative config does not set train_eval_loop.{name}") from error
        return default
    if evaluate and isinstance(value, gin.config.ConfigurableReference) and value.evaluate:
        value = value.scoped_configurable_fn()
    return value


def _evaluation_episodes(episodes_root: str, out) -> tuple[str, str]:
    """``(directory, phase)``: the eval episodes, else the train ones (said on ``out``)."""
    from wm_core import npz
    from wm_core.evaluation import EvaluationError

    directories = {phase: os.path.join(episodes_root, phase) for phase in ("eval", "train")}
    found = {phase: os.path.isdir(d) and bool(npz.episode_paths(d)) for phase, d in directories.items()}
    if found["eval"]:
        return directories["eval"], "eval"
    if found["train"]:
        print(f"wm-run evaluate: no eval episodes in {directories['eval']}; using the train "
              f"episodes in {directories['train']}", file=out)
        return directories["train"], "train"
    raise EvaluationError(
        f"no episodes to evaluate on: no episode files in {directories['eval']} or {directories['train']}"
    )


def _require_checkpoint(model_dir: str) -> None:
    from wm_core.evaluation import EvaluationError

    if not os.path.isdir(model_dir) or not os.listdir(model_dir):
        raise EvaluationError(
            f"the run's world model is learned (train_eval_loop.train_fn is set) but its model "
            f"directory {model_dir} holds no checkpoint: train it first"
        )


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
        from wm_core.hooks import create_plugin_manager

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
        "command", nargs="?", choices=["plugins", "evaluate"],
        help="'plugins': list installed plugins; 'evaluate': planning quality of a run's world model",
    )
    parser.add_argument("--gin_file", action="append", default=[], help="gin config (repeatable)")
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
    parser.add_argument("--num_states", type=_positive_int, default=50, help="evaluate: states (default 50)")
    parser.add_argument("--num_sequences", type=_at_least_two, default=32,
                        help="evaluate: action sequences per state, >= 2 (default 32)")
    parser.add_argument("--horizon", type=_positive_int,
                        help="evaluate: steps per sequence (default: the planner's, else 12)")
    return parser


def _positive_int(text: str, minimum: int = 1) -> int:
    value = int(text)
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
    return value


def _at_least_two(text: str) -> int:
    return _positive_int(text, minimum=2)


def _main_evaluate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from wm_core.evaluation import EvaluationError

    if not args.run_dir:
        parser.error("evaluate needs --run_dir")
    if args.seed is not None and args.seed < 0:
        parser.error(f"evaluate needs --seed >= 0, got {args.seed}")
    try:
        quality, csv_path = evaluate(
            args.run_dir, args.num_states, args.num_sequences, args.horizon,
            0 if args.seed is None else args.seed, out=sys.stderr,
        )
    except (EvaluationError, PluginMissing, ConfigError, registry.PluginNotFoundError,
            FileNotFoundError) as error:
        print(f"wm-run: error: {error}", file=sys.stderr)
        return 2
    _print_quality(quality)
    summary_dir = os.path.join(os.path.abspath(args.run_dir), "summaries", "evaluation")
    print(f"wm-run evaluate: wrote {csv_path}; TensorBoard scalars in {summary_dir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info and warnings
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "plugins":
        list_plugins(check=args.check)
        return 0
    if args.command == "evaluate":
        return _main_evaluate(parser, args)
    if not args.gin_file or not args.output_dir:
        parser.error("--gin_file and --output_dir are required to run an experiment")
    try:
        results = run(args.gin_file, args.gin_param, args.output_dir, args.seed)
    except (PluginMissing, ConfigError, registry.PluginNotFoundError) as error:
        print(f"wm-run: error: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"wm-run: error: {error}", file=sys.stderr)
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
    final_text = "no evaluation ran" if final is None else f"final eval score {final:.1f}"
    random_text = (
        "no random seed episodes to compare with" if random_score is None
        else f"random actions {random_score:.1f} (seed episodes)"
    )
    return f"wm-run: {final_text}; {random_text}"


if __name__ == "__main__":
    sys.exit(main())
