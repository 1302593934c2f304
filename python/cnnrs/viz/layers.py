"""Reach into a model: find a layer by name, run the forward pass up to it, and take
gradients with respect to the input while the model's parameters stay untouched.

Every visualisation is "change the input to raise some quantity computed at one
layer". That needs three things, all here:

* :func:`resolve_layer` turns ``"features.3"`` (a name from ``named_modules()``),
  ``3`` (an index into a ``Sequential``) or ``""`` / ``"output"`` (the whole model)
  into a module;
* :func:`forward_to` runs the model and returns that module's output, stopping
  the forward pass there (a forward hook raises) so later layers cost nothing;
* :func:`input_gradient` evaluates an objective on that output in numpy and
  pushes its gradient back to the input with ``Tensor.backward(gradient)``.

:func:`frozen` puts the model in eval mode and switches ``requires_grad`` off on
its parameters for the duration, then restores both, so no gradient is ever
accumulated into a weight.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Optional, Sequence, Tuple, Union

import numpy as np

LayerRef = Union[str, int, None]

# An objective maps the layer's output (numpy, float64) to (per-image value (N,), d value / d output).
Objective = Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]]


class _StopForward(Exception):
    """Raised by the capture hook to end the forward pass at the chosen layer."""

    def __init__(self, output):
        super().__init__("forward pass stopped at the visualised layer")
        self.output = output


def layer_names(model) -> list:
    """Names of all sub-modules, as ``named_modules()`` gives them (the root is ``""``)."""
    return [name for name, _ in model.named_modules()]


def resolve_layer(model, layer: LayerRef):
    """Return ``(name, module)`` for a layer given by name, Sequential index, or None/"output".

    Raises ValueError listing the valid names when the layer does not exist.
    """
    if layer is None or layer in ("", "output", "logits"):
        return "", model
    modules = dict(model.named_modules())
    key = str(layer)
    if key in modules:
        return key, modules[key]
    # A bare (possibly negative) index into a Sequential model, e.g. -1 for the last layer.
    if isinstance(layer, int) or key.lstrip("-").isdigit():
        children = list(model.named_children()) if hasattr(model, "named_children") else []
        index = int(key)
        if children and -len(children) <= index < len(children):
            return children[index]
    names = ", ".join(repr(n) for n in modules if n) or "(none)"
    raise ValueError(f"layer {layer!r} not found in {type(model).__name__}; layers are: {names}")


@contextlib.contextmanager
def frozen(model) -> Iterator[None]:
    """Eval mode and ``requires_grad=False`` on every parameter; both restored on exit."""
    was_training = bool(getattr(model, "training", False))
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    model.eval()
    for p in params:
        p.requires_grad = False
    try:
        yield
    finally:
        for p, flag, grad in zip(params, flags, grads):
            p.requires_grad = flag
            p.grad = grad
        model.train(was_training)


def forward_to(model, layer: LayerRef, x, with_input: bool = False):
    """Run ``model(x)`` and return the output of ``layer`` (the model's output for None).

    With ``with_input`` return ``(output, input)``: the tensor the layer received
    as well (``x`` itself for the whole model).
    """
    name, module = resolve_layer(model, layer)
    if module is model:
        out = model(x)
        return (out, x) if with_input else out

    def stop(_module, inputs, output):
        raise _StopForward((output, inputs[0] if inputs else None))

    handle = module.register_forward_hook(stop)
    try:
        model(x)
    except _StopForward as captured:
        out, received = captured.output
        return (out, received) if with_input else out
    finally:
        handle.remove()
    raise RuntimeError(f"layer {name!r} was not called during the forward pass of {type(model).__name__}")


class InputNormalization:
    """The data set's ``(x - mean) / std`` step, applied outside the model.

    Visualisations work on images in pixel range [0, 1]; the model may expect
    standardised input. ``mean``/``std`` are scalars or one value per channel.
    """

    def __init__(self, mean: Union[float, Sequence[float]] = 0.0, std: Union[float, Sequence[float]] = 1.0):
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1, 1, 1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1, 1, 1)
        if np.any(self.std <= 0):
            raise ValueError(f"InputNormalization: std must be positive, got {std}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std

    def backward(self, grad: np.ndarray) -> np.ndarray:
        """Chain rule through the affine map: d/dx = d/d(normalised x) / std."""
        return grad / self.std


def as_normalization(normalize) -> Optional[InputNormalization]:
    """Accept None, an InputNormalization, or a ``(mean, std)`` pair."""
    if normalize is None or isinstance(normalize, InputNormalization):
        return normalize
    mean, std = normalize
    return InputNormalization(mean, std)


def evaluate(model, layer: LayerRef, x: np.ndarray, normalize=None) -> np.ndarray:
    """The layer's output for a numpy batch, without building a graph (float64 numpy)."""
    import cnnrs

    norm = as_normalization(normalize)
    x_in = norm(x) if norm is not None else x
    with cnnrs.no_grad():
        out = forward_to(model, layer, cnnrs.from_numpy(np.ascontiguousarray(x_in, dtype=np.float32)))
    return out.numpy().astype(np.float64)


def input_gradient(
    model, layer: LayerRef, x: np.ndarray, objective: Objective, normalize=None
) -> Tuple[np.ndarray, np.ndarray]:
    """Value of ``objective`` on the layer's output for batch ``x`` and its gradient w.r.t. ``x``.

    Only the input tensor requires a gradient. Call inside :func:`frozen` so the
    parameters are not part of the graph. Returns ``(values (N,), grad like x)``
    as float64 numpy arrays.
    """
    import cnnrs

    norm = as_normalization(normalize)
    x_in = norm(x) if norm is not None else x
    x_tensor = cnnrs.tensor(np.ascontiguousarray(x_in, dtype=np.float32), requires_grad=True)
    out, received = forward_to(model, layer, x_tensor, with_input=True)
    values, grad_out = objective(out.numpy().astype(np.float64))
    silent = ~np.any(grad_out.reshape(grad_out.shape[0], -1) != 0, axis=1)
    fallback = getattr(objective, "silent_fallback", None)
    # A filter behind a ReLU that is silent on an image has no gradient at all: ascend
    # its pre-activation instead (the layer's input, for an elementwise layer) until it fires.
    if fallback is not None and silent.any() and received is not None and received.shape == out.shape:
        out.backward(_as_tensor(grad_out), retain_graph=True)
        received.backward(_as_tensor(fallback(received.numpy().astype(np.float64), silent)))
    else:
        out.backward(_as_tensor(grad_out))
    if x_tensor.grad is None:
        grad = np.zeros(x.shape, dtype=np.float64)
    else:
        grad = x_tensor.grad.numpy().astype(np.float64)
    if norm is not None:
        grad = norm.backward(grad)
    return values, grad


def _as_tensor(array: np.ndarray):
    import cnnrs

    return cnnrs.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


# --- objectives: value per image and its gradient with respect to the layer output ---


def _unit_mask(shape: Sequence[int], units: Sequence[int]) -> np.ndarray:
    """One-hot mask selecting unit ``units[i]`` (channel of a conv map, or feature) for image i."""
    mask = np.zeros((shape[0], shape[1]) + (1,) * (len(shape) - 2))
    mask[np.arange(shape[0]), np.asarray(units)] = 1.0
    return mask


def filter_norm_objective(units: Sequence[int]) -> Objective:
    """``L_i = ||h[i, units[i]]||_2`` (the course's filter objective), one unit per image.

    Its ``silent_fallback`` gives, for images where the unit is silent (the
    norm is 0, so there is no gradient), the gradient of the unit's largest
    pre-activation, which :func:`input_gradient` uses when the layer is
    elementwise (a ReLU).
    """

    def objective(h: np.ndarray):
        if h.ndim < 2:
            raise ValueError(f"filter objective: layer output must be (N, C, ...), got shape {h.shape}")
        if max(units) >= h.shape[1] or min(units) < 0:
            raise ValueError(f"filter index out of range: layer has {h.shape[1]} units, asked for {units}")
        selected = h * _unit_mask(h.shape, units)
        norms = np.sqrt((selected**2).reshape(h.shape[0], -1).sum(axis=1))
        # d||v||/dv = v / ||v||; at v = 0 the norm has no gradient: use zero.
        safe = np.where(norms > 0, norms, 1.0).reshape((-1,) + (1,) * (h.ndim - 1))
        return norms, selected / safe

    def silent_fallback(pre_activation: np.ndarray, silent: np.ndarray) -> np.ndarray:
        # Raise the unit's pre-activation where it is closest to firing: the gradient of a
        # soft maximum over positions (log-sum-exp, temperature a quarter of the spread).
        # Raising the mean instead can settle on a flat image that never fires; a hard
        # maximum jumps from place to place.
        grad = np.zeros_like(pre_activation)
        for i in np.flatnonzero(silent):
            plane = pre_activation[i, units[i]]
            temperature = 0.25 * plane.std() + 1e-12
            weights = np.exp((plane - plane.max()) / temperature)
            grad[i, units[i]] = weights / weights.sum()
        return grad

    objective.silent_fallback = silent_fallback
    return objective


def class_score_objective(classes: Sequence[int]) -> Objective:
    """``L_i = logits[i, classes[i]]`` (pre-softmax score)."""

    def objective(logits: np.ndarray):
        if logits.ndim != 2:
            raise ValueError(f"class objective: model output must be (N, classes), got shape {logits.shape}")
        if max(classes) >= logits.shape[1] or min(classes) < 0:
            raise ValueError(f"class index out of range: model has {logits.shape[1]} classes, got {classes}")
        rows = np.arange(logits.shape[0])
        grad = np.zeros_like(logits)
        grad[rows, np.asarray(classes)] = 1.0
        return logits[rows, np.asarray(classes)], grad

    return objective


def activation_energy_objective(h: np.ndarray):
    """``L_i = 0.5 * ||h_i||^2`` over the whole layer (Deep Dream's "more of everything")."""
    return 0.5 * (h**2).reshape(h.shape[0], -1).sum(axis=1), h
