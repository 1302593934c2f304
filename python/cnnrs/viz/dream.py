"""Deep Dream (Mordvintsev, Olah & Tyka, 2015): make an image show more of what a layer sees.

From a starting image: shift it by a random jitter, take a gradient-ascent step
on the layer's activation energy ``0.5 * ||h_l(x)||^2``, shift back; do this at
several scales (octaves), from the coarsest up, carrying the detail the dream
added at one scale to the next. :func:`dream_zoom` then zooms into the centre and
dreams again, frame after frame.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from . import images
from .ascent import AscentSettings, ascend
from .layers import LayerRef, activation_energy_objective, resolve_layer


def octave_sizes(height: int, width: int, octaves: int, octave_scale: float, min_size: int) -> list:
    """Image sizes from the original down, each ``octave_scale`` times smaller, none below ``min_size``."""
    sizes = [(height, width)]
    for _ in range(octaves - 1):
        h, w = sizes[-1]
        smaller = (int(round(h / octave_scale)), int(round(w / octave_scale)))
        if min(smaller) < min_size:
            break
        sizes.append(smaller)
    return sizes


def deep_dream(
    model,
    image: np.ndarray,
    layer: LayerRef,
    octaves: int = 4,
    octave_scale: float = 1.4,
    jitter: int = 2,
    steps: int = 10,
    lr: float = 0.02,
    seed: int = 0,
    clip: Optional[Tuple[float, float]] = (0.0, 1.0),
    normalize=None,
    blur_every: int = 0,
    blur_sigma: float = 0.5,
    min_size: int = 10,
    out=None,
    scale: int = 8,
) -> np.ndarray:
    """Dream on ``image`` ``(C, H, W)`` (pixels in [0, 1]) at ``layer``; returns the dreamed image.

    ``steps`` ascent steps (gradient normalised to unit RMS, step ``lr``) run at
    each of up to ``octaves`` scales; octaves smaller than ``min_size`` pixels
    are skipped, since small networks cannot run on tiny inputs. The forward
    pass stops at ``layer``, so a layer before the classifier works at any
    image size the convolutions accept. ``out`` writes a PNG.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3:
        raise ValueError(f"deep_dream: image must be (C, H, W), got shape {image.shape}")
    if octaves < 1 or octave_scale <= 1.0:
        raise ValueError(f"deep_dream: need octaves >= 1 and octave_scale > 1, got {octaves}, {octave_scale}")
    resolve_layer(model, layer)
    settings = AscentSettings(
        steps=steps,
        lr=lr,
        jitter=jitter,
        blur_every=blur_every,
        blur_sigma=blur_sigma,
        clip=clip,
        normalize_grad=True,
    )
    settings.check("deep_dream")
    rng = np.random.default_rng(seed)

    sizes = octave_sizes(image.shape[1], image.shape[2], octaves, octave_scale, min_size)
    detail = np.zeros((image.shape[0],) + sizes[-1])
    dreamed = image
    for size in reversed(sizes):
        base = images.resize_bilinear(image, size)
        detail = images.resize_bilinear(detail, size)
        dreamed = ascend(
            model, layer, (base + detail)[None], activation_energy_objective, settings, rng, normalize
        )[0]
        detail = dreamed - base
    result = dreamed.astype(np.float32)
    if out is not None:
        images.save_png(images.upscale_nearest(result, scale), out)
    return result


def dream_zoom(
    model,
    image: np.ndarray,
    layer: LayerRef,
    frames: int = 8,
    zoom: float = 1.1,
    seed: int = 0,
    **dream_options,
) -> List[np.ndarray]:
    """Dream, zoom into the centre, dream again: ``frames`` images of an endless zoom."""
    if frames < 1 or zoom < 1.0:
        raise ValueError(f"dream_zoom: need frames >= 1 and zoom >= 1, got {frames}, {zoom}")
    current = np.asarray(image, dtype=np.float64)
    out = []
    for index in range(frames):
        current = deep_dream(model, current, layer, seed=seed + index, **dream_options)
        out.append(current)
        current = images.zoom_center(current.astype(np.float64), zoom)
    return out
