"""Parameter: a tensor that a Module registers as learnable."""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor, _as_storage


class Parameter(Tensor):
    """A leaf tensor that requires grad by default and is found by ``Module.parameters()``.

    Args:
        data: array-like or Tensor (shares memory with a float32 array or Tensor).
        requires_grad: default True.
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = np.empty((0,), dtype=np.float32)
        Tensor.__init__(self, _as_storage(data), requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + Tensor.__repr__(self)

    def __reduce_ex__(self, protocol):
        return (Parameter, (self.data, self.requires_grad))


class Buffer(Tensor):
    """Marks a tensor assigned to a Module attribute as a buffer (like ``torch.nn.Buffer``)."""

    __slots__ = ("persistent",)

    def __init__(self, data, persistent: bool = True):
        Tensor.__init__(self, _as_storage(data))
        self.persistent = persistent


__all__ = ["Buffer", "Parameter"]
