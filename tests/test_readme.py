"""The README's Python snippets run as written (each in its own process)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = [textwrap.dedent(snippet)  # a snippet inside a list item is indented
            for snippet in re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)]


def test_the_readme_has_python_snippets():
    assert SNIPPETS


@pytest.mark.slow
@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_readme_snippet_runs_as_written(snippet):
    result = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")})
    assert result.returncode == 0, result.stderr[-3000:]
