"""Headless rendering: pick a MuJoCo GL backend and resize frames.

MuJoCo (and so dm_control) chooses its OpenGL backend from the ``MUJOCO_GL``
environment variable when it is first imported.  :func:`configure_mujoco_gl`
sets it, before that import, to the first headless backend whose library is
installed (``egl``, then ``osmesa``); a value the user set is kept.
:func:`render_threads` sizes Mesa's render threads for processes that render
side by side.
"""

from __future__ import annotations

import ctypes.util
import os

import numpy as np

__all__ = [
    "GL_BACKENDS", "NoGLBackendError", "configure_mujoco_gl", "render_threads", "resize_image",
]

# Backend name -> (shared library it needs, apt packages that provide it).
GL_BACKENDS: dict[str, tuple[str, str]] = {
    "egl": ("EGL", "libegl1 libgl1-mesa-dri"),
    "osmesa": ("OSMesa", "libosmesa6"),
}


class NoGLBackendError(RuntimeError):
    """No headless OpenGL backend is available to render MuJoCo frames."""


def configure_mujoco_gl() -> str:
    """Set ``MUJOCO_GL`` (if unset) to an installed headless backend; return it.

    Call before importing ``mujoco`` rendering or ``dm_control``.  Raises
    :class:`NoGLBackendError` naming the backends tried and the apt packages
    that provide them when none is installed.
    """
    chosen = os.environ.get("MUJOCO_GL")
    if chosen:
        return chosen
    for backend, (library, _) in GL_BACKENDS.items():
        if ctypes.util.find_library(library):
            os.environ["MUJOCO_GL"] = backend
            return backend
    raise NoGLBackendError(no_backend_message())


def render_threads(workers: int) -> dict[str, str]:
    """Environment variables for each of ``workers`` processes that render at once.

    Mesa's llvmpipe (the software rasteriser behind EGL and OSMesa without a
    GPU) draws a frame with one thread per core (``LP_NUM_THREADS``).  One
    rendering process gains a little from that; several side by side do not,
    and the threads' hand-offs cost CPU (measured in ``docs/design.md``,
    "Several environments per run").  Each of ``workers`` processes gets
    ``cores // workers`` threads, none (``0``: render inline) where that is
    below 2.  Returns
    ``{"LP_NUM_THREADS": ...}`` to add to a worker's environment, or ``{}``
    when the user set ``LP_NUM_THREADS`` (theirs is kept).
    """
    if "LP_NUM_THREADS" in os.environ:
        return {}
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    threads = cores // max(1, workers)
    return {"LP_NUM_THREADS": str(threads if threads >= 2 else 0)}


def no_backend_message(error: BaseException | None = None) -> str:
    """What went wrong and how to fix it, for rendering failures."""
    tried = ", ".join(
        f"{backend} (lib{library}; apt-get install {packages})"
        for backend, (library, packages) in GL_BACKENDS.items()
    )
    current = os.environ.get("MUJOCO_GL", "<unset>")
    message = (
        f"cannot render MuJoCo frames headlessly (MUJOCO_GL={current}). "
        f"Backends tried: {tried}. Install one of them, or set MUJOCO_GL to a "
        "working backend before importing wm_core.tasks."
    )
    if error is not None:
        message += f" Original error: {type(error).__name__}: {error}"
    return message


def _area_weights(size_in: int, size_out: int) -> np.ndarray:
    """``float32 [size_out, size_in]``: how much of each input cell each output cell covers."""
    edges = np.linspace(0.0, size_in, size_out + 1)
    starts, ends = edges[:-1, None], edges[1:, None]
    cells = np.arange(size_in)[None, :]
    overlap = np.clip(np.minimum(ends, cells + 1) - np.maximum(starts, cells), 0.0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-average ``uint8 [H, W, C]`` to ``uint8 [h, w, C]`` (``size = (h, w)``)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected a uint8 [H, W, C] image, got {image.dtype} {image.shape}"
        )
    height, width = size
    if image.shape[:2] == (height, width):
        return image.copy()
    rows = _area_weights(image.shape[0], height)
    columns = _area_weights(image.shape[1], width)
    resized = np.einsum(
        "hH,HWc,wW->hwc", rows, image.astype(np.float32), columns, optimize=True
    )
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8)
