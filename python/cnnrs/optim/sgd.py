"""Stochastic gradient descent (torch.optim.SGD), one fused kernel call per parameter group."""

from __future__ import annotations

import numpy as np

from .. import _cnnrs
from .optimizer import Optimizer, as_kernel_array


class SGD(Optimizer):
    """SGD with optional momentum, dampening, Nesterov momentum and weight decay; torch's update rule.

    Args:
        params: iterable of parameters or of dicts (parameter groups).
        lr (float): learning rate. Default: 1e-3.
        momentum (float): momentum factor. Default: 0.
        dampening (float): dampening for momentum. Default: 0.
        weight_decay (float): L2 penalty. Default: 0.
        nesterov (bool): Nesterov momentum (needs momentum > 0 and dampening = 0). Default: False.
        maximize (bool): maximise the objective instead. Default: False.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = self._closure_loss(closure)
        for group in self.param_groups:
            momentum = group["momentum"]
            options = {
                "lr": group["lr"],
                "momentum": momentum,
                "dampening": group["dampening"],
                "weight_decay": group["weight_decay"],
                "nesterov": group["nesterov"],
                "maximize": group["maximize"],
            }
            # Parameters whose momentum buffer exists, and those on their first step (buffer := grad).
            params, grads, buffers = [], [], []
            new_params, new_grads, new_buffers = [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if momentum == 0:
                    params.append(p.data)
                    grads.append(as_kernel_array(p.grad.data))
                    continue
                state = self.state[p]
                buffer = state.get("momentum_buffer")
                if buffer is None:
                    buffer = state["momentum_buffer"] = np.empty_like(p.data)
                    new_params.append(p.data)
                    new_grads.append(as_kernel_array(p.grad.data))
                    new_buffers.append(buffer)
                else:
                    params.append(p.data)
                    grads.append(as_kernel_array(p.grad.data))
                    buffers.append(buffer)
            if params:
                _cnnrs.sgd_step(
                    params, grads, buffers if momentum != 0 else None, **options, first_step=False
                )
            if new_params:
                _cnnrs.sgd_step(new_params, new_grads, new_buffers, **options, first_step=True)
        return loss


__all__ = ["SGD"]
