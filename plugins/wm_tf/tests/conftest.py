"""TensorFlow as the plugins run it: oneDNN on unless chosen otherwise."""

from __future__ import annotations

from wm_tf.onednn import prefer_onednn

prefer_onednn()  # test modules import TensorFlow themselves, so set it here
