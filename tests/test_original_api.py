"""The original World Models Library's API, as its notebook and gin example write it.

``tests/data/world_models_library.md`` is the original library's notebook and
gin example, verbatim.  The notebook's code cells run as written except for
what :data:`IMPORTS`, :data:`TINY_SIZES`, :data:`TINY_CALLS` and the output
folder change; IPython magics (``%tensorboard``) are left out.  The gin example
is parsed with only its import line changed.
"""

from __future__ import annotations

import ast
import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent
ORIGINAL = (ROOT / "data" / "world_models_library.md").read_text()

# The notebook's "Imports" cell, with wm's module paths.
IMPORTS = """\
import tensorflow as tf
from wm_cem import planners
from wm_core import tasks
from wm_core.data import npz
from wm_core.loops import train_eval
from wm_core.planning import objectives
from wm_core.rollout import simulate
from wm_planet import planet
"""
# Each assignment of the notebook to a size, and the tiny size it gets here.
TINY_SIZES = {
    "train_steps": 3, "batch": 4, "duration": 4, "horizon": 3, "iterations": 2, "proposals": 20,
    "random_cold_start_episodes": 2, "eval_every_n_iters": 1, "num_iters": 1,
}
# Calls whose sizes are arguments: a short episode, a small network.
TINY_CALLS = {
    "action_repeat=4)": "action_repeat=4, time_limit=0.25)",
    "planet.RecurrentStateSpaceModel(task=task)": (
        "planet.RecurrentStateSpaceModel(task=task, deter_size=16, stoch_size=4, hidden_size=16,"
        " embed_size=64, depth=4)"
    ),
}


def notebook_cells(text: str) -> list[str]:
    """The code of each ``In [None]:`` cell: the longest run of its lines (up to a
    blank line) that parses as Python, with IPython's ``%`` lines left out."""
    cells = []
    for chunk in text.split("In [None]:")[1:]:
        chunk = chunk.split("\n## ")[0]
        blocks = chunk.strip("\n").split("\n\n")
        code = [line for line in "\n\n".join(blocks).splitlines() if not line.startswith("%")]
        for end in range(len(blocks), 0, -1):
            candidate = "\n".join(
                line for line in "\n\n".join(blocks[:end]).splitlines() if not line.startswith("%")
            )
            try:
                ast.parse(candidate)
            except SyntaxError:
                continue
            code = candidate
            break
        cells.append(code.strip("\n"))
    return [cell for cell in cells if cell]


def tiny_notebook(output_dir: pathlib.Path) -> str:
    cells = notebook_cells(ORIGINAL)
    assert cells[0].startswith("#@title Imports"), cells[0]
    source = "\n\n".join([IMPORTS, *cells[1:]])
    for name, size in TINY_SIZES.items():
        source, count = re.subn(rf"^{name} = \d+", f"{name} = {size}", source, flags=re.MULTILINE)
        assert count == 1, f"the notebook assigns {name} {count} times"
    for call, tiny in TINY_CALLS.items():
        assert source.count(call) == 1, call
        source = source.replace(call, tiny)
    return source.replace("/tmp/experiment", str(output_dir))


def test_the_notebook_has_nine_cells_of_code():
    cells = notebook_cells(ORIGINAL)
    assert len(cells) == 9  # 13 cells; four hold only a %tensorboard magic
    assert cells[-1].startswith("train_episodes_per_iter = 1")
    assert "train_eval.train_eval_loop(task=task," in cells[-1]


@pytest.mark.slow
def test_the_original_notebook_runs_as_written(tmp_path):
    pytest.importorskip("wm_planet")
    pytest.importorskip("wm_cem")
    report = (
        "\nimport json\n"
        "print(json.dumps({'eval_score': float(score), 'eval_return': float(episode[0]['reward'].sum()),"
        " 'cold_start_returns': [float(e['reward'].sum()) for e in episodes]}))\n"
    )
    script = tmp_path / "notebook.py"
    script.write_text(tiny_notebook(tmp_path) + report)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])

    from wm_core.data import npz

    train_paths = npz.episode_paths(str(tmp_path / "data" / "train"))
    assert len(train_paths) == 2  # the two random cold-start episodes, saved by npz.save_dictionaries
    saved = [npz.load_episode(path) for path in train_paths]
    np.testing.assert_allclose(sorted(float(e["reward"].sum()) for e in saved),
                               sorted(figures["cold_start_returns"]), rtol=1e-6)
    assert figures["eval_score"] == pytest.approx(figures["eval_return"], rel=1e-5)
    loop = tmp_path / "loop"
    assert json.loads((loop / "loop_state.json").read_text()) == {"completed_iterations": 1}
    assert len(npz.episode_paths(str(loop / "data" / "train"))) >= 1
    # train_fn was made with the first model_dir; the loop's model_dir only names where it looks.
    assert list((tmp_path / "model").glob("ckpt-*")), "train_fn wrote no checkpoint"
    for summaries in ("train", "eval"):
        assert list((tmp_path / summaries).glob("events.out.tfevents.*"))


GIN_EXAMPLE = ORIGINAL.split("```\n")[1].split("```")[0]


def test_the_original_gin_example_builds_the_planet_functions(tmp_path):
    pytest.importorskip("wm_planet")
    import gin

    from wm_core.tasks.toy import PointTask

    original_import = "import google3.learning.brain.research.world_models.api.agents.planet\n"
    assert GIN_EXAMPLE.startswith(original_import)
    config = GIN_EXAMPLE.replace(original_import, "import wm_planet.planet\n")
    gin.clear_config()
    try:
        gin.bind_parameter("%TASK", PointTask())
        gin.bind_parameter("%model_dir", str(tmp_path / "model"))
        gin.parse_config(config)
        from wm_planet import planet

        train_fn = planet.create_planet_train_fn()
        model = gin.query_parameter("%MODEL").scoped_configurable_fn()
        assert gin.query_parameter("create_planet_train_fn.duration") == 50
        assert (train_fn.train_steps, train_fn.batch, train_fn.chunk_length) == (100, 50, 50)
        assert train_fn.trainer.model is model  # the singleton, as the example's comment says
        assert model.frame_size == (64, 64, 3) and model.reward_stop_gradient is False
        predict_fn = planet.create_planet_predict_fn()
        reset_fn = planet.create_planet_reset_fn()
        state = reset_fn()
        actions = np.zeros((3, 2, model.action_dim), np.float32)
        assert predict_fn(actions, state)["reward"].shape == (3, 2)
    finally:
        gin.clear_config()


def test_duration_and_its_later_name_chunk_length_both_set_the_sequence_length(tmp_path):
    pytest.importorskip("wm_planet")
    from wm_core.tasks.toy import PointTask
    from wm_planet import planet

    model = planet.RecurrentStateSpaceModel(task=PointTask(), deter_size=8, stoch_size=2,
                                            hidden_size=8, embed_size=32, depth=2)
    arguments = dict(model=model, train_steps=1, batch=2, learning_rate=1e-3,
                     model_dir=str(tmp_path))
    assert planet.create_planet_train_fn(duration=7, **arguments).chunk_length == 7
    assert planet.create_planet_train_fn(model, 1, 2, 6, 1e-3, str(tmp_path)).chunk_length == 6
    with pytest.warns(DeprecationWarning, match=r"chunk_length=\.\.\.\) is renamed duration"):
        assert planet.create_planet_train_fn(chunk_length=5, **arguments).chunk_length == 5
    with pytest.raises(TypeError, match="'duration' and its old name 'chunk_length'"):
        planet.create_planet_train_fn(duration=5, chunk_length=5, **arguments)
