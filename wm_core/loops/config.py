"""Loading a run's gin configuration: plugins first, then the configs, then the run macros.

A config names the plugins it needs with gin ``import`` lines (``import
wm_cem``), its own or those of the files it includes (``include
'base/planet_cem.gin'``, followed recursively); they are imported before any
binding is parsed, so a missing one is reported with the config file, the
line, and how to install it (:class:`PluginMissing`).  The directory of each
config is added to gin's search path, so ``include`` paths (nested ones too)
may be relative to it, whatever the working directory (gin tries the working
directory first).  The gin macros ``model_dir``, ``episodes_dir`` and
``output_dir`` are filled from the output directory (``<output_dir>/model``,
``<output_dir>/episodes``) and ``seed`` from the given seed (default 0),
overriding what the configs say.  The run seed also seeds Python's and
NumPy's global generators (:func:`seed_global_generators`), so with the
shipped configs a run is reproducible from its seed.

:func:`loop_setting` reads back what the loaded config gives
``wm.train_eval_loop`` (the learner process and ``wm-run evaluate`` rebuild
a run from its ``operative_config.gin`` this way).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import os
import random
import re
from typing import Any, NamedTuple, Sequence

import gin
import numpy as np

__all__ = [
    "CORE_CONFIGURABLE_MODULES",
    "ConfigError",
    "PluginImport",
    "PluginMissing",
    "config_search_path",
    "configure",
    "configure_run",
    "loop_setting",
    "required_plugins",
    "seed_global_generators",
]

CORE_CONFIGURABLE_MODULES = (
    "wm_core.api.configurables",
    "wm_core.planning.objectives",
    "wm_core.models.oracle",
    "wm_core.planning.planners",
    "wm_core.rollout.simulate",
    "wm_core.tasks",
    "wm_core.tasks.toy",
    "wm_core.loops.train_eval",
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


def configure_run(
    config: str, output_dir: str, bindings: Sequence[str] = (), macros: dict[str, str] | None = None
) -> str:
    """Load a run's gin ``config`` as :func:`configure` does (run macros from
    ``output_dir``; ``macros`` such as ``{"model_dir": ...}`` override those)
    and seed the global generators with the run seed; the absolute output
    directory."""
    output_dir = configure([config], list(bindings), output_dir)
    if macros:
        with gin.unlock_config():
            gin.parse_config([f"{name} = {value!r}" for name, value in macros.items()])
    seed_global_generators(gin.query_parameter("%seed"))
    return output_dir


_REQUIRED = object()


def loop_setting(name: str, default: Any = _REQUIRED, evaluate: bool = True) -> Any:
    """What the loaded config gives ``wm.train_eval_loop.<name>``.

    With ``evaluate``, a configurable reference is called (so
    ``@planet.create_planet_train_fn()`` gives the train_fn, and singletons
    are this process's objects).  Without ``default``, a missing setting is a
    :class:`ConfigError`.
    """
    try:
        value = gin.query_parameter(f"wm.train_eval_loop.{name}")
    except ValueError as error:
        if default is _REQUIRED:
            raise ConfigError(f"the run's gin config does not set wm.train_eval_loop.{name}") from error
        return default
    if evaluate and isinstance(value, gin.config.ConfigurableReference) and value.evaluate:
        value = value.scoped_configurable_fn()
    return value
