"""Find world models, planners, objectives and tasks by name.

Components are Python entry points in the groups ``wm.world_models``,
``wm.planners``, ``wm.objectives`` and ``wm.tasks``; ``wm_core`` registers its
own built-ins the same way a third-party plugin does.  Listing reads package
metadata only; loading imports just the plugin asked for (stevedore's
``DriverManager``), so one broken plugin never takes down the others.
"""

from __future__ import annotations

import difflib
from importlib import metadata
from typing import Any

from stevedore import DriverManager, ExtensionManager
from stevedore.exception import NoMatches

__all__ = [
    "KINDS",
    "PluginNotFoundError",
    "PluginLoadError",
    "available",
    "entry_points",
    "load",
    "make",
    "install_hint",
]

KINDS = ("world_models", "planners", "objectives", "tasks")

# Names our own plugin distributions provide, for "how to install it" hints.
_KNOWN_PLUGINS = {
    ("world_models", "planet"): "wm-planet",
    ("world_models", "sv2p"): "wm-sv2p",
    ("planners", "cem"): "wm-cem",
    ("planners", "mppi"): "wm-cem",
    ("planners", "icem"): "wm-cem",
}


class PluginNotFoundError(LookupError):
    """No installed plugin provides the requested name."""


class PluginLoadError(ImportError):
    """An entry point exists but importing it failed."""


def _group(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; kinds are: {', '.join(KINDS)}")
    return f"wm.{kind}"


def entry_points(kind: str) -> list[metadata.EntryPoint]:
    """The entry points of one kind, sorted by name, nothing imported."""
    found = metadata.entry_points(group=_group(kind))
    return sorted(found, key=lambda point: point.name)


def available(kind: str) -> list[str]:
    """Names installed for ``kind`` (e.g. ``available("planners")``)."""
    return sorted({point.name for point in entry_points(kind)})


def install_hint(kind: str, name: str) -> str:
    """A sentence saying how to get the plugin providing ``name``, if we know."""
    distribution = _KNOWN_PLUGINS.get((kind, name))
    if distribution is None:
        return (
            f"install a plugin distribution with a '{_group(kind)}' entry point "
            f"named '{name}'"
        )
    folder = distribution.replace("-", "_")
    return f"pip install ./plugins/{folder}  (distribution '{distribution}')"


def _not_found(kind: str, name: str) -> PluginNotFoundError:
    installed = available(kind)
    singular = kind[:-1].replace("_", " ")
    message = f"no {singular} named {name!r}; installed: {', '.join(installed) or 'none'}."
    close = difflib.get_close_matches(name, installed, n=1)
    if close:
        message += f" Did you mean {close[0]!r}?"
    message += f" To add it: {install_hint(kind, name)}."
    return PluginNotFoundError(message)


def _distribution_of(kind: str, name: str) -> str:
    for point in entry_points(kind):
        if point.name == name and point.dist is not None:
            return f"{point.dist.name} {point.dist.version}"
    return "unknown distribution"


def load(kind: str, name: str) -> Any:
    """Import and return the object registered as ``name`` (a class or factory).

    Raises :class:`PluginNotFoundError` (with the installed names and the
    closest match) or :class:`PluginLoadError` (with the entry point, its
    distribution and the original error as ``__cause__``).
    """
    group = _group(kind)
    if name not in available(kind):
        raise _not_found(kind, name)

    def on_failure(_manager, entry_point, error):
        raise PluginLoadError(
            f"plugin entry point '{entry_point.name} = {entry_point.value}' in group "
            f"'{group}' (from {_distribution_of(kind, name)}) failed to load: "
            f"{type(error).__name__}: {error}"
        ) from error

    try:
        manager = DriverManager(group, name, on_load_failure_callback=on_failure)
    except NoMatches:
        # stevedore caches each group's entry points for the life of the
        # process; a plugin installed since then is in the metadata only.
        ExtensionManager.ENTRY_POINT_CACHE.pop(group, None)
        try:
            manager = DriverManager(group, name, on_load_failure_callback=on_failure)
        except NoMatches as error:
            raise _not_found(kind, name) from error
    return manager.driver


def make(kind: str, name: str, **kwargs: Any) -> Any:
    """``load(kind, name)(**kwargs)``: build a component by name."""
    return load(kind, name)(**kwargs)
