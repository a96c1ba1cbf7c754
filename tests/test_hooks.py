from __future__ import annotations

import inspect
import pathlib

import pluggy
import pytest

from wm_core import hookimpl
from wm_core.api import hookspecs
from wm_core.api.hooks import Hooks, active_hooks, create_plugin_manager, use_hooks

HOOK_NAMES = sorted(
    name for name, value in vars(hookspecs).items() if name.startswith("wm_") and callable(value)
)


class Recorder:
    def __init__(self):
        self.calls = []

    @hookimpl
    def wm_train_step(self, step, metrics):
        self.calls.append(("train_step", step, metrics))

    @hookimpl
    def wm_run_end(self, output_dir):
        self.calls.append(("run_end", output_dir))


def test_every_hook_spec_is_documented_and_has_a_facade_method():
    for name in HOOK_NAMES:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and "Called" in doc, f"hook {name} needs a docstring saying when it is called"
        facade = name.removeprefix("wm_")
        assert callable(getattr(Hooks, facade, None)), f"Hooks has no method {facade}()"


def test_every_hook_is_exercised_by_some_test():
    sources = "\n".join(
        path.read_text() for path in pathlib.Path(__file__).parent.glob("test_*.py")
        if path.name != "test_hooks.py"
    )
    untested = [name for name in HOOK_NAMES if name not in sources]
    assert not untested, f"hooks without a test: {untested}"


def test_hooks_reach_registered_plugins():
    recorder = Recorder()
    hooks = Hooks(create_plugin_manager(load_entry_points=False, plugins=(recorder,)))
    hooks.train_step(step=3, metrics={"loss": 1.5})
    hooks.run_end(output_dir="/tmp/run")
    assert recorder.calls == [("train_step", 3, {"loss": 1.5}), ("run_end", "/tmp/run")]


def test_misspelled_hook_is_caught():
    class Misspelled:
        @hookimpl
        def wm_train_stepp(self, step):
            pass

    with pytest.raises(pluggy.PluginValidationError, match="wm_train_stepp"):
        create_plugin_manager(load_entry_points=False, plugins=(Misspelled(),))


def test_broken_hook_plugin_is_reported_and_others_load(fake_distribution):
    with pytest.warns(RuntimeWarning, match="broken_hook.*libfoo.so"):
        manager = create_plugin_manager()
    assert "broken_hook" in manager.load_failures
    assert "wm-fake-plugin 1.0" in manager.load_failures["broken_hook"]
    good = manager.get_plugin("fake_hook")
    Hooks(manager).train_step(step=1, metrics={"loss": 0.0})
    assert good.calls == [(1, {"loss": 0.0})]


def test_active_hooks_follow_the_running_context():
    recorder = Recorder()
    hooks = Hooks(create_plugin_manager(load_entry_points=False, plugins=(recorder,)))
    with use_hooks(hooks):
        active_hooks().train_step(step=7, metrics={})
    active_hooks().train_step(step=8, metrics={})  # outside: nobody listens
    assert recorder.calls == [("train_step", 7, {})]


def test_each_manager_is_independent():
    first, second = create_plugin_manager(load_entry_points=False), create_plugin_manager(load_entry_points=False)
    first.register(Recorder())
    assert len(second.get_plugins()) == 0
