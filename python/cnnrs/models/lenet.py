"""LeNet-5: the common modern variant and the 1998 original as published.

Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based learning applied
to document recognition", Proc. IEEE 86(11), 1998.
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ..nn import functional as F
from ..random import get_rng

# Table I of the paper: column j lists the S2 feature maps that C3 map j reads.
# Maps 0-5 read 3 contiguous maps, 6-11 four contiguous, 12-14 four
# non-contiguous, 15 all six (60 connections, 60 * 25 + 16 = 1516 parameters).
C3_CONNECTIONS = (
    (0, 1, 2),
    (1, 2, 3),
    (2, 3, 4),
    (3, 4, 5),
    (0, 4, 5),
    (0, 1, 5),
    (0, 1, 2, 3),
    (1, 2, 3, 4),
    (2, 3, 4, 5),
    (0, 3, 4, 5),
    (0, 1, 4, 5),
    (0, 1, 2, 5),
    (0, 1, 3, 4),
    (1, 2, 4, 5),
    (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


def c3_mask() -> np.ndarray:
    """(16, 6, 1, 1) float32 mask: 1 where C3 map ``o`` reads S2 map ``i`` (Table I)."""
    mask = np.zeros((16, 6, 1, 1), dtype=np.float32)
    for out_map, in_maps in enumerate(C3_CONNECTIONS):
        mask[out_map, list(in_maps)] = 1.0
    return mask


class LeNet5(nn.Module):
    """The modern LeNet-5 most courses and frameworks use.

    conv 1->6 5x5 (padding 2, so 28x28 MNIST plays the paper's 32x32), ReLU,
    2x2 max-pool, conv 6->16 5x5, ReLU, 2x2 max-pool, flatten,
    400 -> 120 -> 84 -> ``num_classes`` with ReLU between: 61,706 parameters.

    Shape: input (N, 1, 28, 28), output (N, num_classes) logits.
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


class ScaledTanh(nn.Module):
    """The paper's squashing function f(a) = A tanh(S a), A = 1.7159, S = 2/3 (Appendix A)."""

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0):
        super().__init__()
        self.amplitude = amplitude
        self.slope = slope

    def forward(self, x):
        return (x * self.slope).tanh() * self.amplitude

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude}, slope={self.slope:.4f}"


class Subsampling(nn.Module):
    """LeNet's S layers: the sum of each 2x2 block times a trainable coefficient plus a trainable bias.

    The paper adds the four inputs; this layer averages them (the coefficient
    absorbs the factor 4), one coefficient and one bias per feature map.
    Parameters: ``weight`` (C,), starting at 1 (a plain average), and ``bias`` (C,), starting at 0.
    """

    def __init__(self, channels: int, kernel_size: int = 2):
        super().__init__()
        self.channels = channels
        self.kernel_size = kernel_size
        self.stride = kernel_size
        self.weight = nn.Parameter(np.ones(channels, dtype=np.float32))
        self.bias = nn.Parameter(np.zeros(channels, dtype=np.float32))

    def count_macs(self, output_shape) -> int:
        """One multiply by the coefficient per output (the 2x2 sums are additions)."""
        return int(np.prod(output_shape))

    def forward(self, x):
        pooled = F.avg_pool2d(x, self.kernel_size, self.kernel_size)
        return pooled * self.weight.reshape(1, -1, 1, 1) + self.bias.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}"


class MaskedConv2d(nn.Conv2d):
    """A Conv2d whose input-output channel connections are restricted by a fixed 0/1 mask.

    The forward pass convolves with ``weight * mask``, so masked weights never
    act and their gradient is exactly zero; they are also zeroed at
    initialisation so ``weight`` itself shows the connection table. ``mask`` is
    a (C_out, C_in, 1, 1) numpy array, not a parameter and not in the state_dict.
    """

    def __init__(self, in_channels, out_channels, kernel_size, mask, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, **kwargs)
        mask = np.asarray(mask, dtype=np.float32)
        if mask.shape != (out_channels, in_channels, 1, 1):
            raise ValueError(
                f"MaskedConv2d: mask shape {mask.shape} != (out_channels, in_channels, 1, 1) = "
                f"{(out_channels, in_channels, 1, 1)}"
            )
        self.mask = mask
        self.weight.data[...] *= mask

    def num_effective_parameters(self) -> int:
        """Parameters that can change: unmasked weights plus the bias."""
        kh, kw = self.weight.shape[2], self.weight.shape[3]
        bias = 0 if self.bias is None else self.bias.shape[0]
        return int(self.mask.sum()) * kh * kw + bias

    def count_macs(self, output_shape) -> int:
        """Multiply-adds of the connected weights only (what a sparse implementation would do)."""
        kh, kw = self.weight.shape[2], self.weight.shape[3]
        per_output = float(self.mask.sum()) / self.mask.shape[0] * kh * kw  # connections per output map
        return int(round(int(np.prod(output_shape)) * per_output))

    def forward(self, x):
        return F.conv2d(
            x, self.weight * self.mask, self.bias, self.stride, self.padding, self.dilation, self.groups
        )


