"""examples/quickstart.py — the original World Models Library notebook's flow — runs from start to end."""

from __future__ import annotations

import glob
import json
import pathlib
import subprocess
import sys

import pytest

from wm_core.data import npz

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quickstart_runs_the_notebook_flow(tmp_path):
    pytest.importorskip("wm_planet")
    pytest.importorskip("wm_cem")
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--tiny", "--output_dir", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(npz.episode_paths(str(tmp_path / "data" / "train"))) == 2
    assert json.loads((tmp_path / "loop_state.json").read_text()) == {"completed_iterations": 1}
    assert glob.glob(str(tmp_path / "model" / "ckpt-*"))
    for phase in ("train", "eval"):
        assert glob.glob(str(tmp_path / phase / "events.out.tfevents.*"))
