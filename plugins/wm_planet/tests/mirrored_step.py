"""Run as a script: one deterministic train step, single device vs MirroredStrategy.

TensorFlow splits the CPU into two logical devices only before it
initialises its devices, so this runs in its own process (see
``test_distributed.py``).  Prints a JSON object with both steps' metrics, the
largest difference between the updated weights and between the two models'
reward predictions (observe + predict under each strategy), and the metrics
of one published (sampling) step under the mirrored strategy.
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

from wm_core.tasks.toy import PointTask  # noqa: E402
from wm_planet import planet  # noqa: E402
from wm_planet.model import RecurrentStateSpaceModel  # noqa: E402
from wm_planet.training import Trainer  # noqa: E402


def main() -> None:
    tiny = json.loads(sys.argv[1])
    task = PointTask()
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.integers(0, 256, (4, 6, 64, 64, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (4, 6, 1)).astype(np.float32),
        "reward": rng.normal(size=(4, 6)).astype(np.float32),
    }
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    single, distributed = (RecurrentStateSpaceModel(task=task, **tiny) for _ in range(2))
    single.build()
    distributed.build(mirrored)
    for source, target in zip(single.trainable_variables, distributed.trainable_variables):
        target.assign(source.numpy())
    results = {"replicas": mirrored.num_replicas_in_sync}
    for name, model, strategy in (("single", single, None), ("mirrored", distributed, mirrored)):
        trainer = Trainer(model, tempfile.mkdtemp(), strategy=strategy, stochastic=False)
        results[name] = trainer.train_step(batch)
    results["max_weight_difference"] = max(
        float(np.max(np.abs(a.numpy() - b.numpy())))
        for a, b in zip(single.trainable_variables, distributed.trainable_variables)
    )
    predictions = []
    for model, strategy in ((single, None), (distributed, mirrored)):
        state = planet.create_planet_observe_fn(model, tempfile.mkdtemp(), strategy, sample=False)(
            batch["image"][0], batch["action"][0], batch["reward"][0],
            planet.create_planet_reset_fn(model)(),
        )
        predict_fn = planet.create_planet_predict_fn(model, strategy, sample=False)
        predictions.append(predict_fn(batch["action"][1:, :3], state)["reward"])
    results["max_reward_prediction_difference"] = float(np.max(np.abs(predictions[0] - predictions[1])))
    sampling = Trainer(distributed, tempfile.mkdtemp(), strategy=mirrored, stochastic=True)
    results["mirrored_sampling"] = sampling.train_step(batch)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
