"""Saliency maps (Simonyan, Vedaldi & Zisserman, 2014): which pixels the class score is sensitive to."""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import images
from .layers import class_score_objective, evaluate, frozen, input_gradient


def saliency(
    model,
    image: np.ndarray,
    target_class: Optional[int] = None,
    normalize=None,
    out=None,
    scale: int = 8,
    alpha: float = 0.6,
) -> np.ndarray:
    """``max_c |d score_k / d x_c|`` as an ``(H, W)`` heat map for one image ``(C, H, W)``.

    ``score_k`` is the pre-softmax score of ``target_class`` (default: the class
    the model predicts). ``out`` writes the heat map blended over the image as
    an RGB PNG (needs Pillow).
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3:
        raise ValueError(f"saliency: image must be (C, H, W), got shape {image.shape}")
    batch = image[None]
    with frozen(model):
        if target_class is None:
            target_class = int(np.argmax(evaluate(model, None, batch, normalize)[0]))
        _, grad = input_gradient(model, None, batch, class_score_objective([int(target_class)]), normalize)
    heat = np.abs(grad[0]).max(axis=0)
    if out is not None:
        picture = images.overlay_heatmap(images.normalize_each(image[None])[0], heat, alpha=alpha)
        images.save_png(images.upscale_nearest(picture, scale), out)
    return heat.astype(np.float32)
