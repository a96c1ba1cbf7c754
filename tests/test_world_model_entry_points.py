"""Every installed ``wm.world_models`` entry point, made by name, honours the contract.

Each runs in its own process: model plugins import TensorFlow, which the core
test process never loads (see wm_core/tasks/process.py).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from wm_core.api import registry

CHECK = textwrap.dedent("""
    import sys
    from wm_core import testing
    from wm_core.api import registry
    from wm_core.tasks.toy import PointTask
    task = PointTask(length=5)
    testing.check_world_model(registry.make("world_models", sys.argv[1], task=task), task)
    print("contract honoured")
""")


@pytest.mark.parametrize("name", registry.available("world_models"))
def test_world_model_made_by_name_honours_the_contract(name):
    result = subprocess.run([sys.executable, "-c", CHECK, name], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("contract honoured")


def test_every_shipped_world_model_is_installed():
    assert {"oracle", "planet", "sv2p"} <= set(registry.available("world_models"))
