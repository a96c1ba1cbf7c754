"""One plugin manager per run, and a typed facade to call its hooks.

:func:`create_plugin_manager` loads the ``wm.plugins`` entry points one by
one: a plugin that fails to import is recorded in ``load_failures`` and the
others keep working.  :class:`Hooks` has one method per hook spec, so call
sites are checked and readable.  :func:`active_hooks` gives code that has no
handle on the run (a world model's ``train_fn``) the hooks of the run that is
executing, via a context variable, not a global manager.
"""

from __future__ import annotations

import contextlib
import contextvars
import warnings
from importlib import metadata
from typing import Any, Iterator

import pluggy

from wm_core.api import hookspecs

__all__ = ["hookimpl", "Hooks", "create_plugin_manager", "active_hooks", "use_hooks"]

hookimpl = pluggy.HookimplMarker("wm")
PLUGIN_GROUP = "wm.plugins"


def create_plugin_manager(
    load_entry_points: bool = True, plugins: tuple[Any, ...] = ()
) -> pluggy.PluginManager:
    """A fresh manager with the ``wm_`` hook specs and the given plugins.

    With ``load_entry_points``, every installed ``wm.plugins`` entry point is
    registered; failures are kept in ``manager.load_failures`` (name →
    message) and warned about, never raised.
    """
    manager = pluggy.PluginManager("wm")
    manager.add_hookspecs(hookspecs)
    manager.load_failures = {}
    if load_entry_points:
        for point in metadata.entry_points(group=PLUGIN_GROUP):
            if manager.get_plugin(point.name) is not None:
                continue
            try:
                plugin = point.load()
                manager.register(plugin() if isinstance(plugin, type) else plugin, point.name)
            except Exception as error:  # a broken plugin must not stop the run
                dist = f"{point.dist.name} {point.dist.version}" if point.dist else "?"
                message = (
                    f"wm plugin '{point.name} = {point.value}' (from {dist}) failed to "
                    f"load: {type(error).__name__}: {error}"
                )
                manager.load_failures[point.name] = message
                warnings.warn(message, RuntimeWarning, stacklevel=2)
    for plugin in plugins:
        manager.register(plugin)
    manager.check_pending()
    return manager


class Hooks:
    """Typed calls into a run's plugin manager (one method per hook spec)."""

    def __init__(self, manager: pluggy.PluginManager | None = None):
        self.manager = manager or create_plugin_manager(load_entry_points=False)

    def run_configured(self, output_dir: str, operative_config: str) -> None:
        self.manager.hook.wm_run_configured(
            output_dir=output_dir, operative_config=operative_config
        )

    def episode_start(self, phase: str, episode_index: int, seed: int) -> None:
        self.manager.hook.wm_episode_start(
            phase=phase, episode_index=episode_index, seed=seed
        )

    def planner_decided(
        self, phase: str, episode_index: int, step: int, action, prediction
    ) -> None:
        self.manager.hook.wm_planner_decided(
            phase=phase,
            episode_index=episode_index,
            step=step,
            action=action,
            prediction=prediction,
        )

    def episode_end(
        self, phase: str, episode_index: int, episode: dict, predictions: list, score: float
    ) -> None:
        self.manager.hook.wm_episode_end(
            phase=phase,
            episode_index=episode_index,
            episode=episode,
            predictions=predictions,
            score=score,
        )

    def train_step(self, step: int, metrics: dict[str, float]) -> None:
        self.manager.hook.wm_train_step(step=step, metrics=metrics)

    def iteration_end(
        self, phase: str, global_step: int, episodes: list, predictions: list, scalars: dict
    ) -> None:
        self.manager.hook.wm_iteration_end(
            phase=phase,
            global_step=global_step,
            episodes=episodes,
            predictions=predictions,
            scalars=scalars,
        )

    def run_end(self, output_dir: str) -> None:
        self.manager.hook.wm_run_end(output_dir=output_dir)


_ACTIVE: contextvars.ContextVar[Hooks | None] = contextvars.ContextVar(
    "wm_active_hooks", default=None
)


def active_hooks() -> Hooks:
    """The hooks of the run executing in this context (no-op hooks outside one)."""
    return _ACTIVE.get() or Hooks()


@contextlib.contextmanager
def use_hooks(hooks: Hooks) -> Iterator[Hooks]:
    """Make ``hooks`` the :func:`active_hooks` inside the ``with`` block."""
    token = _ACTIVE.set(hooks)
    try:
        yield hooks
    finally:
        _ACTIVE.reset(token)
