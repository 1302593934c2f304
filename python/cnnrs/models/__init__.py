"""Ready-made networks: LeNet-5 (modern and 1998), the VGG family and the lecture's pattern builder.

``create_model(name, **kwargs)`` builds one by the name the ``cnnrs`` command uses.
"""

from __future__ import annotations

from typing import Callable

from .lenet import LeNet5, LeNet5Classic, MaskedConv2d, ScaledTanh, Subsampling, lenet5
from .pattern import ConvPattern, conv_pattern, vgg_small
from .vgg import VGG, vgg11, vgg13, vgg16, vgg19


def _lenet5_classic(num_classes: int = 10, **kwargs):
    return lenet5(num_classes=num_classes, classic=True, **kwargs)


# name -> builder; builders accept num_classes (and in_channels / image_size where it applies).
MODELS: dict[str, Callable] = {
    "lenet5": lenet5,
    "lenet5-classic": _lenet5_classic,
    "vgg_small": vgg_small,
    "vgg11": vgg11,
    "vgg13": vgg13,
    "vgg16": vgg16,
    "vgg19": vgg19,
}


def create_model(name: str, **kwargs):
    """Build the model registered as ``name`` (see ``MODELS``) with builder keyword arguments."""
    try:
        builder = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}") from None
    return builder(**kwargs)


__all__ = [
    "MODELS",
    "VGG",
    "ConvPattern",
    "LeNet5",
    "LeNet5Classic",
    "MaskedConv2d",
    "ScaledTanh",
    "Subsampling",
    "conv_pattern",
    "create_model",
    "lenet5",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "vgg_small",
]
