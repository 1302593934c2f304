"""Class images: the input that maximises a class's pre-softmax score."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np

from .ascent import AscentSettings, ascend
from .filters import infer_image_shape, save_grid
from .layers import class_score_objective, evaluate, frozen


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, shifted by the row maximum for stability."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def class_image(
    model,
    target_class: Union[int, Sequence[int]],
    steps: int = 200,
    lr: float = 0.1,
    image_shape: Optional[Sequence[int]] = None,
    jitter: int = 2,
    l2_decay: float = 0.0,
    blur_every: int = 4,
    blur_sigma: float = 0.8,
    clip: Optional[Tuple[float, float]] = (0.0, 1.0),
    seed: int = 0,
    out=None,
    normalize=None,
    normalize_grad: bool = True,
    scale: int = 4,
):
    """An image that maximises the logit (pre-softmax score) of ``target_class``.

    Gradient ascent on the input from ``x_0 ~ U[0, 1]^{C x H x W}`` with the
    regularisers of :mod:`cnnrs.viz.ascent`. The logit, not the softmax
    probability, is maximised: raising the probability can be done by lowering
    the other classes, which gives less telling pictures.

    ``target_class`` may be one class or a sequence of classes (one image each,
    optimised together).

    Returns:
        ``(image, confidence)``: a ``(C, H, W)`` float32 image and the model's
        softmax probability of the class on it; for a sequence of classes a
        ``(N, C, H, W)`` batch and an ``(N,)`` array. ``out`` writes a PNG
        (a grid for several classes).
    """
    single = isinstance(target_class, (int, np.integer))
    classes = [int(target_class)] if single else [int(c) for c in target_class]
    if not classes:
        raise ValueError("class_image: no target class given")
    shape = infer_image_shape(model, image_shape, "class_image")
    settings = AscentSettings(steps, lr, jitter, l2_decay, blur_every, blur_sigma, clip, normalize_grad)
    settings.check("class_image")

    rng = np.random.default_rng(seed)
    x0 = rng.uniform(0.0, 1.0, size=(len(classes),) + shape)
    x = ascend(model, None, x0, class_score_objective(classes), settings, rng, normalize, keep_best=True)
    confidence = class_confidence(model, x, classes, normalize)

    result = x.astype(np.float32)
    if out is not None:
        save_grid(result, out, scale=scale, each=False)
    if single:
        return result[0], float(confidence[0])
    return result, confidence


def class_confidence(model, x: np.ndarray, classes: Sequence[int], normalize=None) -> np.ndarray:
    """The model's softmax probability of ``classes[i]`` on image ``x[i]``."""
    with frozen(model):
        probabilities = softmax(evaluate(model, None, np.asarray(x, dtype=np.float64), normalize))
    return probabilities[np.arange(len(classes)), np.asarray(classes)]
