"""The circuit's elementary functions, shared by every level and by the metrics.

D_u (ReLU), the loss F and the top error hbar^K = -dF/dy_hat are part of the circuit's
description (model key ``loss``, ``upstream_nonlinearity``), not of one engine.  Batches are rows:
an activity has shape (n, d).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

LOSSES = ("mse", "cross_entropy")


def relu(x):
    """[x]_+ elementwise (D_u of Eq. 3 applied to its argument)."""
    return np.maximum(x, 0)


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, max-subtracted (no overflow)."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def error_signal(y_hat: np.ndarray, y: np.ndarray, loss: str) -> np.ndarray:
    """hbar^K = -dF/dy_hat: y - y_hat for F = 1/2||y - y_hat||^2 (mse); y - softmax(y_hat)
    for cross-entropy F = -sum y log softmax(y_hat)."""
    if loss == "mse":
        return y - y_hat
    if loss == "cross_entropy":
        return y - softmax(y_hat)
    raise ConfigError(f"unknown loss {loss!r}; choose one of {list(LOSSES)}")


def loss_value(y_hat: np.ndarray, y: np.ndarray, loss: str) -> float:
    """Batch mean of F: 1/2||y - y_hat||^2 (mse), or the cross-entropy of softmax(y_hat)."""
    if loss == "mse":
        return float(0.5 * np.mean(np.sum((y - y_hat) ** 2, axis=1)))
    if loss != "cross_entropy":
        raise ConfigError(f"unknown loss {loss!r}; choose one of {list(LOSSES)}")
    z = y_hat - y_hat.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-np.mean(np.sum(y * logp, axis=1)))


def outer_mean(post: np.ndarray, pre: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """scale times the batch mean of post_i pre_i^T: shape (d_post, d_pre)."""
    out = post.T @ pre
    out *= scale / post.shape[0]
    return out


# --------------------------------------------------------------------------- the spike level's rate model


def shot_noise_variance(W: np.ndarray, a_pre: np.ndarray, rate_scale_hz: float, tau_s_ms: float) -> np.ndarray:
    """Variance of an LNP neuron's filtered input current in activity units (Campbell's theorem):
    sigma_i^2 = sum_j W_ij^2 |a_j| / (2 s tau_s), for presynaptic Poisson trains of rate s |a_j|
    (an ON/OFF pair fires at s |a_j| in all), each spike adding W_ij / (s tau_s) to a current
    that decays with tau_s.  ``a_pre``: (n, d_pre) -> (n, d_post)."""
    return np.abs(a_pre) @ (np.asarray(W) ** 2).T / (2.0 * rate_scale_hz * tau_s_ms * 1e-3)


def input_variance(W: np.ndarray, a_pre: np.ndarray, rate_scale_hz: float, tau_s_ms: float,
                   var_pre: np.ndarray | None = None) -> np.ndarray:
    """Variance of an LNP neuron's input current: the shot noise of its presynaptic spikes
    (`shot_noise_variance`) plus the presynaptic intensity fluctuations as they pass the tau_s
    filter, ``var_pre`` (`filtered_intensity_variance`; in linear response Var(a_j(t)) / 2):
    sigma_i^2 = sum_j W_ij^2 (|a_j| / (2 s tau_s) + var_pre_j).  Cross-covariances of the
    presynaptic neurons (common input) are left out (mean-field)."""
    var = shot_noise_variance(W, a_pre, rate_scale_hz, tau_s_ms)
    if var_pre is not None:
        var = var + np.asarray(var_pre) @ (np.asarray(W) ** 2).T
    return var


def shot_noise_third_cumulant(W: np.ndarray, a_pre: np.ndarray, rate_scale_hz: float, tau_s_ms: float) -> np.ndarray:
    """Third cumulant of the filtered shot noise (Campbell): kappa_3 = sum_j |a_j| W_ij^3 / (3 s^2 tau_s^2)
    (a presynaptic ON/OFF pair contributes with the sign of its activity: sign(a_j) |a_j| = a_j)."""
    tau = tau_s_ms * 1e-3
    return np.asarray(a_pre) @ (np.asarray(W) ** 3).T / (3.0 * rate_scale_hz ** 2 * tau ** 2)


def lnp_rate(mu: np.ndarray, sigma: np.ndarray, kappa3: np.ndarray | None = None) -> np.ndarray:
    """Mean of [I]_+ for I of mean mu and sd sigma: mu Phi(z) + sigma phi(z), z = mu / sigma, for
    Gaussian I (ReLU of mu where sigma = 0): the mean activity of an LNP neuron with rectified
    intensity.  With ``kappa3`` (the input's third cumulant, skewness g = kappa3 / sigma^3) the
    first Edgeworth correction - (g sigma / 6) z phi(z) is added (shot noise of few large
    presynaptic jumps is skewed)."""
    from scipy.special import ndtr

    mu, sigma = np.asarray(mu, dtype=float), np.asarray(sigma, dtype=float)
    safe = np.where(sigma > 0, sigma, 1.0)
    z = mu / safe
    phi = np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
    out = mu * ndtr(z) + sigma * phi
    if kappa3 is not None:
        out = out - np.asarray(kappa3) / safe ** 2 / 6.0 * z * phi
    return np.where(sigma > 0, out, np.maximum(mu, 0.0))


def rectified_covariance_terms(mu: np.ndarray, sigma: np.ndarray, n_terms: int = 24) -> np.ndarray:
    """The Hermite (Mehler) expansion of the autocovariance of a rectified Gaussian process:
    for X(t) stationary Gaussian with mean mu, sd sigma and correlation rho(t),
    Cov([X(0)]_+, [X(t)]_+) = sum_{n>=1} c_n rho(t)^n with, m = mu / sigma,
    c_1 = sigma^2 Phi(m)^2 (linear response) and c_n = sigma^2 phi(m)^2 He_{n-2}(m)^2 / n! (n >= 2).
    Returns c with shape (n_terms, *mu.shape); sum_n c_n = Var([X]_+)."""
    from scipy.special import ndtr

    mu, sigma = np.broadcast_arrays(np.asarray(mu, dtype=float), np.asarray(sigma, dtype=float))
    safe = np.where(sigma > 0, sigma, 1.0)
    m = mu / safe
    phi = np.exp(-0.5 * m * m) / np.sqrt(2 * np.pi)
    terms = [sigma ** 2 * ndtr(m) ** 2]
    he_prev, he = np.zeros_like(m), np.ones_like(m)  # He_{-1} (unused), He_0
    fact = 1.0
    for n in range(2, n_terms + 1):
        fact *= n
        terms.append(sigma ** 2 * phi ** 2 * he ** 2 / fact)
        he_prev, he = he, m * he - (n - 2) * he_prev if n > 2 else m * he  # He_{n-1}
    out = np.stack(terms)
    return np.where(sigma > 0, out, 0.0)


def filtered_intensity_variance(mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Variance that a presynaptic LNP neuron's intensity fluctuations [I]_+ (I Gaussian, correlation
    exp(-|t|/tau_s)) add to a current filtered with the same tau_s: sum_n c_n / (n + 1), the n-th
    term's correlation exp(-n|t|/tau_s) passed through the filter (`rectified_covariance_terms`;
    linear response keeps only n = 1: Phi^2 sigma^2 / 2)."""
    c = rectified_covariance_terms(mu, sigma)
    n = np.arange(1, c.shape[0] + 1).reshape((-1,) + (1,) * (c.ndim - 1))
    return (c / (n + 1)).sum(0)


def spike_train_power(mu: np.ndarray, sigma: np.ndarray, rate_scale_hz: float, tau_s_ms: float,
                      signed: bool = False, input_power: np.ndarray | None = None) -> np.ndarray:
    """Zero-frequency power S(0) of an LNP neuron's spike train in activity units (a spike counts
    1 / s), in units^2 s: the count variance of a window T >> tau_s is S(0) / T.  The input I has
    mean mu, sd sigma and zero-frequency power ``input_power`` S_I(0) (default 2 tau_s sigma^2, the
    shot noise of independent Poisson trains); S_I(0) of the next layer is sum_j W_ij^2 S_j(0)
    (filters keep S(0); mean-field).  Poisson spikes add their rate: S = E[rate] / s + S_a(0).
    ReLU neuron: S_a(0) = Phi(m)^2 S_I(0) + sum_{n>=2} c_n 2 tau_s / n (the Hermite terms of
    `rectified_covariance_terms` with correlation exp(-n|t|/tau_s)); signed ON/OFF pair: ON - OFF
    estimates I itself, S_a(0) = S_I(0), and its spikes come at E|I| = mu (2 Phi(m) - 1) + 2 sigma phi(m)."""
    from scipy.special import ndtr

    tau = tau_s_ms * 1e-3
    mu, sigma = np.broadcast_arrays(np.asarray(mu, dtype=float), np.asarray(sigma, dtype=float))
    p_in = 2 * tau * sigma ** 2 if input_power is None else np.asarray(input_power, dtype=float)
    safe = np.where(sigma > 0, sigma, 1.0)
    m = mu / safe
    phi = np.exp(-0.5 * m * m) / np.sqrt(2 * np.pi)
    if signed:
        mean_abs = np.where(sigma > 0, mu * (2 * ndtr(m) - 1) + 2 * sigma * phi, np.abs(mu))
        return mean_abs / rate_scale_hz + p_in
    c = rectified_covariance_terms(mu, sigma)
    n = np.arange(2, c.shape[0] + 1).reshape((-1,) + (1,) * (c.ndim - 1))
    gain = np.where(sigma > 0, ndtr(m), (mu > 0).astype(float))
    return lnp_rate(mu, sigma) / rate_scale_hz + gain ** 2 * p_in + (c[1:] * 2 * tau / n).sum(0)


def window_activity_variance(mu: np.ndarray, sigma: np.ndarray, rate_scale_hz: float, t_window_ms: float,
                             tau_s_ms: float, signed: bool = False, input_power: np.ndarray | None = None
                             ) -> np.ndarray:
    """Variance of one window's activity estimate count / (s T) of an LNP neuron (T >> tau_s):
    S(0) / T with S(0) of `spike_train_power`."""
    return spike_train_power(mu, sigma, rate_scale_hz, tau_s_ms, signed, input_power) / (t_window_ms * 1e-3)


def positive_probability(mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """P(I > 0) = Phi(mu/sigma) for I ~ N(mu, sigma^2) (1[mu > 0] where sigma = 0): the mean of
    the gate 1[V h > 0] of D_d = relu_jacobian at the spike level."""
    from scipy.special import ndtr

    mu, sigma = np.asarray(mu, dtype=float), np.asarray(sigma, dtype=float)
    return np.where(sigma > 0, ndtr(mu / np.where(sigma > 0, sigma, 1.0)), (mu > 0).astype(float))


class CalibratedTransfer:
    """A measured transfer function: mean activity (rate / s) at input mean mu and sd sigma,
    interpolated (monotone cubic, PCHIP; bilinear below 4 points per axis) between the grid points of ``rows`` = [[mu, sigma, rate_Hz, filtered_var, power0], ...]
    (the grid `salspike calibrate` writes; tables of its first version have only the first three
    columns, and then `filtered_variance` and `power` are None), clamped at the grid's edges.
    filtered_var and power0 are the output train's variance after the tau_s filter and its
    zero-frequency power, in activity units (`salspike.brian.calibrate.train_moments`)."""

    def __init__(self, rows, rate_scale_hz: float, source: str = "spike.calibration"):
        from ..errors import ConfigError

        try:
            arr = np.asarray(rows, dtype=float)
        except (TypeError, ValueError):  # ragged rows or non-numbers
            arr = np.empty((0, 0))
        if arr.ndim != 2 or arr.shape[1] not in (3, 5) or not np.all(np.isfinite(arr)):
            raise ConfigError(f"{source}: expected rows [mu, sigma, rate_Hz, filtered_var, power0] (or the first "
                              "three); re-run `salspike calibrate`")
        self.mu, self.sigma = np.unique(arr[:, 0]), np.unique(arr[:, 1])
        if len(arr) != self.mu.size * self.sigma.size or self.mu.size < 2 or self.sigma.size < 2:
            raise ConfigError(f"{source}: the rows do not fill a (mu, sigma) grid; re-run `salspike calibrate`")
        cells = (np.searchsorted(self.mu, arr[:, 0]), np.searchsorted(self.sigma, arr[:, 1]))
        self.columns = []
        for col in range(2, arr.shape[1]):
            grid = np.full((self.mu.size, self.sigma.size), np.nan)
            grid[cells] = arr[:, col]
            self.columns.append(grid)
        self.rate_hz = self.columns[0]
        self.scale = float(rate_scale_hz)

    @property
    def has_moments(self) -> bool:
        """The table carries the output train's filtered variance and S(0) (5 columns)."""
        return len(self.columns) == 3

    def _interp(self, grid, mu, sigma) -> np.ndarray:
        from scipy.interpolate import RegularGridInterpolator

        # monotone cubic (PCHIP) along both axes; bilinear on grids too small for it.  Measured on
        # the paper circuit's layer 1 (8 seeds x 4 rows x 5 s): z rms 1.54 bilinear, 1.14 PCHIP
        method = "pchip" if min(self.mu.size, self.sigma.size) >= 4 else "linear"
        f = RegularGridInterpolator((self.mu, self.sigma), grid, method=method, bounds_error=False, fill_value=None)
        m = np.clip(np.asarray(mu, float), self.mu[0], self.mu[-1])
        s = np.clip(np.asarray(sigma, float), self.sigma[0], self.sigma[-1])
        return f(np.stack(np.broadcast_arrays(m, s), axis=-1))

    def __call__(self, mu, sigma) -> np.ndarray:
        return self._interp(self.rate_hz, mu, sigma) / self.scale

    def filtered_variance(self, mu, sigma) -> np.ndarray | None:
        """Var of the output train after the tau_s filter (activity units^2), or None."""
        return self._interp(self.columns[1], mu, sigma) if self.has_moments else None

    def power(self, mu, sigma) -> np.ndarray | None:
        """Zero-frequency power S(0) of the output train (activity units^2 s), or None."""
        return self._interp(self.columns[2], mu, sigma) if self.has_moments else None

    def gain(self, mu, sigma, h: float = 1e-3) -> np.ndarray:
        """d(activity)/d(mu), by central differences (linear response of the rate)."""
        return (self(np.asarray(mu) + h, sigma) - self(np.asarray(mu) - h, sigma)) / (2 * h)
