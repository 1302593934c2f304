"""Optimizer: parameter groups, per-parameter state and state_dict, as torch.optim.Optimizer."""

from __future__ import annotations

import copy
from collections import defaultdict

import numpy as np

from ..autograd import enable_grad
from ..tensor import Tensor


class _RequiredParameter:
    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


_F32_DTYPE = np.dtype(np.float32)


def as_kernel_array(a: np.ndarray) -> np.ndarray:
    """float32 and C-contiguous, copying only when needed (what the optimiser kernels take)."""
    if (a.dtype is _F32_DTYPE or a.dtype == np.float32) and a.flags.c_contiguous:
        return a
    return np.ascontiguousarray(a, dtype=np.float32)


class Optimizer:
    """Base class: holds ``param_groups`` (dicts of params + options) and ``state`` (per param).

    ``state[p]`` holds float32 numpy arrays under torch's names ('momentum_buffer',
    'exp_avg', ...) and 'step' as an int.
    """

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list = []
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, "
                f"but got {type(params).__name__}"
            )
        if isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, not sets")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, not sets")
        params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}"
                )
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
            if p.data.dtype != np.float32:
                raise TypeError(f"optimizer can only optimize float32 tensors, got {p.data.dtype}")
        group = dict(param_group)
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(
                    f"parameter group didn't specify a value of required optimization parameter {name}"
                )
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad.data[...] = 0

    def step(self, closure=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def _closure_loss(self, closure):
        if closure is None:
            return None
        with enable_grad():
            return closure()

    # ------------------------------------------------------------------ state dict

    def state_dict(self) -> dict:
        """torch's layout: {'state': {param index: {...}}, 'param_groups': [{..., 'params': [indices]}]}."""
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for ours, theirs in zip(self.param_groups, saved_groups):
            if len(ours["params"]) != len(theirs["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group "
                    "that doesn't match the size of optimizer's group"
                )
        params = {
            i: p
            for g_saved, g in zip(saved_groups, self.param_groups)
            for i, p in zip(g_saved["params"], g["params"])
        }
        self.state = defaultdict(dict)
        for key, value in state_dict["state"].items():
            key = int(key)
            if key not in params:
                continue
            p = params[key]
            self.state[p] = {name: _state_value(name, v, p) for name, v in value.items()}
        for group, saved in zip(self.param_groups, saved_groups):
            for name, value in saved.items():
                if name != "params":
                    group[name] = copy.deepcopy(value)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _state_value(name: str, value, param: Tensor):
    if name == "step":
        return int(float(np.asarray(value.data if isinstance(value, Tensor) else value)))
    if value is None:
        return None
    array = np.asarray(value.data if isinstance(value, Tensor) else value)
    if array.shape != param.data.shape:
        raise ValueError(
            f"optimizer state '{name}' has shape {array.shape}, but its parameter has {param.data.shape}"
        )
    return np.array(array, dtype=np.float32, order="C")  # a private copy


__all__ = ["Optimizer", "required"]
