from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator, event_file_loader

from wm_core.reporting import summaries
from wm_core.api.hooks import Hooks, create_plugin_manager
from wm_core.reporting.visualize import (
    TensorBoardPlugin,
    one_step_rewards,
    open_loop_decisions,
    open_loop_frames,
    visualize,
)

STEPS, SIZE, HORIZON = 5, 16, 3
# Pixel values on a 64-grid keep every frame (and every |error|) below 256
# colours, so GIF encoding is lossless and frames can be compared exactly.
LEVELS = np.array([0, 64, 128, 192], np.uint8)


def frames(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return LEVELS[rng.integers(0, len(LEVELS), (count, SIZE, SIZE, 3))]


def make_episode(rewards=(1.0, 2.0, 3.0, 4.0, 5.0), seed: int = 0) -> dict:
    steps = len(rewards)
    return {
        "image": frames(steps + 1, seed),
        "action": np.zeros((steps + 1, 1), np.float32),
        "reward": np.array([0.0, *rewards], np.float32),
    }


def make_prediction(first_reward: float, seed: int) -> dict:
    return {
        "reward": np.array([first_reward, 9.0, 9.0], np.float32),
        "image": frames(HORIZON, seed),
    }


def accumulator(summary_dir) -> event_accumulator.EventAccumulator:
    guidance = {kind: 0 for kind in event_accumulator.DEFAULT_SIZE_GUIDANCE}
    events = event_accumulator.EventAccumulator(str(summary_dir), size_guidance=guidance)
    events.Reload()
    return events


def scalars(events, tag) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in events.Scalars(tag)]


def decode_gif(encoded: bytes) -> list[np.ndarray]:
    gif = Image.open(io.BytesIO(encoded))
    decoded = []
    for index in range(gif.n_frames):
        gif.seek(index)
        decoded.append(np.asarray(gif.convert("RGB")))
    return decoded


pytestmark = pytest.mark.usefixtures("tensorboard_reader_without_tensorflow")


@pytest.fixture(autouse=True)
def close_writers(tmp_path):
    yield
    for root, _, files in os.walk(tmp_path):
        if any("tfevents" in name for name in files):
            summaries.close(root)


def test_scalars_are_written_with_their_values_at_global_step(tmp_path):
    visualize(tmp_path, 7, [make_episode()], None, {"score": 2.5, "timing/simulate": 0.25})
    events = accumulator(tmp_path)
    assert scalars(events, "score") == [(7, 2.5)]
    assert scalars(events, "timing/simulate") == [(7, 0.25)]


def test_event_file_is_named_tfevents_and_starts_with_file_version(tmp_path):
    visualize(tmp_path, 0, [], None, {"score": 1.0})
    (name,) = os.listdir(tmp_path)
    assert re.fullmatch(r"events\.out\.tfevents\.\d+\.[^.].*\.\d+\.\d+", name), name
    loaded = list(event_file_loader.EventFileLoader(str(tmp_path / name)).Load())
    assert loaded[0].file_version == "brain.Event:2"
    assert loaded[1].summary.value[0].tag == "score"


def test_a_new_event_file_sorts_after_the_files_already_there(tmp_path):
    # TensorBoard reads files in name order; a file from the same second (or
    # a clock behind) must still come last.
    future = int(time.time()) + 100
    (tmp_path / f"events.out.tfevents.{future}.otherhost.99999.0").write_bytes(b"")
    new = summaries.writer(tmp_path)
    assert os.path.basename(new.path).startswith(f"events.out.tfevents.{future + 1}.")
    assert sorted(os.listdir(tmp_path))[-1] == os.path.basename(new.path)


def test_episode_video_is_a_gif_of_every_frame(tmp_path):
    episode = make_episode()
    visualize(tmp_path, 3, [episode], None, {})
    (image,) = accumulator(tmp_path).Images("episode_0/video")
    assert (image.step, image.height, image.width) == (3, SIZE, SIZE)
    decoded = decode_gif(image.encoded_image_string)
    assert len(decoded) == STEPS + 1
    np.testing.assert_array_equal(np.stack(decoded), episode["image"])


