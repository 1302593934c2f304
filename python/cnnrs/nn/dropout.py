"""Dropout."""

from __future__ import annotations

from . import functional as F
from ._utils import check_probability
from .module import Module


class Dropout(Module):
    """In training, zero each element with probability p and scale the others by 1 / (1 - p);
    identity in eval mode. Masks come from the global generator (:func:`cnnrs.manual_seed`).

    Args:
        p (float): probability of an element to be zeroed. Default: 0.5.
        inplace (bool): accepted for compatibility (a new tensor is returned).
    """

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.p = check_probability("Dropout", "p", p)
        self.inplace = inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


__all__ = ["Dropout"]
