from __future__ import annotations

import pytest

from wm_core.api import registry
from wm_core.planning.planners import Random
from wm_core.tasks.toy import PointTask


def test_builtins_are_registered_through_entry_points():
    assert {"random", "random_cold_start", "gaussian_random_noise"} <= set(registry.available("planners"))
    assert {"discounted_reward", "total_reward"} <= set(registry.available("objectives"))
    assert {"dmc", "gym", "atari", "toy"} <= set(registry.available("tasks"))
    assert "oracle" in registry.available("world_models")
    assert registry.load("planners", "random") is Random


def test_make_builds_a_component_by_name():
    objective = registry.make("objectives", "discounted_reward", discount=0.5)
    assert objective.discount == 0.5
    planner = registry.make("planners", "random", task=PointTask())
    assert isinstance(planner, Random)


def test_unknown_name_lists_installed_and_suggests_the_closest():
    with pytest.raises(registry.PluginNotFoundError) as caught:
        registry.load("planners", "rnadom")
    message = str(caught.value)
    assert "no planner named 'rnadom'" in message
    assert "installed: " in message and "random_cold_start" in message
    assert "Did you mean 'random'?" in message


def test_missing_known_plugin_says_how_to_install_it():
    assert registry.install_hint("world_models", "planet") == (
        "pip install ./plugins/wm_planet  (distribution 'wm-planet')"
    )
    with pytest.raises(registry.PluginNotFoundError, match="entry point named 'nosuch'"):
        registry.load("world_models", "nosuch")


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown kind 'planner'; kinds are: world_models"):
        registry.available("planner")


def test_broken_plugin_names_entry_point_distribution_and_cause(fake_distribution):
    assert {"fake_good", "fake_broken"} <= set(registry.available("planners"))
    with pytest.raises(registry.PluginLoadError) as caught:
        registry.load("planners", "fake_broken")
    message = str(caught.value)
    assert "'fake_broken = wm_fake_broken:Planner'" in message
    assert "wm-fake-plugin 1.0" in message
    assert "libfoo.so: cannot open shared object file" in message
    assert isinstance(caught.value.__cause__, ImportError)
    # The others keep working.
    assert registry.load("planners", "fake_good").__name__ == "Planner"
    assert registry.load("planners", "random") is Random