def test_open_loop_video_shows_truth_prediction_and_error_side_by_side(tmp_path):
    episode = make_episode()
    predictions = [make_prediction(0.0, seed=10 + t) for t in range(STEPS)]
    visualize(tmp_path, 1, [episode], [predictions], {})
    events = accumulator(tmp_path)
    shown = sorted(tag for tag in events.Tags()["images"] if "open_loop" in tag)
    # The first decision with an image prediction and the middle one (5 // 2).
    assert shown == ["episode_0/open_loop/decision_0", "episode_0/open_loop/decision_2"]
    (image,) = events.Images("episode_0/open_loop/decision_2")
    assert (image.height, image.width) == (SIZE, 3 * SIZE)
    decoded = np.stack(decode_gif(image.encoded_image_string))
    assert decoded.shape == (HORIZON, SIZE, 3 * SIZE, 3)
    truth, predicted, error = np.split(decoded, 3, axis=2)
    np.testing.assert_array_equal(truth, episode["image"][3:6])  # rows t+1..t+H'
    np.testing.assert_array_equal(predicted, predictions[2]["image"])
    expected_error = np.abs(episode["image"][3:6].astype(int) - predictions[2]["image"])
    np.testing.assert_array_equal(error, expected_error)


def test_open_loop_frames_stop_at_the_episode_end():
    episode = make_episode()
    video = open_loop_frames(episode, make_prediction(0.0, seed=1), decision=4)
    assert video.shape == (1, SIZE, 3 * SIZE, 3)  # only row 5 exists after decision 4
    np.testing.assert_array_equal(video[0, :, :SIZE], episode["image"][5])


def test_open_loop_frames_resize_smaller_predictions_to_the_frame_size():
    episode = make_episode()
    small = {"reward": np.zeros(2, np.float32), "image": frames(2, seed=3)[:, :8, :8]}
    video = open_loop_frames(episode, small, decision=0)
    assert video.shape == (2, SIZE, 3 * SIZE, 3)
    np.testing.assert_array_equal(video[:, ::2, SIZE : 2 * SIZE : 2], small["image"])


def test_open_loop_decisions_skip_predictions_without_images():
    reward_only = {"reward": np.zeros(HORIZON, np.float32)}
    with_image = make_prediction(0.0, seed=1)
    assert open_loop_decisions([None, reward_only, with_image, with_image, with_image]) == [2]
    assert open_loop_decisions([None, reward_only, with_image, with_image, with_image, None]) == [2, 3]
    assert open_loop_decisions([None, reward_only, None]) == []


def test_reward_prediction_mse_pairs_each_prediction_with_the_next_row(tmp_path):
    # Decision t's reward[0] is compared with reward row t + 1.
    first = make_episode(rewards=(1.0, 2.0, 3.0, 4.0, 5.0))
    first_predictions = [make_prediction(r, seed=t) for t, r in enumerate([1.5, 2.0, 2.0, 4.0, 6.0])]
    first_predictions[1] = None  # the planner had no prediction at decision 1
    second = make_episode(rewards=(1.0, 1.0), seed=1)
    second_predictions = [make_prediction(1.0, seed=7), make_prediction(3.0, seed=8)]
    rows, true, predicted = one_step_rewards(first, first_predictions)
    np.testing.assert_array_equal(rows, [1, 3, 4, 5])
    np.testing.assert_array_equal(true, [1.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(predicted, [1.5, 2.0, 4.0, 6.0])
    visualize(tmp_path, 4, [first, second], [first_predictions, second_predictions], {})
    # (0.25 + 1 + 0 + 1) from the first episode, (0 + 4) from the second, over 6 pairs.
    ((step, mse),) = scalars(accumulator(tmp_path), "reward_prediction_mse")
    assert step == 4
    assert mse == pytest.approx(6.25 / 6, rel=1e-6)


def test_reward_plot_draws_true_and_predicted_rewards(tmp_path):
    predictions = [make_prediction(float(t), seed=t) for t in range(STEPS)]
    visualize(tmp_path, 2, [make_episode()], [predictions], {})
    (image,) = accumulator(tmp_path).Images("episode_0/reward")
    plot = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)).convert("RGB"))
    assert plot.shape == (image.height, image.width, 3) == (240, 480, 3)
    colours = {tuple(pixel) for pixel in plot.reshape(-1, 3)}
    assert (31, 119, 180) in colours  # the true reward line
    assert (255, 127, 14) in colours  # the predicted reward markers


def test_without_predictions_only_scalars_and_videos_are_written(tmp_path):
    visualize(tmp_path, 0, [make_episode()], [[None] * STEPS], {"score": 1.0})
    tags = accumulator(tmp_path).Tags()
    assert tags["images"] == ["episode_0/video"]
    assert tags["scalars"] == ["score"]


