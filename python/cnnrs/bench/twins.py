"""PyTorch twins of cnnrs models, through a plain-data description of the layers.

``describe(model)`` turns a cnnrs module tree into nested dicts (layer type and
its constructor arguments); ``torch_from_description(d)`` builds the same tree
in PyTorch with the same child names, so that state_dict keys match and
cnnrs's weights load into the twin. A custom module becomes a Sequential of its
children in registration order: true for the models of ``cnnrs.models``
(features -> flatten -> classifier); the network cases check that both
compute the same logits before timing anything, so a model for which it is not
true fails loudly instead of being timed wrongly.

This file imports neither cnnrs nor numpy at the top, so that the peak-memory
child process of PyTorch can load it (``runpy.run_path``) without importing cnnrs.
"""

from __future__ import annotations

LEAF_ARGUMENTS = {
    "Conv2d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups"),
    "Linear": ("in_features", "out_features"),
    "ReLU": (),
    "MaxPool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "AvgPool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
    "AdaptiveAvgPool2d": ("output_size",),
    "Flatten": ("start_dim", "end_dim"),
    "Dropout": ("p",),
    "BatchNorm2d": ("num_features", "eps", "momentum"),
}


def _plain(value):
    """Tuples/lists of ints stay lists (JSON), other values pass through."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def describe(module) -> dict:
    """{"type": class name, "args": {...}} for a known layer, else a Sequential of the children."""
    kind = type(module).__name__
    if kind in LEAF_ARGUMENTS:
        args = {name: _plain(getattr(module, name)) for name in LEAF_ARGUMENTS[kind] if hasattr(module, name)}
        if kind in ("Conv2d", "Linear"):
            args["bias"] = getattr(module, "bias", None) is not None
        return {"type": kind, "args": args}
    children = [(name, describe(child)) for name, child in module.named_children() if child is not None]
    if not children:
        raise TypeError(f"no PyTorch twin for layer type {kind}")
    return {"type": "Sequential", "children": children}


def _torch_padding(padding):
    """cnnrs may keep a 4-sided (top, bottom, left, right) padding; PyTorch wants 2 (symmetric)."""
    if isinstance(padding, list) and len(padding) == 4:
        top, bottom, left, right = padding
        if top != bottom or left != right:
            raise ValueError(f"asymmetric padding {padding} has no Conv2d twin")
        return (top, left)
    return tuple(padding) if isinstance(padding, list) else padding


def torch_from_description(description: dict):
    """The PyTorch module described by ``describe``."""
    from collections import OrderedDict

    import torch

    kind = description["type"]
    if kind == "Sequential":
        return torch.nn.Sequential(
            OrderedDict((name, torch_from_description(child)) for name, child in description["children"])
        )
    args = dict(description.get("args", {}))
    if kind == "Conv2d" and "padding" in args:
        args["padding"] = _torch_padding(args["padding"])
    for key, value in args.items():
        if isinstance(value, list):
            args[key] = tuple(value)
    return getattr(torch.nn, kind)(**args)


def copy_state(cnnrs_state: dict, torch_module) -> None:
    """Load cnnrs's state_dict (arrays or tensors) into the twin; every twin tensor must be covered
    except BatchNorm's ``num_batches_tracked`` counter, and shapes must match."""
    import numpy as np
    import torch

    target = torch_module.state_dict()
    loaded = {}
    for key, value in cnnrs_state.items():
        array = np.array(value.numpy() if hasattr(value, "numpy") else value)
        if key not in target:
            raise KeyError(f"cnnrs state key {key!r} has no counterpart in the PyTorch twin")
        if tuple(array.shape) != tuple(target[key].shape):
            raise ValueError(f"{key}: cnnrs shape {array.shape} != PyTorch shape {tuple(target[key].shape)}")
        loaded[key] = torch.from_numpy(array.astype(target[key].numpy().dtype, copy=True))
    uncovered = [k for k in target if k not in loaded and not k.endswith("num_batches_tracked")]
    if uncovered:
        raise KeyError(f"PyTorch twin tensors without a cnnrs value: {uncovered}")
    torch_module.load_state_dict(loaded, strict=False)


def torch_training_step(model, x, y, lr: float, momentum: float):
    """One PyTorch training step (forward, cross-entropy, backward, SGD) on a fixed batch."""
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step
