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
