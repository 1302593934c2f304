"""Gradient utilities (``cnnrs.nn.utils``): clipping and flat parameter vectors, as torch.nn.utils."""

from __future__ import annotations

import math

import numpy as np

from ..tensor import Tensor


def _grads(parameters) -> list:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(
    parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False
) -> Tensor:
    """Scale all gradients in place so that their joint norm is at most max_norm; returns the norm before."""
    grads = _grads(parameters)
    if not grads:
        return Tensor(np.float32(0.0))
    if norm_type == math.inf:
        total = max(float(np.abs(g.data).max()) for g in grads)
    else:
        total = sum(float(np.sum(np.abs(g.data.astype(np.float64)) ** norm_type)) for g in grads) ** (
            1 / norm_type
        )
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients is non-finite, so it cannot be clipped"
        )
    coefficient = max_norm / (total + 1e-6)
    if coefficient < 1:
        for g in grads:
            g.data *= np.float32(coefficient)
    return Tensor(np.float32(total))


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient element to [-clip_value, clip_value] in place."""
    for g in _grads(parameters):
        np.clip(g.data, -clip_value, clip_value, out=g.data)


def parameters_to_vector(parameters) -> Tensor:
    return Tensor(np.concatenate([p.data.reshape(-1) for p in parameters]))


def vector_to_parameters(vec: Tensor, parameters) -> None:
    data = vec.data if isinstance(vec, Tensor) else np.asarray(vec)
    offset = 0
    for p in parameters:
        n = p.data.size
        p.data[...] = data[offset : offset + n].reshape(p.data.shape)
        offset += n


__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "vector_to_parameters"]
