"""wm-tf: what wm's TensorFlow model plugins share.

* :mod:`wm_tf.onednn` — TensorFlow's oneDNN CPU kernels on unless the user
  chose (call :func:`~wm_tf.onednn.prefer_onednn` before importing TensorFlow).
* :mod:`wm_tf.images` — ``uint8`` frames to and from a model's ``float32`` space.
* :mod:`wm_tf.replicas` — batches split across a strategy's replicas.
* :mod:`wm_tf.checkpoints` — checkpoints written under a strategy and picked up by observe.
* :mod:`wm_tf.distributed` — ``TF_CONFIG`` and ``MultiWorkerMirroredStrategy``
  without hanging on a missing peer.

Importing this package imports no TensorFlow; each module imports it when
it needs it (``onednn`` and ``distributed`` never at import).
"""

from __future__ import annotations

__version__ = "0.1.0"
