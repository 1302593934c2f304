"""Pooling layers: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d."""

from __future__ import annotations

from . import functional as F
from ._utils import tuple_arg
from .module import Module


class MaxPool2d(Module):
    r"""2-D max pooling.

    Args:
        kernel_size (int or tuple): window size.
        stride (int or tuple): window stride. Default: kernel_size.
        padding (int or tuple): implicit -inf padding on both sides, at most kernel_size / 2.
        dilation (int or tuple): spacing between window elements. Default: 1.
        return_indices (bool): also return the flat index (h * W_in + w) of each max. Default: False.
        ceil_mode (bool): round the output size up instead of down. Default: False.

    Shape:
        - Input: (N, C, H_in, W_in)
        - Output: (N, C, H_out, W_out),
          H_out = floor((H_in + 2 * padding[0] - dilation[0] * (kernel_size[0] - 1) - 1) / stride[0] + 1)
          (ceil instead of floor with ceil_mode, as long as the last window starts inside the input).

    Example:
        >>> cnnrs.nn.MaxPool2d(2)(cnnrs.randn(64, 6, 28, 28)).shape
        (64, 6, 14, 14)
    """

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        dilation=1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode
        kernel = tuple_arg("MaxPool2d", "kernel_size", kernel_size, 2)
        tuple_arg("MaxPool2d", "stride", self.stride, 2)
        tuple_arg("MaxPool2d", "dilation", dilation, 2)
        pad = tuple_arg("MaxPool2d", "padding", padding, 2, minimum=0)
        if any(p > k // 2 for p, k in zip(pad, kernel)):
            raise ValueError(
                f"MaxPool2d: padding {padding} should be at most half of kernel_size {kernel_size}"
            )

    def forward(self, input):
        return F.max_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.return_indices,
        )

    def forward_relu(self, input):
        """self(relu(input)) in one kernel call (used by Sequential for ReLU -> MaxPool2d)."""
        return F._max_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            False,
            relu=True,
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool2d(Module):
    r"""2-D average pooling.

    Args:
        kernel_size (int or tuple): window size.
        stride (int or tuple): window stride. Default: kernel_size.
        padding (int or tuple): implicit zero padding, at most kernel_size / 2. Default: 0.
        ceil_mode (bool): round the output size up. Default: False.
        count_include_pad (bool): count padded zeros in the divisor. Default: True.
        divisor_override (int): divide by this instead of the window size. Default: None.

    Shape:
        - Input: (N, C, H_in, W_in)
        - Output: (N, C, H_out, W_out),
          H_out = floor((H_in + 2 * padding[0] - kernel_size[0]) / stride[0] + 1)

    Example:
        >>> cnnrs.nn.AvgPool2d(2)(cnnrs.randn(1, 3, 8, 8)).shape
        (1, 3, 4, 4)
    """

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override=None,
    ):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override
        kernel = tuple_arg("AvgPool2d", "kernel_size", kernel_size, 2)
        tuple_arg("AvgPool2d", "stride", self.stride, 2)
        pad = tuple_arg("AvgPool2d", "padding", padding, 2, minimum=0)
        if any(p > k // 2 for p, k in zip(pad, kernel)):
            raise ValueError(
                f"AvgPool2d: padding {padding} should be at most half of kernel_size {kernel_size}"
            )
        if divisor_override is not None and (isinstance(divisor_override, bool) or divisor_override <= 0):
            raise ValueError(f"AvgPool2d: divisor_override must be a positive int, got {divisor_override!r}")

    def forward(self, input):
        return F.avg_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    r"""Average pooling to a fixed output size, whatever the input size.

    Window i covers input rows [floor(i * H_in / H_out), ceil((i + 1) * H_in / H_out)) (torch's formula).

    Args:
        output_size (int or tuple): (H_out, W_out); None in the tuple keeps that input size.

    Shape:
        - Input: (N, C, H_in, W_in)
        - Output: (N, C, H_out, W_out)

    Example:
        >>> cnnrs.nn.AdaptiveAvgPool2d((7, 7))(cnnrs.randn(1, 512, 14, 14)).shape
        (1, 512, 7, 7)
    """

    def __init__(self, output_size):
        super().__init__()
        sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,)
        for s in sizes:
            if s is not None and (isinstance(s, bool) or not isinstance(s, int) or s < 1):
                raise ValueError(
                    f"AdaptiveAvgPool2d: output_size must be positive ints (or None), got {output_size!r}"
                )
        if isinstance(output_size, (tuple, list)) and len(output_size) != 2:
            raise ValueError(f"AdaptiveAvgPool2d: output_size must be an int or a pair, got {output_size!r}")
        self.output_size = output_size

    def forward(self, input):
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


__all__ = ["AdaptiveAvgPool2d", "AvgPool2d", "MaxPool2d"]
