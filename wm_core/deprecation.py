"""Public names that moved keep working, with a :class:`DeprecationWarning` naming the new place.

Two tables, read by one import hook and one module ``__getattr__``:

* :data:`MOVED_MODULES` maps an old module path to its new one.  Importing the
  old path (``import wm_core.toy``, ``from wm_core import toy``) warns and
  returns the new module itself, so both names share one module object.
* :func:`moved_attributes` gives a module a ``__getattr__`` for names that
  moved out of it (reading one warns and returns the object at its new place).
* :func:`renamed_parameters` lets a function take a parameter's old keyword
  name (warning) beside the new one, in Python calls and in gin bindings.

Each table row stays for at least one minor release after the move; the
README lists the public names.  Installed by ``wm_core/__init__.py``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.util
import inspect
import sys
import warnings
from types import ModuleType
from typing import Any, Callable, TypeVar

__all__ = ["MOVED_MODULES", "install", "moved_attributes", "renamed_parameters", "warn_moved"]

Function = TypeVar("Function", bound=Callable[..., Any])

MOVED_MODULES: dict[str, str] = {
    "wm_core.toy": "wm_core.tasks.toy",
    "wm_core.visualize": "wm_core.reporting.visualize",
    "wm_core.summaries": "wm_core.reporting.summaries",
    "wm_core.progress": "wm_core.reporting.progress",
    "wm_core.metrics_log": "wm_core.reporting.metrics_log",
    "wm_core.contracts": "wm_core.api.contracts",
    "wm_core.checks": "wm_core.api.checks",
    "wm_core.spaces": "wm_core.api.spaces",
    "wm_core.hookspecs": "wm_core.api.hookspecs",
    "wm_core.hooks": "wm_core.api.hooks",
    "wm_core.registry": "wm_core.api.registry",
    "wm_core.configurables": "wm_core.api.configurables",
    "wm_core.npz": "wm_core.data.npz",
    "wm_core.sampling": "wm_core.data.sampling",
    "wm_core.atomic": "wm_core.data.atomic",
    "wm_core.planners": "wm_core.planning.planners",
    "wm_core.objectives": "wm_core.planning.objectives",
    "wm_core.oracle": "wm_core.models.oracle",
    "wm_core.simulate": "wm_core.rollout.simulate",
    "wm_core.train_eval": "wm_core.loops.train_eval",
    "wm_core.training": "wm_core.loops.training",
    "wm_core.learner": "wm_core.loops.learner",
    "wm_core.learning": "wm_core.evaluation.scoring",
    "wm_core.onednn": "wm_tf.onednn",
    "wm_core.distributed": "wm_tf.distributed",
    "wm_planet.preprocess": "wm_tf.images",
    "wm_sv2p.layers": "wm_sv2p.networks",
}


def warn_moved(old: str, new: str) -> None:
    """Warn that the public name ``old`` now lives at ``new``, attributed to the user's line."""
    _warn(f"{old} moved to {new}; import it from there")


def _warn(message: str) -> None:
    """A :class:`DeprecationWarning` pointing at the first frame outside this module and the
    import machinery, so Python's default filters show it where that code is ``__main__``."""
    warnings.warn(message, DeprecationWarning, stacklevel=_first_outside_frame())


def _first_outside_frame() -> int:
    """The ``stacklevel`` (as seen from :func:`_warn`) of the code that used the old name.

    :func:`warnings.warn` itself skips the import machinery's frames when it
    counts, so only this module's frames are counted here.
    """
    frame, level = sys._getframe(3), 3
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


def renamed_parameters(**old_to_new: str) -> Callable[[Function], Function]:
    """Let a function take the old keyword names of renamed parameters, with a warning.

    ``@renamed_parameters(chunk_length="duration")``: a call (or a gin binding)
    with ``chunk_length=`` warns and passes the value as ``duration=``; giving
    both is a :class:`TypeError`.  The old names appear in the wrapper's
    signature as keyword-only parameters, so gin accepts bindings to them.
    Put it below ``@gin.configurable``.
    """

    def decorate(function: Function) -> Function:
        signature = inspect.signature(function)
        positions = list(signature.parameters)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if kwargs.get(old) is None:
                    kwargs.pop(old, None)
                    continue
                if new in kwargs or positions.index(new) < len(args):
                    raise TypeError(f"{function.__qualname__}() got {new!r} and its old name {old!r}; "
                                    f"give {new!r} only")
                _warn(f"{function.__qualname__}({old}=...) is renamed {new}=...; pass {new} instead")
                kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        parameters = list(signature.parameters.values())
        keywords = [p for p in parameters if p.kind is inspect.Parameter.VAR_KEYWORD]
        others = [p for p in parameters if p.kind is not inspect.Parameter.VAR_KEYWORD]
        old_parameters = [inspect.Parameter(old, inspect.Parameter.KEYWORD_ONLY, default=None)
                          for old in old_to_new]
        wrapper.__signature__ = signature.replace(parameters=others + old_parameters + keywords)
        del wrapper.__wrapped__  # gin checks bindings against the wrapper's own signature
        return wrapper  # type: ignore[return-value]

    return decorate
