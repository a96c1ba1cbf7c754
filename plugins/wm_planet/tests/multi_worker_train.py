"""Run as a script: a tiny PlaNet trained deterministically through the public train_fn, twice.

One JSON argument: ``sizes`` (model sizes), ``episodes_dir``, ``model_dir``,
``out_dir``, ``steps`` (phase 1), ``resume_steps`` (phase 2), ``batch``,
``chunk_length``, ``initial_weights`` (an ``.npz`` to start from; written
from this process's fresh model when it does not exist), and
``multi_worker`` (then ``TF_CONFIG`` in the environment names the cluster;
the strategy is :func:`wm_tf.distributed.multi_worker_strategy`, created
before any other TensorFlow work, as collective ops must be configured at
start-up).

Phase 1 trains ``steps`` steps from the initial weights (a checkpoint is
written to ``model_dir``).  Phase 2 is a restart: a new model and a new
train_fn on the same ``model_dir`` (which restores the newest checkpoint),
``resume_steps`` more steps.  Writes ``<out_dir>/phase<N>.npz`` (the
trained variables, by index) and ``<out_dir>/result.json`` (per-step
metrics of each phase, the strategy's replica count, whether this task
checkpoints).  See ``test_multi_worker.py``.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    settings = json.loads(sys.argv[1])
    strategy = None
    if settings.get("multi_worker"):
        from wm_tf.distributed import multi_worker_strategy

        strategy = multi_worker_strategy(peer_timeout_s=settings.get("peer_timeout_s", 120))

    import numpy as np
    import tensorflow as tf

    from wm_core.api.hooks import Hooks, create_plugin_manager, hookimpl, use_hooks
    from wm_core.tasks.toy import PointTask
    from wm_planet import planet

    class StepRecorder:
        def __init__(self):
            self.metrics = []

        @hookimpl
        def wm_train_step(self, step, metrics):
            self.metrics.append({"step": int(step), **{k: float(v) for k, v in metrics.items()}})

    out_dir = settings["out_dir"]
    os.makedirs(out_dir, exist_ok=True)
    result = {"phases": []}
    for phase, steps in enumerate((settings["steps"], settings["resume_steps"]), start=1):
        model = planet.RecurrentStateSpaceModel(task=PointTask(length=20), **settings["sizes"])
        model.build(strategy)
        variables = model.trainable_variables
        if phase == 1:
            initial = settings["initial_weights"]
            if os.path.exists(initial):
                with np.load(initial) as saved:
                    for index, variable in enumerate(variables):
                        variable.assign(saved[str(index)])
            else:
                np.savez(initial, **{str(i): v.numpy() for i, v in enumerate(variables)})
        train_fn = planet.create_planet_train_fn(
            model, train_steps=steps, batch=settings["batch"],
            duration=settings["chunk_length"], learning_rate=1e-3,
            model_dir=settings["model_dir"], strategy=strategy, stochastic=False, seed=0,
        )
        recorder = StepRecorder()
        with use_hooks(Hooks(create_plugin_manager(load_entry_points=False, plugins=(recorder,)))):
            train_fn(settings["episodes_dir"])
        np.savez(os.path.join(out_dir, f"phase{phase}.npz"),
                 **{str(i): v.numpy() for i, v in enumerate(variables)})
        result["phases"].append(recorder.metrics)
    active = strategy or tf.distribute.get_strategy()
    result["replicas"] = active.num_replicas_in_sync
    result["should_checkpoint"] = bool(active.extended.should_checkpoint)
    with open(os.path.join(out_dir, "result.json"), "w") as file:
        json.dump(result, file)


if __name__ == "__main__":
    main()
