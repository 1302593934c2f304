"""Fully connected layers: Linear, Identity."""

from __future__ import annotations

import math

import numpy as np

from . import functional as F
from . import init
from ._utils import check_int
from .module import Module
from .parameter import Parameter


class Linear(Module):
    r"""y = x W^T + b.

    Args:
        in_features (int): size of each input sample.
        out_features (int): size of each output sample.
        bias (bool): add a learnable bias. Default: True.

    Shape:
        - Input: (*, in_features)
        - Output: (*, out_features)

    Attributes:
        weight: (out_features, in_features), kaiming_uniform_(a=sqrt(5)) as in torch.
        bias: (out_features,), U(-1/sqrt(in_features), 1/sqrt(in_features)).

    Example:
        >>> cnnrs.nn.Linear(120, 84)(cnnrs.randn(64, 120)).shape
        (64, 84)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features = check_int("Linear", "in_features", in_features, minimum=0)
        self.out_features = check_int("Linear", "out_features", out_features, minimum=0)
        self.weight = Parameter(np.empty((out_features, in_features), dtype=np.float32))
        if bias:
            self.bias = Parameter(np.empty(out_features, dtype=np.float32))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def forward_relu(self, input):
        """relu(self(input)) in one kernel call (used by Sequential for Linear -> ReLU)."""
        return F._linear(input, self.weight, self.bias, relu=True)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )


class Identity(Module):
    """Returns its input unchanged (any constructor arguments are ignored, as in torch)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


__all__ = ["Identity", "Linear"]
