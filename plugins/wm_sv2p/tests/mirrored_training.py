"""Run as a script: SV2P trained under MirroredStrategy, then restored on one device.

TensorFlow splits the CPU into two logical devices only before it
initialises its devices, so this runs in its own process (see
``test_distributed.py``).  Argument: a directory of episodes.  Trains three
steps under a two-replica ``MirroredStrategy``, predicts with the proposals
split across the replicas, restores the checkpoint into a default-strategy
model, predicts the same proposals there, and prints a JSON object:
replica count, step, the reward decoder's statistics under both, and the
largest reward and frame differences between the two predictions.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from wm_core.data import npz  # noqa: E402
from wm_core.tasks.toy import PointTask  # noqa: E402
from wm_sv2p import SV2P, create_train_fn  # noqa: E402

TINY = dict(input_length=2, output_length=3, frame_size=(16, 16, 3), base_channels=4, num_masks=2)


def main() -> None:
    episodes_dir, model_dir = sys.argv[1], tempfile.mkdtemp()
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    distributed = SV2P(task=PointTask(), model_dir=model_dir, strategy=mirrored, **TINY)
    create_train_fn(distributed, train_steps=3, batch=4, strategy=mirrored)(episodes_dir)
    single = SV2P(task=PointTask(), model_dir=model_dir, **TINY)  # restores the checkpoint

    episode = npz.load_dictionaries(episodes_dir)[0]
    actions = np.random.default_rng(0).uniform(-1, 1, (5, 3, 1)).astype(np.float32)  # 5: uneven split
    predictions = []
    for model in (distributed, single):
        state = model.observe(episode["image"][:2], episode["action"][:2], episode["reward"][:2],
                              model.reset(seed=1))
        predictions.append(model.predict(actions, state, return_frames=True))
    decoders = [model.network.reward_decoder for model in (distributed, single)]
    print(json.dumps({
        "replicas": mirrored.num_replicas_in_sync,
        "step": int(single.step.numpy()),
        "statistics": [[float(d.offset.numpy()), float(d.scale.numpy())] for d in decoders],
        "max_reward_difference": float(np.max(np.abs(predictions[0]["reward"] - predictions[1]["reward"]))),
        "max_frame_difference": int(np.max(np.abs(
            predictions[0]["image"].astype(int) - predictions[1]["image"].astype(int)))),
    }))


if __name__ == "__main__":
    main()
