"""The lecture's layer pattern for small CNNs:

    INPUT -> [[CONV -> RELU] * N -> POOL?] * M -> [FC -> RELU] * K -> FC

CONV is a 3x3 convolution with padding 1 (it keeps the spatial size), POOL a
2x2 max-pool with stride 2 (it halves it, rounding down).
"""

from __future__ import annotations

from typing import Sequence

from .. import nn


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"conv_pattern: {name} must be an integer >= 0, got {value!r}")
    return value


def _check_widths(name: str, widths, expected: int, meaning: str) -> tuple[int, ...]:
    widths = tuple(widths)
    if len(widths) != expected:
        raise ValueError(
            f"conv_pattern: {name} needs {meaning} = {expected} entries, got {len(widths)}: {widths}"
        )
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ValueError(f"conv_pattern: every entry of {name} must be an integer >= 1, got {widths}")
    return widths


class ConvPattern(nn.Module):
    """``features`` (the M conv blocks) -> flatten -> ``classifier`` (K hidden FC layers + output)."""

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential):
        super().__init__()
        self.features = features
        self.flatten = nn.Flatten()
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


def conv_pattern(
    in_channels: int,
    image_size: int,
    num_classes: int,
    n: int,
    m: int,
    k: int,
    channels: Sequence[int],
    fc_widths: Sequence[int] = (),
    pool: bool = True,
    batch_norm: bool = False,
    dropout: float = 0.0,
) -> ConvPattern:
    """Build ``INPUT -> [[CONV -> RELU]*n -> POOL?]*m -> [FC -> RELU]*k -> FC``.

    Args:
        in_channels: channels of the input images.
        image_size: height = width of the input images.
        num_classes: outputs of the last FC layer.
        n: convolutions per block (>= 0; a block of 0 convs is just a pool).
        m: blocks (>= 0).
        k: hidden FC layers (>= 0).
        channels: output width of the convolutions of each block (m entries).
        fc_widths: width of each hidden FC layer (k entries).
        pool: end every block with a 2x2 max-pool.
        batch_norm: BatchNorm2d between each CONV and its RELU.
        dropout: if > 0, Dropout after every hidden FC -> RELU.

    Raises:
        ValueError: a negative count, widths that do not match ``m`` / ``k``,
        or so many pools that the image shrinks to nothing.
    """
    n, m, k = (_check_count(name, v) for name, v in (("n", n), ("m", m), ("k", k)))
    for name, v in (("in_channels", in_channels), ("image_size", image_size), ("num_classes", num_classes)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"conv_pattern: {name} must be an integer >= 1, got {v!r}")
    channels = _check_widths("channels", channels, m, "m")
    fc_widths = _check_widths("fc_widths", fc_widths, k, "k")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"conv_pattern: dropout must be in [0, 1), got {dropout}")
    if pool and image_size >> m < 1:
        raise ValueError(
            f"conv_pattern: {m} pools of 2x2 shrink a {image_size}x{image_size} image to nothing; "
            f"use fewer blocks, pool=False or larger images"
        )

    layers = []
    width = in_channels
    for block_width in channels:
        for _ in range(n):
            layers.append(nn.Conv2d(width, block_width, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(block_width))
            layers.append(nn.ReLU())
            width = block_width
        if pool:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))

    side = image_size >> m if pool else image_size
    head = []
    fan_in = width * side * side
    for hidden in fc_widths:
        head += [nn.Linear(fan_in, hidden), nn.ReLU()]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        fan_in = hidden
    head.append(nn.Linear(fan_in, num_classes))
    return ConvPattern(nn.Sequential(*layers), nn.Sequential(*head))


def vgg_small(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> ConvPattern:
    """A small VGG-style net: ``[[CONV -> RELU]*2 -> POOL]*3 -> [FC -> RELU]*2 -> FC``.

    Widths 16/32/64 (7.3 M multiply-adds per 28x28 image, a quarter of 32/64/128,
    so a CPU epoch of Fashion-MNIST takes minutes), BatchNorm after each
    convolution (it lets the 6-conv stack train fast at a high learning rate)
    and FC 256/256 with Dropout(0.3). On 28x28 input the blocks give
    28 -> 14 -> 7 -> 3, so the first FC layer sees 64 * 3 * 3 = 576 features.
    """
    return conv_pattern(
        in_channels,
        image_size,
        num_classes,
        n=2,
        m=3,
        k=2,
        channels=(16, 32, 64),
        fc_widths=(256, 256),
        batch_norm=True,
        dropout=0.3,
    )


__all__ = ["ConvPattern", "conv_pattern", "vgg_small"]
