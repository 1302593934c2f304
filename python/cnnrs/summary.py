"""``summary(model, input_shape)``: per-layer shapes, parameters, multiply-adds and receptive fields.

It runs one forward pass on zeros under ``no_grad`` with a forward hook on
every leaf module, so it reports what the model really does, in the order it
does it (a module called twice gives two rows).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from .autograd import no_grad
from .nn import Conv2d, Linear, Module
from .tensor import Tensor


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def _window(module, in_hw: tuple[int, int], out_hw: tuple[int, int]):
    """(kernel, stride, dilation) of a layer that slides a window, or None for a pointwise layer.

    Read from the PyTorch-style attributes (kernel_size / stride / dilation);
    an adaptive pool is treated as the fixed pool that gives the same output.
    """
    if hasattr(module, "output_size") and not hasattr(module, "kernel_size"):  # AdaptiveAvgPool2d
        if in_hw == out_hw:
            return None
        stride = tuple(max(i // o, 1) for i, o in zip(in_hw, out_hw))
        kernel = tuple(i - (o - 1) * s for i, o, s in zip(in_hw, out_hw, stride))
        return kernel, stride, (1, 1)
    if not hasattr(module, "kernel_size"):
        return None
    kernel = _pair(module.kernel_size)
    stride = _pair(module.stride if getattr(module, "stride", None) is not None else module.kernel_size)
    dilation = _pair(getattr(module, "dilation", 1))
    return kernel, stride, dilation


def _macs(module, output_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one call of a conv or linear layer; bias, activations, pooling and
    normalisation count 0. A module can report its own count with ``count_macs(output_shape)``."""
    if hasattr(module, "count_macs"):
        return int(module.count_macs(output_shape))
    out_numel = int(np.prod(output_shape))
    if isinstance(module, Conv2d):
        _, c_in_per_group, kh, kw = module.weight.shape
        return out_numel * c_in_per_group * kh * kw
    if isinstance(module, Linear):
        return out_numel * int(module.weight.shape[1])
    return 0


def _num_params(module) -> int:
    if hasattr(module, "num_effective_parameters"):
        return int(module.num_effective_parameters())
    return sum(int(np.prod(p.shape)) for p in module.parameters())


def _leaf_names(model: Module) -> dict[int, str]:
    names = {}
    for name, module in model.named_modules():
        if not list(module.children()) and id(module) not in names:
            names[id(module)] = name or type(module).__name__
    return names


def _fmt_rf(rf) -> str:
    if rf is None:
        return "-"
    return str(rf[0]) if rf[0] == rf[1] else f"{rf[0]}x{rf[1]}"


def summary(
    model: Module,
    input_shape: Sequence[int],
    print_fn: Optional[Callable[[str], None]] = print,
) -> list[dict]:
    """Print and return one row per leaf-layer call of ``model`` on an input of ``input_shape``.

    Args:
        model: any cnnrs module taking one image batch.
        input_shape: (C, H, W) or (N, C, H, W); without a batch dimension a
            batch of 1 is used, so multiply-adds are per image.
        print_fn: called with each line of the table; None prints nothing.

    Returns:
        A list of dicts with keys ``name``, ``type``, ``output_shape``,
        ``params``, ``macs``, ``receptive_field`` and ``jump``. The receptive
        field is the side (in input pixels) of the input window one output
        unit sees, and the jump the distance in input pixels between adjacent
        outputs: r_out = r_in + (k_eff - 1) * j_in, j_out = j_in * stride,
        k_eff = dilation * (k - 1) + 1. Both are None (printed "-") once the
        data is no longer an image (after a flatten: every unit sees it all).
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) in (1, 3):
        shape = (1, *shape)
    if any(s < 1 for s in shape):
        raise ValueError(f"summary: input_shape must be positive, got {tuple(input_shape)}")

    names = _leaf_names(model)
    rows: list[dict] = []
    # Receptive field state along the chain of calls: per axis (size, jump).
    state = {
        "rf": (1, 1),
        "jump": (1, 1),
        "spatial": len(shape) == 4,
        "hw": shape[2:4] if len(shape) == 4 else None,
    }

    def hook(module, inputs, output):
        out_shape = tuple(int(s) for s in output.shape)
        in_shape = tuple(int(s) for s in inputs[0].shape) if inputs else out_shape
        if state["spatial"] and len(out_shape) == 4 and len(in_shape) == 4:
            window = _window(module, in_shape[2:], out_shape[2:])
            if window is not None:
                kernel, stride, dilation = window
                state["rf"] = tuple(
                    r + (d * (k - 1)) * j for r, k, d, j in zip(state["rf"], kernel, dilation, state["jump"])
                )
                state["jump"] = tuple(j * s for j, s in zip(state["jump"], stride))
        elif len(out_shape) != 4:
            state["spatial"] = False
        spatial = state["spatial"]
        rows.append(
            {
                "name": names.get(id(module), type(module).__name__),
                "type": type(module).__name__,
                "output_shape": out_shape,
                "params": _num_params(module),
                "macs": _macs(module, out_shape),
                "receptive_field": (state["rf"][0] if state["rf"][0] == state["rf"][1] else state["rf"])
                if spatial
                else None,
                "jump": (state["jump"][0] if state["jump"][0] == state["jump"][1] else state["jump"])
                if spatial
                else None,
            }
        )

    handles = [m.register_forward_hook(hook) for m in model.modules() if id(m) in names]
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            model(Tensor(np.zeros(shape, dtype=np.float32)))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    if print_fn is not None:
        _print_table(model, shape, rows, print_fn)
    return rows


def _print_table(model, shape, rows, print_fn) -> None:
    headers = ("Layer", "Type", "Output shape", "Params", "MACs", "RF", "Jump")
    table = [
        (
            r["name"],
            r["type"],
            str(tuple(r["output_shape"])),
            f"{r['params']:,}",
            f"{r['macs']:,}",
            _fmt_rf(None if r["receptive_field"] is None else _pair(r["receptive_field"])),
            _fmt_rf(None if r["jump"] is None else _pair(r["jump"])),
        )
        for r in rows
    ]
    widths = [
        max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(headers)
    ]
    right = {3, 4, 5, 6}

    def line(cells):
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )

    rule = "-" * len(line(headers))
    total_params = sum(_num_params(m) for m in model.modules() if not list(m.children()))
    trainable = sum(
        _num_params(m)
        for m in model.modules()
        if not list(m.children()) and all(getattr(p, "requires_grad", True) for p in m.parameters())
    )
    print_fn(f"{type(model).__name__} on input {shape}")
    print_fn(rule)
    print_fn(line(headers))
    print_fn(rule)
    for row in table:
        print_fn(line(row))
    print_fn(rule)
    print_fn(f"Total params: {total_params:,} (trainable: {trainable:,})")
    print_fn(f"Total MACs: {sum(r['macs'] for r in rows):,} (batch of {shape[0]})")
    if rows:
        print_fn(f"Output shape: {tuple(rows[-1]['output_shape'])}")


__all__ = ["summary"]
