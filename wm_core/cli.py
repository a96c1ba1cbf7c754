"""``wm-run``: run a gin-configured experiment, or list the installed plugins.

    wm-run --gin_file CONFIG [--gin_file ...] [--gin_param 'cem.CEM.horizon=8' ...]
           --output_dir DIR [--seed N]
    wm-run plugins

A config names the plugins it needs with gin ``import`` lines (``import
wm_cem``); they are imported before any binding is parsed, so a missing one
is reported with the config file, the line, and how to install it.  The gin
macros ``model_dir`` and ``episodes_dir`` are filled from ``--output_dir``
(``<output_dir>/model``, ``<output_dir>/episodes``) and ``seed`` from
``--seed`` (default 0), overriding what the configs say; the run calls the gin-configured ``wm.train_eval_loop`` and
leaves ``operative_config.gin`` in the output directory.  The run seed also
seeds Python's and NumPy's global generators (:func:`seed_global_generators`),
so with the shipped configs a run is reproducible from its seed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import random
import re
import sys
from typing import Sequence

import gin
import numpy as np

from wm_core import registry

__all__ = [
    "main", "run", "configure", "seed_global_generators", "required_plugins", "PluginMissing",
    "ConfigError",
]

# Modules whose gin configurables every config may use.
CORE_CONFIGURABLE_MODULES = (
    "wm_core.configurables",
    "wm_core.objectives",
    "wm_core.oracle",
    "wm_core.planners",
    "wm_core.simulate",
    "wm_core.tasks",
    "wm_core.toy",
    "wm_core.train_eval",
)
OUR_PLUGIN_PACKAGES = ("wm_cem", "wm_planet", "wm_sv2p")
_IMPORT_LINE = re.compile(r"^\s*import\s+([\w.]+)\s*(?:#.*)?$")


class PluginMissing(Exception):
    """A config imports a plugin module that is not installed (or broken)."""

    def __init__(self, config: str, line: int, module: str, cause: str):
        super().__init__(config, line, module, cause)
        self.config, self.line, self.module, self.cause = config, line, module, cause

    def __str__(self) -> str:
        package = self.module.split(".")[0]
        if package in OUR_PLUGIN_PACKAGES:
            how = f"pip install ./plugins/{package}  (distribution '{package.replace('_', '-')}')"
        else:
            how = f"install the distribution that provides the module '{package}'"
        return (
            f"config {self.config} (line {self.line}) needs plugin '{package}': {how}; "
            f"importing it failed with {self.cause}"
        )


class ConfigError(ValueError):
    """A gin config or binding could not be parsed (gin's message, with file and line)."""


def required_plugins(config_path: str) -> list[tuple[int, str]]:
    """``(line number, module)`` for every gin ``import`` line of a config."""
    with open(config_path) as file:
        return [
            (number, match.group(1))
            for number, line in enumerate(file, start=1)
            if (match := _IMPORT_LINE.match(line))
        ]


def _import_plugins(config_paths: Sequence[str]) -> None:
    for module in CORE_CONFIGURABLE_MODULES:
        importlib.import_module(module)
    for config in config_paths:
        for line, module in required_plugins(config):
            try:
                importlib.import_module(module)
            except ImportError as error:
                raise PluginMissing(config, line, module, f"{type(error).__name__}: {error}") from error


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
    with gin.unlock_config():  # an earlier run in this process may have locked it
        _import_plugins(gin_files)
        gin.clear_config()
        try:
            gin.parse_config("seed = 0")  # the default, for configs that use %seed
            gin.parse_config_files_and_bindings(gin_files, gin_params, finalize_config=False)
            _bind_run_macros(output_dir, seed)
            gin.finalize()
        except (ValueError, SyntaxError, KeyError) as error:  # gin names the file and line
            raise ConfigError(str(error)) from error
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


def list_plugins(out=sys.stdout) -> None:
    """Print every installed plugin distribution: names per kind, hooks, load status."""
    from wm_core.hooks import create_plugin_manager

    manager = create_plugin_manager()
    by_distribution: dict[str, list[str]] = {}
    for kind in (*registry.KINDS, "plugins"):
        points = registry.entry_points(kind) if kind != "plugins" else _hook_entry_points()
        for point in points:
            dist = f"{point.dist.name} {point.dist.version}" if point.dist else "unknown"
            status = _load_status(kind, point.name, manager)
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
    parser.add_argument("command", nargs="?", choices=["plugins"], help="list installed plugins")
    parser.add_argument("--gin_file", action="append", default=[], help="gin config (repeatable)")
    parser.add_argument("--gin_param", action="append", default=[], help="gin binding (repeatable)")
    parser.add_argument("--output_dir", help="run directory (model, episodes, summaries)")
    parser.add_argument("--seed", type=int, help="seed of the first episode (default: the config's, else 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "plugins":
        list_plugins()
        return 0
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
    print(f"wm-run: done; results {results}; summaries in {os.path.join(args.output_dir, 'summaries')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
