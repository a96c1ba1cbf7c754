"""The helpers' old homes in wm_core keep working, with a DeprecationWarning naming the new one."""

from __future__ import annotations

import importlib
import sys

import pytest

import wm_tf.checkpoints
import wm_tf.distributed
import wm_tf.onednn
import wm_tf.replicas


@pytest.mark.parametrize(
    "old, new", [("wm_core.onednn", wm_tf.onednn), ("wm_core.distributed", wm_tf.distributed)]
)
def test_an_old_module_path_is_the_new_module(monkeypatch, old, new):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new.__name__}"):
        module = importlib.import_module(old)
    assert module is new


@pytest.mark.parametrize(
    "name, module",
    [
        ("split_across_replicas", wm_tf.replicas),
        ("pad_to_multiple", wm_tf.replicas),
        ("TrainingCheckpoints", wm_tf.checkpoints),
        ("CheckpointWatcher", wm_tf.checkpoints),
    ],
)
def test_an_old_tf_helpers_name_is_the_new_object(name, module):
    from wm_core import tf_helpers

    with pytest.warns(DeprecationWarning, match=f"wm_core.tf_helpers.{name} moved to "
                      f"{module.__name__}.{name}"):
        moved = getattr(tf_helpers, name)
    assert moved is getattr(module, name)


def test_old_peer_names_stay_reachable_through_the_old_module():
    from wm_core import peers

    for name in ("PeerUnreachableError", "parse_address", "wait_until_reachable",
                 "free_local_ports"):
        assert getattr(wm_tf.distributed, name) is getattr(peers, name)
