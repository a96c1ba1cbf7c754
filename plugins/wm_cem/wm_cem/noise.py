"""Colored (power-law) Gaussian noise along the planning horizon (for iCEM).

Noise with power spectral density ``PSD(f) ∝ 1 / f**beta``: ``beta = 0`` is
white noise, ``beta = 1`` pink, ``beta = 2`` red (Brownian-like), smoother
action sequences as ``beta`` grows (Pinneri et al. 2020, "Sample-efficient
Cross-Entropy Method for Real-time Planning").

Built in the frequency domain: independent complex Gaussian coefficients
scaled by ``f**(-beta/2)`` (the zero frequency gets the lowest non-zero
frequency's scale), transformed back with a real inverse FFT over the
horizon, and divided by the exact standard deviation of that construction,
so each entry has expectation zero and variance one.
"""

from __future__ import annotations

import numpy as np

__all__ = ["colored_noise"]


def _spectrum_scale(horizon: int, beta: float) -> tuple[np.ndarray, float]:
    """Per-frequency amplitude ``[horizon // 2 + 1]`` and the resulting stdev."""
    frequencies = np.fft.rfftfreq(horizon)
    frequencies[0] = frequencies[1] if horizon > 1 else 1.0
    scale = frequencies ** (-beta / 2.0)
    # Variance of one output sample: the zero (and, for even horizons, the
    # Nyquist) coefficient is real with variance 2 * scale**2 and enters once;
    # every other coefficient enters as 2 * Re(.), contributing 4 * scale**2.
    contribution = np.full(scale.shape, 4.0)
    contribution[0] = 2.0
    if horizon % 2 == 0 and horizon > 1:
        contribution[-1] = 2.0
    stdev = float(np.sqrt(np.sum(contribution * scale**2)) / horizon)
    return scale, stdev


def colored_noise(
    rng: np.random.Generator, beta: float, count: int, horizon: int, dim: int
) -> np.ndarray:
    """Unit-variance power-law noise, ``float32 [count, horizon, dim]``.

    Correlated along ``horizon`` only; independent across ``count`` and
    ``dim``.
    """
    if beta < 0:
        raise ValueError(f"noise exponent beta must be >= 0, got {beta}")
    scale, stdev = _spectrum_scale(horizon, beta)
    shape = (count, dim, scale.size)
    real = rng.standard_normal(shape)
    imaginary = rng.standard_normal(shape)
    real[..., 0] *= np.sqrt(2.0)
    imaginary[..., 0] = 0.0
    if horizon % 2 == 0 and horizon > 1:
        real[..., -1] *= np.sqrt(2.0)
        imaginary[..., -1] = 0.0
    signal = np.fft.irfft(scale * (real + 1j * imaginary), n=horizon, axis=-1)
    return (signal / stdev).transpose(0, 2, 1).astype(np.float32)
