"""Gradient ascent on the input, with the usual image regularisers.

The update is the course's ``x_{t+1} = x_t + gamma * grad_x L(x_t)``, run on a
whole batch at once (each image has its own objective, so the images do not
interact). Four optional regularisers keep the result looking like an image
rather than high-frequency noise:

* jitter: shift the image by a random offset before each step and shift the
  gradient back (the activation must not depend on exact pixel positions);
* L2 decay: ``x <- (1 - l2_decay) * x`` shrinks pixels nothing asks for;
* blur: a Gaussian blur every ``blur_every`` steps damps high frequencies;
* clip: keep pixels in the valid range, (0, 1) by default.

``normalize_grad`` divides each image's gradient by its root mean square, so
``lr`` is a step size in pixel units whatever the scale of the network's
activations; ``normalize_grad=False`` is the plain update above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from . import images
from .layers import LayerRef, Objective, frozen, input_gradient


@dataclass
class AscentSettings:
    steps: int = 200
    lr: float = 0.1
    jitter: int = 2
    l2_decay: float = 0.0
    blur_every: int = 0
    blur_sigma: float = 0.8
    clip: Optional[Tuple[float, float]] = (0.0, 1.0)
    normalize_grad: bool = True

    def check(self, where: str) -> None:
        if self.steps < 0:
            raise ValueError(f"{where}: steps must be >= 0, got {self.steps}")
        if self.lr <= 0:
            raise ValueError(f"{where}: lr must be positive, got {self.lr}")
        if self.jitter < 0:
            raise ValueError(f"{where}: jitter must be >= 0, got {self.jitter}")
        if not 0.0 <= self.l2_decay < 1.0:
            raise ValueError(f"{where}: l2_decay must be in [0, 1), got {self.l2_decay}")
        if self.clip is not None and not self.clip[0] < self.clip[1]:
            raise ValueError(f"{where}: clip must be (low, high) with low < high, got {self.clip}")


def rms_normalize(grad: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Divide each image's gradient by its root mean square (zero gradients stay zero)."""
    rms = np.sqrt((grad**2).reshape(grad.shape[0], -1).mean(axis=1))
    return grad / (rms + eps).reshape((-1,) + (1,) * (grad.ndim - 1))


def ascend(
    model,
    layer: LayerRef,
    x: np.ndarray,
    objective: Objective,
    settings: AscentSettings,
    rng: np.random.Generator,
    normalize=None,
    keep_best: bool = False,
) -> np.ndarray:
    """Run ``settings.steps`` regularised ascent steps from ``x``; returns the final float64 batch.

    With ``keep_best`` each image is the iterate with the highest objective
    among those just after a blur (or all, without blur) and the last one: a
    blur or a large step can lower the objective near the end. Runs the model
    frozen (eval mode, no parameter gradients); all randomness comes from
    ``rng`` so a seed fixes the result bit for bit.
    """
    x = np.array(x, dtype=np.float64)
    best_x, best_value = x.copy(), np.full(x.shape[0], -np.inf)
    with frozen(model):
        for step in range(settings.steps):
            jitter = settings.jitter
            dy, dx = rng.integers(-jitter, jitter + 1, size=2) if jitter else (0, 0)
            shifted = images.roll(x, dy, dx)
            values, grad = input_gradient(model, layer, shifted, objective, normalize)
            # Candidates are the iterates just after a blur (all of them without blur): an
            # unblurred iterate scores a little higher but shows max-pooling's salt-and-pepper.
            candidate = not settings.blur_every or step % settings.blur_every == 0
            if keep_best and candidate:  # the value was measured on x (shifted); remember x
                better = values > best_value
                best_x[better], best_value[better] = x[better], values[better]
            grad = images.roll(grad, -dy, -dx)
            if settings.normalize_grad:
                grad = rms_normalize(grad)
            x = x + settings.lr * grad
            if settings.l2_decay:
                x *= 1.0 - settings.l2_decay
            if settings.blur_every and (step + 1) % settings.blur_every == 0:
                x = images.gaussian_blur(x, settings.blur_sigma)
            if settings.clip is not None:
                x = np.clip(x, settings.clip[0], settings.clip[1])
        if keep_best:
            values, _ = input_gradient(model, layer, x, objective, normalize)
            better = values >= best_value
            best_x[better] = x[better]
            return best_x
    return x


def objective_values(
    model, layer: LayerRef, x: np.ndarray, objective: Objective, normalize=None
) -> np.ndarray:
    """The objective per image (no jitter), for reporting gains and scores."""
    from .layers import evaluate

    with frozen(model):
        values, _ = objective(evaluate(model, layer, x, normalize))
    return values