def test_predictions_must_match_the_episode_decisions(tmp_path):
    with pytest.raises(ValueError, match="episode 0 has 5 decisions .* but 4 predictions"):
        visualize(tmp_path, 0, [make_episode()], [[None] * 4], {})
    with pytest.raises(ValueError, match="2 lists for 1 episodes"):
        visualize(tmp_path, 0, [make_episode()], [[None] * STEPS] * 2, {})


def test_max_episodes_limits_videos_but_not_scalars(tmp_path):
    episodes = [make_episode(seed=s) for s in range(3)]
    visualize(tmp_path, 0, episodes, None, {"score": 1.0}, max_episodes=1)
    assert accumulator(tmp_path).Tags()["images"] == ["episode_0/video"]


def test_calls_append_to_one_file_and_a_new_process_adds_a_file(tmp_path):
    visualize(tmp_path, 1, [], None, {"score": 1.0})
    visualize(tmp_path, 2, [], None, {"score": 2.0})
    assert len(os.listdir(tmp_path)) == 1
    script = f"from wm_core.reporting.visualize import visualize\nvisualize({str(tmp_path)!r}, 3, [], None, {{'score': 3.0}})\n"
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert len(os.listdir(tmp_path)) == 2
    assert scalars(accumulator(tmp_path), "score") == [(1, 1.0), (2, 2.0), (3, 3.0)]


def test_visualize_does_not_import_tensorflow(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        from wm_core.reporting.visualize import visualize
        episode = {{"image": np.zeros((3, 8, 8, 3), np.uint8), "reward": np.zeros(3, np.float32)}}
        prediction = {{"reward": np.zeros(2, np.float32), "image": np.zeros((2, 8, 8, 3), np.uint8)}}
        visualize({str(tmp_path)!r}, 0, [episode], [[prediction, prediction]], {{"score": 0.0}})
        print(sorted(name for name in sys.modules if name.split(".")[0] == "tensorflow"))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], check=True, timeout=120, capture_output=True, text=True
    )
    assert result.stdout.strip() == "[]"
    assert len(accumulator(tmp_path).Tags()["images"]) == 4  # video, 2 open loop, reward plot


def plugin_hooks(plugin: TensorBoardPlugin) -> Hooks:
    return Hooks(create_plugin_manager(load_entry_points=False, plugins=(plugin,)))


def test_plugin_writes_nothing_before_run_configured(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hooks = plugin_hooks(TensorBoardPlugin())
    hooks.train_step(1, {"loss": 0.5})
    hooks.iteration_end("train", 5, [make_episode()], [[None] * STEPS], {"score": 1.0})
    hooks.run_end(str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_plugin_writes_config_train_scalars_and_phase_summaries(tmp_path):
    hooks = plugin_hooks(TensorBoardPlugin())
    hooks.run_configured(str(tmp_path), "# Parameters for simulate:\nwm.simulate.seed = 3\n")
    hooks.train_step(1, {"loss": 0.5})
    hooks.train_step(2, {"loss": 0.25, "kl": 1.0})
    predictions = [make_prediction(0.0, seed=t) for t in range(STEPS)]
    hooks.iteration_end("eval", 10, [make_episode()], [predictions], {"score": 3.0})
    hooks.run_end(str(tmp_path))
    hooks.train_step(3, {"loss": 0.125})  # after run_end: ignored

    model = accumulator(tmp_path / "summaries" / "model")
    assert scalars(model, "train/loss") == [(1, 0.5), (2, 0.25)]
    assert scalars(model, "train/kl") == [(2, 1.0)]
    evaluation = accumulator(tmp_path / "summaries" / "eval")
    assert scalars(evaluation, "score") == [(10, 3.0)]
    assert "episode_0/open_loop/decision_0" in evaluation.Tags()["images"]
    (config,) = accumulator(tmp_path / "summaries").Tensors("operative_config")
    text = config.tensor_proto.string_val[0].decode()
    assert text == "    # Parameters for simulate:\n    wm.simulate.seed = 3"


def test_a_resumed_run_appends_readable_events(tmp_path):
    for steps in ([1, 2], [3]):  # a second plugin instance, as after a restart
        hooks = plugin_hooks(TensorBoardPlugin())
        hooks.run_configured(str(tmp_path), "")
        for step in steps:
            hooks.train_step(step, {"loss": 1.0 / step})
        hooks.run_end(str(tmp_path))
    model_dir = tmp_path / "summaries" / "model"
    assert len(os.listdir(model_dir)) == 2
    assert scalars(accumulator(model_dir), "train/loss") == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]


def test_plugins_are_loaded_from_entry_points():
    manager = create_plugin_manager()
    assert isinstance(manager.get_plugin("tensorboard"), TensorBoardPlugin)
