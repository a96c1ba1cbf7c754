"""Quiet by default (wm_core.reporting.quiet): no TensorFlow start-up lines unless ``--verbose``.

The end-to-end checks ride on runs other tests make anyway: ``wm-run plugins
--check`` (tests/test_cli.py) and a PlaNet run with its learner process
(tests/test_learner.py) assert :data:`wm_core.reporting.quiet.START_UP_LINES` finds nothing in their output.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pytest

from wm_core import cli
from wm_core.reporting import quiet


def test_a_child_of_a_quiet_process_imports_tensorflow_quietly(tmp_path):
    """What a child process does (``python -m wm_core...``: ``import wm_core`` first), with the
    variables a quiet ``wm-run`` leaves it.  A stand-in ``tensorflow`` writes a start-up line
    to file descriptor 2 as it loads, as TensorFlow's shared libraries do (the real one: the
    tests named in the module docs)."""
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text(
        "import os\nos.write(2, b'I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on.\\n')\n"
    )
    code = "import wm_core, tensorflow; print(tensorflow.__name__)"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    quiet_child, verbose_child = (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**env, quiet.QUIET_VARIABLE: value})
        for value in ("1", "0")
    )
    assert quiet_child.returncode == 0 and quiet_child.stdout == "tensorflow\n", quiet_child.stderr[-3000:]
    assert quiet_child.stderr == ""
    assert quiet.START_UP_LINES.search(verbose_child.stderr), verbose_child.stderr[-3000:]


@pytest.fixture
def clean_process_state(monkeypatch):
    """Undo what :func:`quiet.quiet` does to this process: variables and the import finder."""
    monkeypatch.delenv(quiet.QUIET_VARIABLE, raising=False)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))


COMMANDS = {
    "run": ["--gin_file", "no/such/config.gin", "--output_dir", "unused"],  # fails after the flag is read
    "plugins": ["plugins"],
    "evaluate": ["evaluate", "--run_dir", "no/such/run"],
    "learn": ["learn"],  # a usage error after the flag is read
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("verbose", [False, True])
def test_every_command_is_quiet_unless_verbose(
    command, verbose, clean_process_state, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # where "run" makes its output directory before it fails
    with contextlib.suppress(SystemExit):
        cli.main(COMMANDS[command] + (["--verbose"] if verbose else []))
    if verbose:  # children (a `wm-run learn` too) stay verbose
        assert os.environ[quiet.QUIET_VARIABLE] == "0" and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    else:
        assert os.environ[quiet.QUIET_VARIABLE] == "1"  # what child processes inherit
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == quiet.TF_LOG_LEVEL


def test_a_process_started_by_a_verbose_wm_run_stays_verbose(clean_process_state, monkeypatch):
    monkeypatch.setenv(quiet.QUIET_VARIABLE, "0")
    quiet.apply_verbose_flag(False)
    assert os.environ[quiet.QUIET_VARIABLE] == "0" and "TF_CPP_MIN_LOG_LEVEL" not in os.environ


def test_a_users_own_tensorflow_log_level_is_kept(clean_process_state, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    quiet.quiet()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"


def test_a_failed_quiet_import_shows_what_it_printed(capfd):
    """The captured start-up output is dropped on success and shown when the import raises."""
    with quiet._stderr_captured():
        os.write(2, b"dropped\n")
    with pytest.raises(ImportError), quiet._stderr_captured():
        os.write(2, b"why it failed\n")
        raise ImportError("broken")
    assert capfd.readouterr().err == "why it failed\n"
