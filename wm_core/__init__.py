"""wm: model-based reinforcement learning from pixels, with plugins.

The core holds the contracts (:mod:`wm_core.contracts`), the plugin registry
(:mod:`wm_core.registry`), the lifecycle hooks (:mod:`wm_core.hooks`), and the
built-in tasks, objectives, planners and loops.  It imports without
TensorFlow; models live in plugins.
"""

from __future__ import annotations

from wm_core import deprecation
from wm_core.hooks import Hooks, hookimpl

deprecation.install()

__version__ = "0.1.0"

__all__ = ["Hooks", "hookimpl", "__version__"]
