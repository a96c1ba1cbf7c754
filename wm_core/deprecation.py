"""Public names that moved keep working, with a :class:`DeprecationWarning` naming the new place.

Two tables, read by one import hook and one module ``__getattr__``:

* :data:`MOVED_MODULES` maps an old module path to its new one.  Importing the
  old path (``import wm_core.toy``, ``from wm_core import toy``) warns and
  returns the new module itself, so both names share one module object.
* :func:`moved_attributes` gives a module a ``__getattr__`` for names that
  moved out of it: ``train_eval.visualize`` warns and returns
  ``wm_core.reporting.visualize.visualize``.

Each table row stays for at least one minor release after the move; the
README lists the public names.  Installed by ``wm_core/__init__.py``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any, Callable

__all__ = ["MOVED_MODULES", "install", "moved_attributes", "warn_moved"]

MOVED_MODULES: dict[str, str] = {
    "wm_core.toy": "wm_core.tasks.toy",
    "wm_core.visualize": "wm_core.reporting.visualize",
    "wm_core.summaries": "wm_core.reporting.summaries",
    "wm_core.progress": "wm_core.reporting.progress",
    "wm_core.metrics_log": "wm_core.reporting.metrics_log",
}


def warn_moved(old: str, new: str) -> None:
    """Warn that the public name ``old`` now lives at ``new``, attributed to the user's line.

    The warning points at the first frame outside this module and the import
    machinery, so Python's default filters show it where that code is ``__main__``.
    """
    warnings.warn(f"{old} moved to {new}; import it from there", DeprecationWarning,
                  stacklevel=_first_outside_frame())


def _first_outside_frame() -> int:
    """The ``stacklevel`` (as seen from :func:`warn_moved`) of the code that used the old name.

    :func:`warnings.warn` itself skips the import machinery's frames when it
    counts, so only this module's frames are counted here.
    """
    frame, level = sys._getframe(2), 2
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename != __file__ and "importlib" not in filename:
            return level
        level += filename == __file__
        frame = frame.f_back
    return level


class _AliasLoader(importlib.abc.Loader):
    """Loads an old module path as the module at its new path."""

    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warn_moved(spec.name, self.new)
        return importlib.import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:
        """The new module ran when it was imported; nothing more to run."""


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old paths in :data:`MOVED_MODULES` (and nothing else)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        new = MOVED_MODULES.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new))


def install() -> None:
    """Put the finder for moved modules on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())


def moved_attributes(module_name: str, moved: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for names that left ``module_name``.

    ``moved`` maps each old attribute name to ``"package.module.attribute"``;
    reading one warns and returns the object at its new place.  Other names
    raise :class:`AttributeError` as usual.
    """

    def __getattr__(name: str) -> Any:
        new = moved.get(name)
        if new is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        warn_moved(f"{module_name}.{name}", new)
        new_module, _, attribute = new.rpartition(".")
        return getattr(importlib.import_module(new_module), attribute)

    return __getattr__
