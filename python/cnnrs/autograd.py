"""Reverse-mode automatic differentiation over a dynamic graph.

Every differentiable op is a :class:`Function` subclass (tinygrad style): its
``forward`` takes numpy arrays and returns one, saving on ``self`` only what
``backward`` needs; ``backward`` maps the gradient of the output to one
gradient per tensor input (``None`` where ``needs_input_grad`` is False).
``Function.apply`` runs the op and, when some input requires a gradient,
links the output tensor to the Function object: that link is the graph.

:func:`run_backward` walks the graph from the output in reverse topological
order, adds gradients that meet at a node, and accumulates gradients of
leaves (tensors made by the user, e.g. parameters) into their ``.grad``.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from . import _allocator


class _GradModeState(threading.local):
    """Per thread, as in torch: a no_grad block in one thread leaves the others recording."""

    enabled = True


_GradMode = _GradModeState()


def is_grad_enabled() -> bool:
    """True unless inside :class:`no_grad` (or ``set_grad_enabled(False)``)."""
    return _GradMode.enabled


class _GradModeContext:
    """Context manager and decorator that sets the grad mode and restores it on exit."""

    mode = True

    def __new__(cls, func=None):
        self = super().__new__(cls)
        if callable(func):  # used as a bare decorator: @no_grad
            self.__init__()
            return self(func)
        return self

    def __init__(self, func=None):
        self.prev = []

    def __enter__(self):
        self.prev.append(_GradMode.enabled)
        _GradMode.enabled = self.mode

    def __exit__(self, *exc):
        _GradMode.enabled = self.prev.pop()
        return False

    def __call__(self, func):
        mode_cls = type(self)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with mode_cls():
                return func(*args, **kwargs)

        return wrapper


class no_grad(_GradModeContext):
    """Disable graph recording: ``with cnnrs.no_grad(): ...`` or ``@cnnrs.no_grad()``."""

    mode = False


class enable_grad(_GradModeContext):
    """Re-enable graph recording inside a :class:`no_grad` block."""

    mode = True


class set_grad_enabled(_GradModeContext):
    """``set_grad_enabled(False)`` acts as :class:`no_grad`; also usable as a plain call."""

    def __new__(cls, mode: bool):
        return object.__new__(cls)

    def __init__(self, mode: bool):
        self.prev = [_GradMode.enabled]
        self.mode = bool(mode)
        _GradMode.enabled = self.mode  # like torch: takes effect even without `with`

    def __enter__(self):
        _GradMode.enabled = self.mode


class Function:
    """One differentiable op. Subclasses define ``forward`` and ``backward``.

    ``forward(*arrays, **options)`` receives the numpy arrays of the tensor
    arguments (options are plain Python values) and may read
    ``self.needs_input_grad`` to skip saving what no gradient will need.
    ``backward(grad_output)`` returns one array (or None) per tensor input,
    as a tuple when there are several inputs.
    """

    needs_input_grad: tuple = ()
    inputs: tuple = ()
    _freed = False

    @classmethod
    def apply(cls, *tensors, **options):
        """Run the op on tensors; record it in the graph if any input requires grad."""
        return Function.run(cls(), tensors, options)

    @staticmethod
    def run(fn, tensors: tuple, options: dict):
        """apply() on an existing Function object (for ops whose caller reads extra results from it)."""
        if _GradMode.enabled:
            needs = tuple([t.requires_grad for t in tensors])
            track = True in needs
        else:
            needs = (False,) * len(tensors)
            track = False
        fn.needs_input_grad = needs
        out = Tensor.__new__(Tensor)
        out.data = fn.forward(*[t.data for t in tensors], **options)
        out.grad = None
        out._retains_grad = False
        if track:
            fn.inputs = tensors
            out.requires_grad = True
            out._ctx = fn
        else:
            out.requires_grad = False
            out._ctx = None
        return out

    def forward(self, *arrays, **options):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad_output):  # pragma: no cover - abstract
        raise NotImplementedError

    def release(self):
        """Drop saved arrays and the links to the inputs once backward has used them (unless
        retain_graph): a loss tensor kept alive afterwards then no longer pins every activation."""
        d = self.__dict__
        needs = d["needs_input_grad"]
        d.clear()
        d["needs_input_grad"], d["_freed"] = needs, True

    @property
    def name(self) -> str:
        return type(self).__name__ + "Backward"


def _topological_order(root) -> list:
    """Non-leaf tensors reachable from root, root first, each before its inputs."""
    order = []
    visited = set()
    # Iterative DFS (deep graphs must not hit the recursion limit).
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in node._ctx.inputs:
            if parent._ctx is not None and id(parent) not in visited:
                stack.append((parent, False))
    order.reverse()
    return order


def _accumulate_leaf(leaf, grad: np.ndarray, handed_out: set) -> None:
    if grad.dtype != leaf.data.dtype:
        grad = grad.astype(leaf.data.dtype)
    if leaf.grad is None:
        # A leaf must own its gradient: the same array (or a view of another
        # gradient) may have been handed to a second leaf or saved elsewhere.
        if id(grad) in handed_out or grad.base is not None or not grad.flags.writeable:
            grad = grad.copy()
        handed_out.add(id(grad))
        leaf.grad = Tensor._wrap(grad)
    else:
        # Out of place: the old .grad array may be shared with a user variable.
        leaf.grad = Tensor._wrap(leaf.grad.data + grad)


def run_backward(
    root, grad_output: np.ndarray, retain_graph: bool = False, capture: dict | None = None
) -> None:
    """Backpropagate grad_output from root through the recorded graph.

    With ``capture`` (a dict keyed by id(tensor)), gradients of those tensors are
    stored there instead of in any ``.grad`` (what :func:`grad` returns).
    """
    if not _allocator._State.done:
        _allocator.keep_freed_memory()
    if root._ctx is None:
        if capture is not None:
            if id(root) in capture:
                capture[id(root)] = grad_output
        elif root.requires_grad:
            _accumulate_leaf(root, grad_output, set())
        return
    grads = {id(root): grad_output}
    handed_out: set = set()
    for node in _topological_order(root):
        grad = grads.pop(id(node), None)
        if grad is None:
            continue
        if capture is not None:
            if id(node) in capture:
                capture[id(node)] = grad
        elif node._retains_grad:
            node.grad = Tensor._wrap(grad.copy() if node.grad is None else node.grad.data + grad)
        fn = node._ctx
        if fn._freed:
            raise RuntimeError(
                f"Trying to backward through the graph a second time ({fn.name}): its saved arrays "
                "were freed after the first backward. Pass retain_graph=True to the first backward()."
            )
        input_grads = fn.backward(grad)
        if len(fn.inputs) == 1:
            input_grads = (input_grads,)
        for tensor, need, g in zip(fn.inputs, fn.needs_input_grad, input_grads):
            if not need or g is None:
                continue
            if tensor._ctx is None:
                if capture is None:
                    _accumulate_leaf(tensor, g, handed_out)
                elif id(tensor) in capture:
                    previous = capture[id(tensor)]
                    capture[id(tensor)] = g if previous is None else previous + g
            else:
                key = id(tensor)
                previous = grads.get(key)
                grads[key] = g if previous is None else previous + g
        if not retain_graph:
            fn.release()


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool = False, allow_unused: bool = False) -> tuple:
    """Gradients of outputs with respect to inputs, returned (a tuple) instead of stored in ``.grad``."""
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    if grad_outputs is None:
        if outputs.data.size != 1:
            raise RuntimeError("grad can be implicitly created only for scalar outputs")
        seed = np.ones(outputs.data.shape, dtype=outputs.data.dtype)
    else:
        seed = np.asarray(grad_outputs.data if isinstance(grad_outputs, Tensor) else grad_outputs)
        seed = seed.astype(outputs.data.dtype, copy=False)
    if not outputs.requires_grad:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    capture = {id(t): None for t in inputs}
    run_backward(outputs, seed, retain_graph, capture)
    result = []
    for t in inputs:
        g = capture[id(t)]
        if g is None and not allow_unused:
            raise RuntimeError(
                "One of the differentiated Tensors appears to not have been used in the graph. "
                "Set allow_unused=True if this is the desired behavior."
            )
        result.append(None if g is None else Tensor._wrap(np.array(g, dtype=t.data.dtype)))
    return tuple(result)


# Bound by tensor.py once Tensor exists (the two modules refer to each other).
Tensor = None

__all__ = [
    "Function",
    "enable_grad",
    "grad",
    "is_grad_enabled",
    "no_grad",
    "run_backward",
    "set_grad_enabled",
]
