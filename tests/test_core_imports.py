"""wm_core without its heavy back-ends: every module imports, and a missing extra names itself.

A fresh interpreter (subprocess) gets an import blocker on ``sys.meta_path``
for TensorFlow, tf-keras, TensorFlow Probability, Ray, dm-control, MuJoCo and
ale-py, as if ``pip install wm-core`` had run with no extras and no model
plugin.  Then every module that ``pkgutil.walk_packages`` finds under
``wm_core`` must import.  And ``pip install wm-core`` (no extras) must not
install those back-ends: its requirements are followed through the
installed distributions' metadata.
"""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
import subprocess
import sys
import textwrap
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

BLOCKED = ("tensorflow", "tf_keras", "tensorflow_probability", "ray", "dm_control", "mujoco",
           "ale_py")

#: The distributions behind ``BLOCKED``: only extras and model plugins may pull them in.
HEAVY = {"tensorflow", "tf-keras", "tensorflow-probability", "ray", "dm-control", "mujoco", "ale-py"}

BLOCKER = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys

    BLOCKED = {blocked!r}

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
    """
)

WALK = BLOCKER + textwrap.dedent(
    """
    import wm_core

    failures = {{}}
    names = []

    def record(name):
        failures[name] = repr(sys.exc_info()[1])

    for info in pkgutil.walk_packages(wm_core.__path__, "wm_core.", onerror=record):
        names.append(info.name)
        try:
            importlib.import_module(info.name)
        except Exception as error:
            failures[info.name] = repr(error)
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
    print(json.dumps({{"names": names, "failures": failures, "loaded": loaded}}))
    """
)

MISSING_EXTRAS = BLOCKER + textwrap.dedent(
    """
    from wm_core.tasks import Atari, DeepMindControl
    from wm_core.ray_collect import import_ray

    messages = {{}}
    for name, make in (
        ("dmc", lambda: DeepMindControl("cartpole", "swingup", in_worker=False).create_env()),
        ("atari", lambda: Atari("pong").create_env()),
        ("ray", import_ray),
    ):
        try:
            make()
        except ImportError as error:
            messages[name] = str(error)
    print(json.dumps(messages))
    """
)


def run_blocked(code: str) -> dict:
    """The JSON that ``code`` prints as its last line, run in a fresh interpreter."""
    completed = subprocess.run(
        [sys.executable, "-c", code.format(blocked=BLOCKED)],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_every_core_module_imports_without_the_heavy_back_ends():
    result = run_blocked(WALK)
    assert result["failures"] == {}
    assert result["loaded"] == []
    # the walk saw the whole package, subpackages included
    assert {"wm_core.cli", "wm_core.tasks.dmc", "wm_core.tasks.atari", "wm_core.ray_collect",
            "wm_core.reporting.summaries"} <= set(result["names"])


def test_a_missing_extra_names_the_extra_to_install():
    messages = run_blocked(MISSING_EXTRAS)
    assert set(messages) == {"dmc", "atari", "ray"}
    assert "pip install 'wm-core[dmc]'" in messages["dmc"]
    assert "pip install 'wm-core[atari]'" in messages["atari"]
    assert "pip install 'wm-core[ray]'" in messages["ray"]


def requirement_closure(requirements: list[str]) -> set[str]:
    """The distributions ``requirements`` install, followed through installed metadata
    (extras only where a requirement asks for them; requirements not installed end a branch)."""
    found: set[tuple[str, frozenset[str]]] = set()
    pending = [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in found:
            continue
        found.add(key)
        try:
            requires = importlib.metadata.distribution(requirement.name).requires or []
        except importlib.metadata.PackageNotFoundError:
            continue
        environments = [{"extra": extra} for extra in requirement.extras] or [{"extra": ""}]
        for text in requires:
            nested = Requirement(text)
            if nested.marker is None or any(nested.marker.evaluate(e) for e in environments):
                pending.append(nested)
    return {name for name, _ in found}


def test_wm_core_without_extras_installs_no_heavy_back_end():
    project = tomllib.loads((pathlib.Path(__file__).parents[1] / "pyproject.toml").read_text())
    installed = requirement_closure(project["project"]["dependencies"])
    assert {"numpy", "gin-config", "tensorboard", "protobuf"} <= installed  # the walk went deep
    assert installed & HEAVY == set()
    extras = project["project"]["optional-dependencies"]
    assert {"dm-control", "mujoco"} <= requirement_closure(extras["dmc"])
    assert "ale-py" in requirement_closure(extras["atari"])
    assert "ray" in requirement_closure(extras["ray"])
