"""wm: model-based reinforcement learning from pixels, with plugins.

The core is layered; a layer imports only the layers below it
(``tests/test_layers.py`` holds the order and checks it):

1. :mod:`wm_core.api` — the contracts, their checks, the hook specs and the
   plugin registry;
2. :mod:`wm_core.tasks` (environments, vector and process workers included)
   and :mod:`wm_core.data` (episode files, sampling);
3. :mod:`wm_core.planning` (planners, objectives) and :mod:`wm_core.models`
   (the ground-truth oracle, the base of model plugins);
4. :mod:`wm_core.rollout` (running planners in environments) and
   :mod:`wm_core.reporting` (hook plugins that report);
5. :mod:`wm_core.evaluation` (planning quality, scores against references);
6. :mod:`wm_core.loops` (the train-eval loop, the training scaffold, the
   learner process, config loading);
7. :mod:`wm_core.cli` (``wm-run``) and :mod:`wm_core.testing` (the contract kit).

It imports without TensorFlow; learned models live in plugins.
"""

from __future__ import annotations

from wm_core import deprecation
from wm_core.api.hooks import Hooks, hookimpl
from wm_core.reporting import quiet

deprecation.install()
quiet.install_from_environment()  # a process started by a quiet wm-run stays quiet

__version__ = "0.1.0"

__all__ = ["Hooks", "hookimpl", "__version__"]
