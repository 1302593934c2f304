"""Containers: Sequential, ModuleList, ModuleDict."""

from __future__ import annotations

from collections import OrderedDict

from .activation import ReLU
from .conv import Conv2d
from .linear import Linear
from .module import Module
from .normalization import BatchNorm2d
from .pooling import MaxPool2d


def _plain(module: Module, cls: type) -> bool:
    """module is exactly cls (no subclass overriding forward) and nothing observes its output."""
    return type(module) is cls and not module._forward_hooks and not module._forward_pre_hooks


def _run_fused(modules: list, input):
    """Run modules in order, fusing what the kernels can do in one call.

    - Conv2d -> ReLU -> MaxPool2d: the ReLU runs inside the pooling kernel (its backward then
      needs no separate ReLU mask pass over the large convolution output);
    - Conv2d -> ReLU: the ReLU runs in the convolution's epilogue;
    - Linear -> ReLU: bias and ReLU run in the GEMM call;
    - BatchNorm2d -> ReLU (not followed by a max pool): the ReLU runs in the batch-norm kernels;
    - ReLU -> MaxPool2d: the ReLU runs inside the pooling kernel.
    Each is bit-identical to the unfused sequence, forward and backward. Modules with hooks,
    subclasses and max pools that return indices are never fused.
    """
    i, n = 0, len(modules)
    while i < n:
        module = modules[i]
        nxt = modules[i + 1] if i + 1 < n else None
        after = modules[i + 2] if i + 2 < n else None
        if nxt is not None and _plain(nxt, ReLU):
            if _plain(module, Conv2d):
                if after is not None and _plain(after, MaxPool2d) and not after.return_indices:
                    input = after.forward_relu(module.forward(input))
                    i += 3
                else:
                    input = module.forward_relu(input)
                    i += 2
                continue
            if _plain(module, Linear):
                input = module.forward_relu(input)
                i += 2
                continue
            # (A ReLU followed by a max pool goes into the pool kernel instead: below.)
            followed_by_pool = after is not None and _plain(after, MaxPool2d) and not after.return_indices
            if _plain(module, BatchNorm2d) and not followed_by_pool:
                input = module.forward_relu(input)
                i += 2
                continue
        elif nxt is not None and _plain(module, ReLU) and _plain(nxt, MaxPool2d) and not nxt.return_indices:
            input = nxt.forward_relu(input)
            i += 2
            continue
        input = module(input)
        i += 1
    return input


class Sequential(Module):
    """Modules called in order, each on the previous output.

    ``Sequential(m0, m1, ...)`` names the children "0", "1", ...; ``Sequential(OrderedDict)``
    keeps the given names. Supports indexing, slicing (a new Sequential), len and iteration.
    Conv2d -> ReLU, Linear -> ReLU, BatchNorm2d -> ReLU, ReLU -> MaxPool2d and
    Conv2d -> ReLU -> MaxPool2d run with the ReLU fused into the convolution, GEMM, batch-norm
    or pooling kernel (bit-identical to running them one after the other).

    Example:
        >>> net = cnnrs.nn.Sequential(cnnrs.nn.Conv2d(1, 6, 5), cnnrs.nn.ReLU(), cnnrs.nn.MaxPool2d(2))
        >>> net[0]
        Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))
    """

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(args):
                self.add_module(str(i), module)

    def _index(self, idx: int) -> int:
        n = len(self._modules)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range for Sequential of length {n}")
        return idx % n

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        return list(self._modules.values())[self._index(idx)]

    def __setitem__(self, idx: int, module: Module) -> None:
        key = list(self._modules)[self._index(idx)]
        setattr(self, key, module)

    def __delitem__(self, idx) -> None:
        keys = list(self._modules)
        for key in keys[idx] if isinstance(idx, slice) else [keys[self._index(idx)]]:
            del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules) -> Sequential:
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> Sequential:
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._modules.clear()
        for i, m in enumerate(modules):
            self.add_module(str(i), m)
        return self

    def forward(self, input):
        return _run_fused(list(self._modules.values()), input)


class ModuleList(Module):
    """A list of modules registered as children "0", "1", ..."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        return list(self._modules.values())[idx]

    def __setitem__(self, idx: int, module: Module) -> None:
        key = list(self._modules)[idx]
        setattr(self, key, module)

    def __delitem__(self, idx) -> None:
        modules = list(self._modules.values())
        del modules[idx]
        self._modules.clear()
        for i, m in enumerate(modules):
            self.add_module(str(i), m)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules) -> ModuleList:
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._modules.clear()
        for i, m in enumerate(modules):
            self.add_module(str(i), m)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward(); iterate over its modules")


class ModuleDict(Module):
    """A dict of modules registered under their keys."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def update(self, modules) -> None:
        items = modules.items() if hasattr(modules, "items") else modules
        for key, module in items:
            self.add_module(key, module)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward(); call its modules")


__all__ = ["ModuleDict", "ModuleList", "Sequential"]
