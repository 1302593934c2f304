"""Loss layers: CrossEntropyLoss, NLLLoss, MSELoss."""

from __future__ import annotations

from . import functional as F
from .module import Module


def _check_reduction(name: str, reduction: str) -> str:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


class CrossEntropyLoss(Module):
    r"""Log-softmax and negative log-likelihood in one fused kernel call.

    Args:
        weight: per-class weights - not supported (NotImplementedError) unless None.
        ignore_index (int): target value that contributes neither loss nor gradient. Default: -100.
        reduction (str): 'mean' (over non-ignored targets), 'sum' or 'none'. Default: 'mean'.
        label_smoothing (float): in [0, 1]; mixes the target with the uniform distribution. Default: 0.

    Shape:
        - Input: (N, C) logits (or (N, C, d1, ...)); Target: (N,) class indices (int64)
        - Output: scalar, or (N,) with reduction='none'

    Example:
        >>> logits = cnnrs.randn(64, 10, requires_grad=True)
        >>> loss = cnnrs.nn.CrossEntropyLoss()(logits, cnnrs.randint(10, size=(64,)))
        >>> loss.backward()
    """

    def __init__(
        self,
        weight=None,
        size_average=None,
        ignore_index: int = -100,
        reduce=None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        if weight is not None:
            raise NotImplementedError("CrossEntropyLoss: per-class weight is not supported by cnnrs")
        if size_average is not None or reduce is not None:
            raise NotImplementedError(
                "CrossEntropyLoss: size_average / reduce are deprecated; use reduction="
            )
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.ignore_index = ignore_index
        self.reduction = _check_reduction("CrossEntropyLoss", reduction)
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(
            input,
            target,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class NLLLoss(Module):
    """Negative log-likelihood of log-probabilities (use after LogSoftmax)."""

    def __init__(
        self, weight=None, size_average=None, ignore_index: int = -100, reduce=None, reduction: str = "mean"
    ):
        super().__init__()
        if weight is not None:
            raise NotImplementedError("NLLLoss: per-class weight is not supported by cnnrs")
        self.ignore_index = ignore_index
        self.reduction = _check_reduction("NLLLoss", reduction)

    def forward(self, input, target):
        return F.nll_loss(input, target, ignore_index=self.ignore_index, reduction=self.reduction)


class MSELoss(Module):
    """Mean squared error (x - y)^2, reduced by 'mean', 'sum' or not ('none')."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        self.reduction = _check_reduction("MSELoss", reduction)

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


__all__ = ["CrossEntropyLoss", "MSELoss", "NLLLoss"]
