"""Quiet by default: TensorFlow's start-up lines stay off the terminal.

On a CPU-only machine, importing TensorFlow writes start-up lines to the
process's stderr from C++ (absl's "All log messages before
absl::InitializeLog() is called ...", the oneDNN notice, "Could not find
cuda drivers", the CPU-instructions notice), its first op logs
``E0000 ... failed call to cuInit``, and TensorFlow and Keras warn about
their own deprecations through Python's ``warnings`` and ``logging``.
:func:`quiet` turns all of these off for this process and for the Python
processes it starts.  ``wm-run`` calls :func:`apply_verbose_flag`: quiet,
unless given ``--verbose`` or started by a ``wm-run --verbose`` (its learner
process is a ``wm-run learn``).

What it does:

* sets ``TF_CPP_MIN_LOG_LEVEL=3`` (TensorFlow's C++ log: nothing below
  FATAL) unless the environment already sets it;
* sets ``WM_QUIET=1`` (:data:`QUIET_VARIABLE`): child processes inherit both
  variables, and ``import wm_core`` in a child runs
  :func:`install_from_environment`, which calls :func:`quiet` there too (the
  environment workers and the learner process are ``python -m wm_core...``);
  ``WM_QUIET=0`` (what ``--verbose`` sets, or a user) keeps them verbose;
* puts a finder on ``sys.meta_path`` that runs the first ``import
  tensorflow`` with file descriptor 2 pointing at a temporary file (the
  start-up lines are written while TensorFlow's shared libraries load,
  before any log level is read): the file is dropped when the import
  succeeds and copied to stderr when it raises;
* ignores Python warnings raised from ``tensorflow``,
  ``tensorflow_probability``, ``tf_keras`` and ``keras`` modules, and logs
  only errors from the ``tensorflow`` logger and, once TensorFlow is
  imported, from absl's.

Our own warnings (a :class:`DeprecationWarning` for a moved public name) and
every error that TensorFlow raises as a Python exception still show.
Nothing is undone within a process: call it once, at start-up.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import tempfile
import warnings
from types import ModuleType
from typing import Any, Iterator

__all__ = [
    "QUIET_VARIABLE", "START_UP_LINES", "TF_LOG_LEVEL", "apply_verbose_flag", "install_from_environment",
    "quiet",
]

QUIET_VARIABLE = "WM_QUIET"
TF_LOG_LEVEL = "3"  # TF_CPP_MIN_LOG_LEVEL: 0 all, 1 no INFO, 2 no WARNING, 3 no ERROR
# What TensorFlow prints on a CPU-only machine unless quieted (what tests look for).
START_UP_LINES = re.compile(
    r"absl::InitializeLog|oneDNN custom operations|cuda drivers|cuInit|cpu_feature_guard"
    r"|rebuild TensorFlow|^[IWEF]\d{4} \d\d:\d\d:\d\d|WARNING:tensorflow|WARNING:absl",
    re.MULTILINE,
)
_NOISY_MODULES = r"(tensorflow|tensorflow_probability|tf_keras|keras)(\.|$)"


def quiet() -> None:
    """Quiet TensorFlow in this process and its children (see module docs)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVEL)
    os.environ[QUIET_VARIABLE] = "1"
    warnings.filterwarnings("ignore", module=_NOISY_MODULES)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if "tensorflow" in sys.modules:
        _quiet_absl()
    elif not any(isinstance(finder, _QuietTensorFlowImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


def apply_verbose_flag(verbose: bool) -> None:
    """``wm-run``'s ``--verbose``: with it, ``WM_QUIET=0`` for this process's children;
    without it, :func:`quiet` unless ``WM_QUIET=0`` is already set."""
    if verbose:
        os.environ[QUIET_VARIABLE] = "0"
    elif os.environ.get(QUIET_VARIABLE) != "0":
        quiet()


def install_from_environment() -> None:
    """:func:`quiet` if ``WM_QUIET=1`` is in the environment (a quiet parent started us)."""
    if os.environ.get(QUIET_VARIABLE) == "1":
        quiet()


def _quiet_absl() -> None:
    from absl import logging as absl_logging  # a TensorFlow dependency, present once it is

    absl_logging.set_verbosity(absl_logging.ERROR)


@contextlib.contextmanager
def _stderr_captured() -> Iterator[None]:
    """Point file descriptor 2 at a temporary file; copy it back to stderr on an exception."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            os.write(2, captured.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    """Runs TensorFlow's own loader with stderr captured, then steps aside."""

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = module.__spec__.loader = self.loader
        with _stderr_captured():
            self.loader.exec_module(module)
        _quiet_absl()


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` on ``sys.path`` (as the path finder does), behind a :class:`_QuietLoader`."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname != "tensorflow":  # asked again only if no import of it has succeeded
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec
