"""Convolution layers: Conv1d and Conv2d."""

from __future__ import annotations

import math

import numpy as np

from . import functional as F
from . import init
from ._utils import check_int, tuple_arg
from .module import Module
from .parameter import Parameter


class _ConvNd(Module):
    """Shared argument checks, parameters and repr of Conv1d / Conv2d."""

    _dims = 2

    def __init__(
        self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode
    ):
        super().__init__()
        name, n = type(self).__name__, self._dims
        self.in_channels = check_int(name, "in_channels", in_channels)
        self.out_channels = check_int(name, "out_channels", out_channels)
        self.kernel_size = tuple_arg(name, "kernel_size", kernel_size, n)
        self.stride = tuple_arg(name, "stride", stride, n)
        self.dilation = tuple_arg(name, "dilation", dilation, n)
        self.groups = check_int(name, "groups", groups)
        if in_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) must be divisible by groups ({groups})")
        if out_channels % groups:
            raise ValueError(f"{name}: out_channels ({out_channels}) must be divisible by groups ({groups})")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(
                    f"{name}: invalid padding string {padding!r}, should be one of {{'valid', 'same'}}"
                )
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = tuple_arg(name, "padding", padding, n, minimum=0)
        if padding_mode != "zeros":
            if padding_mode in ("reflect", "replicate", "circular"):
                raise NotImplementedError(
                    f"{name}: padding_mode={padding_mode!r} is not supported; only 'zeros'"
                )
            raise ValueError(
                f"{name}: padding_mode must be one of 'zeros', 'reflect', 'replicate' or 'circular', "
                f"got {padding_mode!r}"
            )
        self.padding_mode = padding_mode
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=np.float32))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=np.float32))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's default: kaiming_uniform_(a=sqrt(5)) weights, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) bias."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._dims:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._dims:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv2d(_ConvNd):
    r"""2-D convolution over an input of shape (N, C_in, H, W).

    Args:
        in_channels (int): channels of the input.
        out_channels (int): channels produced.
        kernel_size (int or tuple): size of the kernel.
        stride (int or tuple): stride. Default: 1.
        padding (int, tuple or str): zero padding on both sides, or 'valid' (none) or 'same'
            (output size = input size; for even kernels the extra pixel goes bottom / right, like
            torch; stride must be 1). Default: 0.
        dilation (int or tuple): spacing between kernel elements. Default: 1.
        groups (int): blocked connections from input to output channels. Default: 1.
        bias (bool): add a learnable bias. Default: True.
        padding_mode (str): only 'zeros' is supported.

    Shape:
        - Input: (N, C_in, H_in, W_in)
        - Output: (N, C_out, H_out, W_out) with
          H_out = floor((H_in + 2 * padding[0] - dilation[0] * (kernel_size[0] - 1) - 1) / stride[0] + 1)
          and W_out likewise.

    Attributes:
        weight: (out_channels, in_channels / groups, kH, kW), kaiming-uniform initialised as in torch.
        bias: (out_channels,).

    Example:
        >>> conv = cnnrs.nn.Conv2d(1, 6, kernel_size=5, padding=2)
        >>> conv(cnnrs.randn(64, 1, 28, 28)).shape
        (64, 6, 28, 28)
    """

    _dims = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
    ):
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode
        )

    def forward(self, input):
        return F._conv2d(
            input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups, False
        )

    def forward_relu(self, input):
        """relu(self(input)) in one fused kernel call (used by Sequential for Conv2d -> ReLU)."""
        return F._conv2d(
            input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups, True
        )


class Conv1d(_ConvNd):
    r"""1-D convolution over an input of shape (N, C_in, L) (runs as a Conv2d of height 1).

    Args: as :class:`Conv2d`, with ints (or 1-tuples) for kernel_size, stride, padding, dilation.

    Shape:
        - Input: (N, C_in, L_in)
        - Output: (N, C_out, L_out),
          L_out = floor((L_in + 2 * padding - dilation * (kernel_size - 1) - 1) / stride + 1)

    Example:
        >>> cnnrs.nn.Conv1d(3, 8, 5)(cnnrs.randn(2, 3, 50)).shape
        (2, 8, 46)
    """

    _dims = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
    ):
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode
        )

    def forward(self, input):
        padding = self.padding if isinstance(self.padding, str) else self.padding[0]
        return F.conv1d(input, self.weight, self.bias, self.stride[0], padding, self.dilation[0], self.groups)


__all__ = ["Conv1d", "Conv2d"]
