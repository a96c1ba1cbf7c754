from __future__ import annotations

import io
import re
import sys

import pytest

from wm_core.api.hooks import Hooks, create_plugin_manager
from wm_core.planning.planners import Random
from wm_core.reporting.progress import ProgressPlugin, progress_enabled
from wm_core.rollout.simulate import simulate
from wm_core.tasks.toy import PointTask

STEPS = 4


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def run_with(plugin: ProgressPlugin, episodes: int = 2) -> list:
    """Two episodes of ``STEPS`` decisions, three training steps, run end."""
    hooks = Hooks(create_plugin_manager(load_entry_points=False, plugins=(plugin,)))
    task = PointTask(length=STEPS, size=8)
    collected, _, _ = simulate(task, Random(task, seed=0), episodes, hooks=hooks)
    for step in (1, 2, 3):
        hooks.train_step(step, {"loss": 1.0 / step})
    hooks.run_end("unused")
    return collected


def stderr_terminal(monkeypatch) -> Terminal:
    """Make ``sys.stderr`` a terminal.  Call it inside the test body: pytest's
    capture swaps ``sys.stderr`` back between fixture setup and the call."""
    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


def plain_lines_match(output: str, episodes: list) -> None:
    """One line per episode with its decisions and score, then one per training stretch."""
    assert "\r" not in output  # no bar was drawn
    lines = output.splitlines()
    assert len(lines) == 3, lines
    for index, (line, episode) in enumerate(zip(lines, episodes)):
        score = f"{float(episode['reward'].sum()):.1f}"
        assert re.fullmatch(rf"train episode {index}: {STEPS} decisions, score {score}, \d+\.\d s", line), line
    assert re.fullmatch(r"train: steps 1-3, loss=0\.3333, \d+\.\d s", lines[2]), lines[2]


def test_ci_gets_plain_lines_even_on_a_terminal(monkeypatch):
    monkeypatch.setenv("CI", "true")
    terminal = stderr_terminal(monkeypatch)
    episodes = run_with(ProgressPlugin())
    plain_lines_match(terminal.getvalue(), episodes)


def test_a_terminal_outside_ci_gets_bars(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    terminal = stderr_terminal(monkeypatch)
    run_with(ProgressPlugin())
    assert "train episode 1: 4 decisions" in terminal.getvalue()
    assert "\r" in terminal.getvalue()


def test_stderr_that_is_not_a_terminal_gets_plain_lines(monkeypatch, capsys):
    monkeypatch.delenv("CI", raising=False)
    assert not progress_enabled(io.StringIO())
    episodes = run_with(ProgressPlugin())
    plain_lines_match(capsys.readouterr().err, episodes)


@pytest.mark.parametrize("value, enabled", [("", True), ("0", True), ("false", True), ("1", False)])
def test_ci_variable_values(monkeypatch, value, enabled):
    monkeypatch.setenv("CI", value)
    assert progress_enabled(Terminal()) is enabled


def final_lines(output: str) -> list[str]:
    """What a terminal shows last for each bar: the text after its last ``\\r``."""
    return [line.rsplit("\r", 1)[-1] for line in output.split("\n") if line.strip()]


def test_forced_bars_count_every_decision_and_show_the_score():
    stream = io.StringIO()
    episodes = run_with(ProgressPlugin(enabled=True, file=stream))
    lines = final_lines(stream.getvalue())
    assert len(lines) == 3  # two episodes, one training bar
    for index, (line, episode) in enumerate(zip(lines, episodes)):
        match = re.match(rf"train episode {index}: (\d+) decisions .*score=(\S+)\]", line)
        assert match, line
        assert int(match.group(1)) == STEPS == len(episode["image"]) - 1
        assert match.group(2) == f"{float(episode['reward'].sum()):.1f}"
    assert re.match(r"train: 3 steps .*loss=0\.3333\]", lines[2]), lines[2]


def test_training_bar_resumes_at_the_model_step():
    stream = io.StringIO()
    plugin = ProgressPlugin(enabled=True, file=stream)
    manager = create_plugin_manager(load_entry_points=False, plugins=(plugin,))
    for step in (101, 102):  # a world model restored at step 100 trains on
        manager.hook.wm_train_step(step=step, metrics={"loss": 0.5, "kl": 2.0})
    manager.hook.wm_run_end(output_dir="unused")
    (line,) = final_lines(stream.getvalue())
    assert re.match(r"train: 102 steps .*loss=0\.5, kl=2\]", line), line
