"""Colored noise: unit variance, correlation along the horizon growing with beta."""

from __future__ import annotations

import numpy as np
import pytest

from wm_cem.noise import colored_noise


def lag_one_correlation(noise: np.ndarray) -> float:
    return float(np.mean(noise[:, 1:] * noise[:, :-1]))


@pytest.mark.parametrize("horizon", [1, 2, 7, 12])
@pytest.mark.parametrize("beta", [0.0, 1.0, 2.5])
def test_noise_has_unit_variance_and_zero_mean(horizon, beta):
    noise = colored_noise(np.random.default_rng(0), beta, 20000, horizon, 2)
    assert noise.shape == (20000, horizon, 2) and noise.dtype == np.float32
    assert abs(noise.mean()) < 0.03
    assert noise.var() == pytest.approx(1.0, abs=0.04)


def test_white_noise_is_uncorrelated_and_red_noise_smooth():
    rng = np.random.default_rng(1)
    white = lag_one_correlation(colored_noise(rng, 0.0, 20000, 12, 1))
    pink = lag_one_correlation(colored_noise(rng, 1.0, 20000, 12, 1))
    red = lag_one_correlation(colored_noise(rng, 2.0, 20000, 12, 1))
    assert abs(white) < 0.02
    assert 0.3 < pink < red
    assert red > 0.6


def test_action_dimensions_are_independent():
    noise = colored_noise(np.random.default_rng(2), 2.0, 20000, 12, 2)
    assert abs(np.mean(noise[..., 0] * noise[..., 1])) < 0.03


def test_negative_beta_is_rejected():
    with pytest.raises(ValueError, match="beta must be >= 0, got -1"):
        colored_noise(np.random.default_rng(0), -1, 2, 3, 1)
