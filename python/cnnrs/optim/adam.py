"""Adam and AdamW (torch.optim's update rules), one fused kernel call per group and step count."""

from __future__ import annotations

import numpy as np

from .. import _cnnrs
from .optimizer import Optimizer, as_kernel_array


class Adam(Optimizer):
    """Adam: adaptive moment estimation.

    Args:
        params: iterable of parameters or of dicts (parameter groups).
        lr (float): learning rate. Default: 1e-3.
        betas (tuple): coefficients of the running averages of the gradient and its square.
            Default: (0.9, 0.999).
        eps (float): added to the denominator. Default: 1e-8.
        weight_decay (float): L2 penalty added to the gradient (decoupled in AdamW). Default: 0.
        amsgrad (bool): use the maximum of past squared-gradient averages. Default: False.
        maximize (bool): maximise the objective instead. Default: False.
    """

    _decoupled = False

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if eps < 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = self._closure_loss(closure)
        for group in self.param_groups:
            amsgrad = group["amsgrad"]
            # The kernel takes one step count: bucket parameters by theirs (normally one bucket).
            buckets: dict = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = np.zeros_like(p.data)
                    state["exp_avg_sq"] = np.zeros_like(p.data)
                    if amsgrad:
                        state["max_exp_avg_sq"] = np.zeros_like(p.data)
                elif amsgrad and state.get("max_exp_avg_sq") is None:
                    state["max_exp_avg_sq"] = np.zeros_like(p.data)
                state["step"] += 1
                lists = buckets.setdefault(state["step"], ([], [], [], [], []))
                lists[0].append(p.data)
                lists[1].append(as_kernel_array(p.grad.data))
                lists[2].append(state["exp_avg"])
                lists[3].append(state["exp_avg_sq"])
                if amsgrad:
                    lists[4].append(state["max_exp_avg_sq"])
            beta1, beta2 = group["betas"]
            for step, (params, grads, exp_avgs, exp_avg_sqs, max_sqs) in buckets.items():
                _cnnrs.adam_step(
                    params,
                    grads,
                    exp_avgs,
                    exp_avg_sqs,
                    max_sqs if amsgrad else None,
                    step,
                    group["lr"],
                    beta1=beta1,
                    beta2=beta2,
                    eps=group["eps"],
                    weight_decay=group["weight_decay"],
                    decoupled_weight_decay=self._decoupled,
                    amsgrad=amsgrad,
                    maximize=group["maximize"],
                )
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay (p -= lr * weight_decay * p before the Adam update).

    Args: as :class:`Adam`, with weight_decay defaulting to 1e-2.
    """

    _decoupled = True

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


__all__ = ["Adam", "AdamW"]
