"""Public names that moved keep working, with a DeprecationWarning naming the new place."""

from __future__ import annotations

import importlib
import re
import sys
import warnings

import pytest

from wm_core.deprecation import MOVED_MODULES


def _forget(old: str) -> None:
    """Make the next import of ``old`` go through the import hook again."""
    sys.modules.pop(old, None)
    parent, _, child = old.rpartition(".")
    if parent in sys.modules and child in vars(sys.modules[parent]):
        delattr(sys.modules[parent], child)


@pytest.mark.parametrize("old, new", sorted(MOVED_MODULES.items()))
def test_an_old_module_path_warns_and_is_the_new_module(old, new):
    pytest.importorskip(new.partition(".")[0])  # a path into another distribution needs it installed
    new_module = importlib.import_module(new)
    _forget(old)
    with pytest.warns(DeprecationWarning, match=f"^{re.escape(old)} moved to {re.escape(new)}"):
        old_module = importlib.import_module(old)
    assert old_module is new_module


def test_from_package_import_an_old_module_warns_too():
    _forget("wm_core.training")
    with pytest.warns(DeprecationWarning, match="wm_core.training moved to wm_core.loops.training"):
        from wm_core import training
    assert training is importlib.import_module("wm_core.loops.training")


@pytest.mark.parametrize("old_module, name, new", [
    ("wm_core.loops.training", "Learner", "wm_core.loops.training.Trainer"),
    ("wm_core.loops.learner", "configure_run", "wm_core.loops.config.configure_run"),
    ("wm_core.loops.learner", "loop_setting", "wm_core.loops.config.loop_setting"),
    ("wm_core.cli", "configure", "wm_core.loops.config.configure"),
    ("wm_core.cli", "ConfigError", "wm_core.loops.config.ConfigError"),
    ("wm_core.cli", "PluginMissing", "wm_core.loops.config.PluginMissing"),
    ("wm_core.cli", "required_plugins", "wm_core.loops.config.required_plugins"),
    ("wm_core.cli", "seed_global_generators", "wm_core.loops.config.seed_global_generators"),
    ("wm_core.cli", "run", "wm_core.loops.train_eval.run_experiment"),
    ("wm_core.cli", "evaluate", "wm_core.loops.run_evaluation.evaluate_run"),
])
def test_a_moved_or_renamed_name_warns_and_is_the_new_object(old_module, name, new):
    module = importlib.import_module(old_module)
    new_module, _, new_name = new.rpartition(".")
    with pytest.warns(DeprecationWarning, match=f"{re.escape(old_module)}.{name} moved to {re.escape(new)}"):
        old = getattr(module, name)
    assert old is getattr(importlib.import_module(new_module), new_name)


def test_an_unknown_name_is_still_an_attribute_error():
    from wm_core.loops import training

    with pytest.raises(AttributeError, match="has no attribute 'Learnr'"):
        training.Learnr


def test_the_train_loops_old_keyword_and_attribute_warn():
    from wm_core.loops.training import TrainLoop

    class Trainer:
        step = 0

    trainer = Trainer()
    with pytest.warns(DeprecationWarning, match="learner=.*renamed trainer="):
        loop = TrainLoop(learner=trainer, train_steps=1, batch=1, chunk_length=1)
    with pytest.warns(DeprecationWarning, match="TrainLoop.learner moved to TrainLoop.trainer"):
        assert loop.learner is trainer
    assert loop.trainer is trainer


def test_train_eval_visualize_is_the_original_api_without_a_warning():
    from wm_core.reporting.visualize import visualize

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from wm_core.loops import train_eval

        assert train_eval.visualize is visualize
