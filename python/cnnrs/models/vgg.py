"""VGG-11/13/16/19 (Simonyan & Zisserman, "Very Deep Convolutional Networks for
Large-Scale Image Recognition", ICLR 2015), in torchvision's module layout so that
state_dict keys and shapes match ``torchvision.models.vgg*``.
"""

from __future__ import annotations

from typing import Sequence, Union

from .. import nn

# Configurations A, B, D, E of the paper: conv widths, "M" = 2x2 max-pool.
CONFIGS: dict[int, tuple[Union[int, str], ...]] = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ),
}
IMAGE_SIZES = (224, 32)


def make_features(config: Sequence[Union[int, str]], in_channels: int, batch_norm: bool) -> nn.Sequential:
    """3x3 convolutions (padding 1), each followed by [BatchNorm2d] and ReLU; "M" is a 2x2 max-pool."""
    layers = []
    channels = in_channels
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(channels, int(item), kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(int(item)))
        layers.append(nn.ReLU())
        channels = int(item)
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG network: ``features`` -> [``avgpool``] -> flatten -> ``classifier``.

    image_size 224 (ImageNet, as published and in torchvision): ``avgpool`` is
    AdaptiveAvgPool2d((7, 7)) and the classifier 25088 -> 4096 -> 4096 ->
    num_classes with ReLU and Dropout(0.5). VGG-16 has 138,357,544 parameters.

    image_size 32 (CIFAR-10 and 28x28 images padded to 32): the five pools
    leave a 1x1x512 map, so there is no avgpool and the classifier is the usual
    small head 512 -> 512 -> num_classes with ReLU and Dropout(0.5).

    Initialisation follows torchvision: Kaiming-normal (fan_out, ReLU) conv
    weights, zero biases, BatchNorm weight 1 / bias 0, Linear weights N(0, 0.01).
    """

    def __init__(
        self,
        depth: int,
        batch_norm: bool = False,
        num_classes: int = 1000,
        image_size: int = 224,
        in_channels: int = 3,
        dropout: float = 0.5,
    ):
        super().__init__()
        if depth not in CONFIGS:
            raise ValueError(f"VGG: depth must be one of {sorted(CONFIGS)}, got {depth}")
        if image_size not in IMAGE_SIZES:
            raise ValueError(f"VGG: image_size must be 224 (ImageNet) or 32 (CIFAR), got {image_size}")
        if num_classes < 1 or in_channels < 1:
            raise ValueError(
                f"VGG: num_classes and in_channels must be >= 1, got {num_classes} and {in_channels}"
            )
        self.image_size = image_size
        self.features = make_features(CONFIGS[depth], in_channels, batch_norm)
        if image_size == 224:
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.flatten = nn.Flatten()
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(4096, 4096),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(4096, num_classes),
            )
        else:
            self.avgpool = None
            self.flatten = nn.Flatten()
            self.classifier = nn.Sequential(
                nn.Linear(512, 512),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(512, num_classes),
            )
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        x = self.features(x)
        if self.avgpool is not None:
            x = self.avgpool(x)
        return self.classifier(self.flatten(x))


def _vgg(depth: int, batch_norm: bool, num_classes, image_size: int, in_channels: int) -> VGG:
    if num_classes is None:
        num_classes = 1000 if image_size == 224 else 10
    return VGG(depth, batch_norm, num_classes, image_size, in_channels)


def vgg11(batch_norm: bool = False, num_classes=None, image_size: int = 224, in_channels: int = 3) -> VGG:
    """VGG-11 (configuration A). num_classes defaults to 1000 at 224 and 10 at 32."""
    return _vgg(11, batch_norm, num_classes, image_size, in_channels)


def vgg13(batch_norm: bool = False, num_classes=None, image_size: int = 224, in_channels: int = 3) -> VGG:
    """VGG-13 (configuration B). num_classes defaults to 1000 at 224 and 10 at 32."""
    return _vgg(13, batch_norm, num_classes, image_size, in_channels)


def vgg16(batch_norm: bool = False, num_classes=None, image_size: int = 224, in_channels: int = 3) -> VGG:
    """VGG-16 (configuration D). num_classes defaults to 1000 at 224 and 10 at 32."""
    return _vgg(16, batch_norm, num_classes, image_size, in_channels)


def vgg19(batch_norm: bool = False, num_classes=None, image_size: int = 224, in_channels: int = 3) -> VGG:
    """VGG-19 (configuration E). num_classes defaults to 1000 at 224 and 10 at 32."""
    return _vgg(19, batch_norm, num_classes, image_size, in_channels)


__all__ = ["CONFIGS", "VGG", "make_features", "vgg11", "vgg13", "vgg16", "vgg19"]