def _lecun_uniform_(module: nn.Module) -> None:
    """The paper's initialisation: uniform in +-2.4 / F_in, F_in the unit's fan-in (Appendix C).

    A C3 unit's fan-in counts only its connected maps (75, 100 or 150).
    """
    rng = get_rng()
    for sub in module.modules():
        if not isinstance(sub, (nn.Conv2d, nn.Linear)):
            continue
        weight = sub.weight.data
        out_units = weight.shape[0]
        if isinstance(sub, MaskedConv2d):
            fan_in = sub.mask.reshape(out_units, -1).sum(axis=1) * weight.shape[2] * weight.shape[3]
        else:
            fan_in = np.full(out_units, np.prod(weight.shape[1:]))
        bound = (2.4 / fan_in).astype(np.float32)
        weight[...] = rng.uniform(-1.0, 1.0, weight.shape) * bound.reshape((-1,) + (1,) * (weight.ndim - 1))
        if sub.bias is not None:
            sub.bias.data[...] = rng.uniform(-1.0, 1.0, out_units) * bound
        if isinstance(sub, MaskedConv2d):
            weight[...] *= sub.mask


class LeNet5Classic(nn.Module):
    """LeNet-5 as published in 1998, where a modern framework allows.

    Layers (paper names): C1 conv 1->6 5x5; S2 trainable subsampling + squash;
    C3 conv 6->16 5x5 with the partial connection table of Table I (1,516
    parameters); S4 trainable subsampling + squash; C5 conv 16->120 5x5 (a
    full connection on the 5x5 maps); F6 120->84 + squash; output 84->classes.
    The squashing function is 1.7159 tanh(2a/3) and weights start uniform in
    +-2.4/F_in, both as in the paper. Without the output layer the model has
    exactly the paper's 60,000 trainable parameters (C3 counted as 1,516).

    Departures from the paper:

    * The output layer is a linear layer trained with cross-entropy instead of
      Euclidean RBF units with fixed 7x12 bitmap codes and the paper's MAP loss.
    * The 32x32 input is reached by padding 28x28 MNIST by 2 in C1 (the paper
      centred the digits in a 32x32 field); inputs are normalised by the
      data loader rather than scaled to [-0.1, 1.175].
    * S2/S4 average the 2x2 block (the paper sums it; the trainable
      coefficient makes the two equivalent).
    * C3 is a convolution over all 6 maps whose weight is multiplied by a 0/1
      mask, so masked connections stay at zero and never receive gradient.
    * Trained with a modern optimiser instead of the stochastic diagonal
      Levenberg-Marquardt method.

    Shape: input (N, 1, 28, 28), output (N, num_classes) logits.
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5, padding=2)
        self.s2 = Subsampling(6)
        self.c3 = MaskedConv2d(6, 16, 5, mask=c3_mask())
        self.s4 = Subsampling(16)
        self.c5 = nn.Conv2d(16, 120, 5)
        self.f6 = nn.Linear(120, 84)
        self.output = nn.Linear(84, num_classes)
        self.squash = ScaledTanh()
        self.flatten = nn.Flatten()
        _lecun_uniform_(self)

    def forward(self, x):
        x = self.squash(self.c1(x))
        x = self.squash(self.s2(x))
        x = self.squash(self.c3(x))
        x = self.squash(self.s4(x))
        x = self.squash(self.c5(x))
        x = self.squash(self.f6(self.flatten(x)))
        return self.output(x)


def lenet5(num_classes: int = 10, classic: bool = False) -> nn.Module:
    """LeNet-5 for 28x28 single-channel images.

    Args:
        num_classes: size of the output layer.
        classic: False for the modern variant (:class:`LeNet5`: ReLU, max-pool,
            full connections); True for the 1998 architecture
            (:class:`LeNet5Classic`: scaled tanh, trainable subsampling, the
            partial C3 connection table).
    """
    if num_classes < 1:
        raise ValueError(f"lenet5: num_classes must be >= 1, got {num_classes}")
    return LeNet5Classic(num_classes) if classic else LeNet5(num_classes)


__all__ = ["LeNet5", "LeNet5Classic", "MaskedConv2d", "ScaledTanh", "Subsampling", "c3_mask", "lenet5"]
