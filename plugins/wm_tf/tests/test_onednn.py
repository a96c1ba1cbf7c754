"""TensorFlow's oneDNN kernels: on by default for the TensorFlow plugins, unless the user chose."""

from __future__ import annotations

import os
import subprocess
import sys

from wm_tf import onednn


def test_sets_the_variable_when_tensorflow_is_not_imported(monkeypatch):
    monkeypatch.delenv(onednn.VARIABLE, raising=False)
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    onednn.prefer_onednn()
    assert os.environ[onednn.VARIABLE] == "1"


def test_keeps_the_users_choice(monkeypatch):
    monkeypatch.setenv(onednn.VARIABLE, "0")
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    onednn.prefer_onednn()
    assert os.environ[onednn.VARIABLE] == "0"


def test_leaves_the_variable_unset_once_tensorflow_is_imported(monkeypatch):
    """Child processes inherit the variable: they must compute like this process."""
    monkeypatch.delenv(onednn.VARIABLE, raising=False)
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    onednn.prefer_onednn()
    assert onednn.VARIABLE not in os.environ


def test_importing_a_tensorflow_plugin_first_runs_tensorflow_with_onednn():
    code = (
        "import os, wm_planet, wm_sv2p\n"
        "from tensorflow.python.util import _pywrap_util_port\n"
        "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], _pywrap_util_port.IsMklEnabled())\n"
    )
    env = {key: value for key, value in os.environ.items() if key != onednn.VARIABLE}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["1", "True"]
