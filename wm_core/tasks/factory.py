"""``make("prefix:name", **kwargs)``: build a task by name through the registry."""

from __future__ import annotations

from typing import Any

from wm_core.api import registry
from wm_core.tasks.base import Task

__all__ = ["make"]


def make(spec: str, **kwargs: Any) -> Task:
    """Build the task ``spec`` names, e.g. ``make("dmc:cartpole-swingup", action_repeat=8)``.

    The prefix (``dmc``, ``gym``, ``atari``, or a plugin's) is looked up in
    the ``wm.tasks`` entry points with :func:`wm_core.api.registry.load`, so an
    unknown prefix raises its :class:`~wm_core.api.registry.PluginNotFoundError`.
    The rest is the task's own name, parsed by its ``from_name``.
    """
    prefix, separator, name = spec.partition(":")
    if not separator or not prefix or not name:
        raise ValueError(
            f"task name {spec!r} is not '<prefix>:<name>', e.g. 'dmc:cartpole-swingup'; "
            f"prefixes: {', '.join(registry.available('tasks'))}"
        )
    factory = registry.load("tasks", prefix)
    if isinstance(factory, type) and issubclass(factory, Task):
        return factory.from_name(name, **kwargs)
    return factory(name, **kwargs)
