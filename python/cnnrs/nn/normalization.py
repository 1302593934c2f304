"""Batch normalisation: BatchNorm1d and BatchNorm2d."""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from . import functional as F
from . import init
from ._utils import check_int
from .module import Module
from .parameter import Parameter


class _BatchNorm(Module):
    _expected_dims: tuple = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ):
        super().__init__()
        name = type(self).__name__
        self.num_features = check_int(name, "num_features", num_features)
        if eps <= 0:
            raise ValueError(f"{name}: eps must be > 0, got {eps}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum}")
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=np.float32))
            self.bias = Parameter(np.zeros(num_features, dtype=np.float32))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=np.float32)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=np.float32)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, input):
        return self._forward(input, relu=False)

    def forward_relu(self, input):
        """relu(self(input)) in one kernel call (used by Sequential for BatchNorm -> ReLU)."""
        return self._forward(input, relu=True)

    def _forward(self, input, relu: bool):
        if input.ndim not in self._expected_dims:
            raise ValueError(
                f"{type(self).__name__}: expected {' or '.join(f'{d}D' for d in self._expected_dims)} input, "
                f"got shape {tuple(input.shape)}"
            )
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}: expected {self.num_features} channels, got {tuple(input.shape)}"
            )
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked.data)
        use_batch_stats = self.training or not self.track_running_stats
        return F.batch_norm(
            input,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight,
            self.bias,
            use_batch_stats,
            momentum,
            self.eps,
            relu=relu,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm2d(_BatchNorm):
    r"""Batch normalisation over (N, H, W) for each channel of a 4-D input.

    y = (x - mean) / sqrt(var + eps) * weight + bias, with batch statistics in training
    (running statistics updated with ``momentum``, unbiased variance, as torch) and running
    statistics in eval mode.

    Args:
        num_features (int): C of an (N, C, H, W) input.
        eps (float): added to the variance. Default: 1e-5.
        momentum (float or None): running-stat update factor; None = cumulative average. Default: 0.1.
        affine (bool): learnable weight and bias. Default: True.
        track_running_stats (bool): keep running_mean / running_var. Default: True.

    Shape:
        - Input: (N, C, H, W)
        - Output: (N, C, H, W)

    Example:
        >>> cnnrs.nn.BatchNorm2d(16)(cnnrs.randn(8, 16, 5, 5)).shape
        (8, 16, 5, 5)
    """

    _expected_dims = (4,)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation for (N, C) or (N, C, L) inputs; see :class:`BatchNorm2d`."""

    _expected_dims = (2, 3)


__all__ = ["BatchNorm1d", "BatchNorm2d"]
