"""Image utilities for the visualisations: numpy only, plus Pillow to write PNGs.

Arrays are float images in channel-first layout, ``(C, H, W)`` or a batch
``(N, C, H, W)``, like the tensors the networks see. Nothing here needs scipy:
blurs are separable numpy convolutions and resizing is a numpy bilinear
interpolation with PyTorch's ``align_corners=False`` convention.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

PathLike = Union[str, Path]

_PILLOW_HINT = "writing and reading PNG images needs Pillow: pip install 'cnnrs[viz]'"


def require_pillow():
    """Return the ``PIL.Image`` module, or raise an ImportError that says how to install it."""
    try:
        from PIL import Image
    except ImportError as exc:  # Pillow is an optional extra
        raise ImportError(_PILLOW_HINT) from exc
    return Image


def to_uint8(image: np.ndarray, low: Optional[float] = None, high: Optional[float] = None) -> np.ndarray:
    """Map ``image`` linearly to ``uint8`` [0, 255].

    ``low``/``high`` default to the image's own minimum and maximum; a constant
    image becomes mid-grey rather than a division by zero.
    """
    image = np.asarray(image, dtype=np.float64)
    low = float(image.min()) if low is None else float(low)
    high = float(image.max()) if high is None else float(high)
    if high <= low:
        return np.full(image.shape, 128, dtype=np.uint8)
    scaled = (image - low) / (high - low)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def normalize_each(images: np.ndarray, symmetric: bool = False) -> np.ndarray:
    """Rescale every image of a batch ``(N, ...)`` to [0, 1] on its own range.

    With ``symmetric`` the range is ``[-m, m]`` with ``m = max |image|`` so that
    zero maps to mid-grey: the right choice for kernels, whose sign matters.
    """
    images = np.asarray(images, dtype=np.float64)
    flat = images.reshape(images.shape[0], -1)
    if symmetric:
        m = np.abs(flat).max(axis=1, keepdims=True)
        low, high = -m, m
    else:
        low, high = flat.min(axis=1, keepdims=True), flat.max(axis=1, keepdims=True)
    span = np.where(high > low, high - low, 1.0)
    out = np.where(high > low, (flat - low) / span, 0.5)
    return out.reshape(images.shape)


def make_grid(
    images: np.ndarray, ncols: Optional[int] = None, padding: int = 2, pad_value: float = 1.0
) -> np.ndarray:
    """Tile a batch ``(N, C, H, W)`` into one image ``(C, rows*(H+p)+p, ncols*(W+p)+p)``.

    ``ncols`` defaults to ``ceil(sqrt(N))``; empty cells and the borders take
    ``pad_value`` (images are expected in [0, 1]).
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"make_grid: images must be (N, C, H, W), got shape {images.shape}")
    n, c, h, w = images.shape
    if n == 0:
        raise ValueError("make_grid: no images to tile")
    ncols = int(np.ceil(np.sqrt(n))) if ncols is None else max(1, min(int(ncols), n))
    nrows = -(-n // ncols)
    grid = np.full(
        (c, nrows * (h + padding) + padding, ncols * (w + padding) + padding), pad_value, dtype=np.float64
    )
    for i in range(n):
        top = padding + (i // ncols) * (h + padding)
        left = padding + (i % ncols) * (w + padding)
        grid[:, top : top + h, left : left + w] = images[i]
    return grid


def upscale_nearest(image: np.ndarray, factor: int) -> np.ndarray:
    """Enlarge the last two axes by an integer factor, pixel-replicating (for small MNIST pictures)."""
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=-2), factor, axis=-1)


def save_png(image: np.ndarray, path: PathLike, scale: int = 1, normalize: bool = False) -> Path:
    """Write a ``(C, H, W)`` or ``(H, W)`` float image in [0, 1] (or ``uint8``) as a PNG.

    One channel is written as grey, three as RGB. ``normalize`` first stretches
    the image to its own range; ``scale`` enlarges it by pixel replication.
    Raises ImportError (with the install hint) when Pillow is missing.
    """
    Image = require_pillow()
    image = np.asarray(image)
    if image.ndim == 3:
        if image.shape[0] not in (1, 3):
            raise ValueError(f"save_png: expected 1 or 3 channels, got shape {image.shape}")
        image = image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))
    elif image.ndim != 2:
        raise ValueError(f"save_png: expected (C, H, W) or (H, W), got shape {image.shape}")
    if image.dtype != np.uint8:
        image = to_uint8(image) if normalize else to_uint8(image, 0.0, 1.0)
    if scale > 1:
        image = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image)).save(path)
    return path


def load_image(path: PathLike, channels: int = 1, size: Optional[Sequence[int]] = None) -> np.ndarray:
    """Read a picture as a float32 ``(C, H, W)`` array in [0, 1] (grey for 1 channel, RGB for 3)."""
    Image = require_pillow()
    with Image.open(path) as picture:
        picture = picture.convert("L" if channels == 1 else "RGB")
        array = np.asarray(picture, dtype=np.float32) / 255.0
    array = array[None] if array.ndim == 2 else np.transpose(array, (2, 0, 1))
    if size is not None:
        array = resize_bilinear(array, (int(size[0]), int(size[1])))
    return np.ascontiguousarray(array, dtype=np.float32)


# --- regularisers and image transforms used by the gradient-ascent loops ---


def gaussian_kernel1d(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian taps out to 3 sigma (at least one tap each side)."""
    radius = max(1, int(np.ceil(3.0 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (t / sigma) ** 2)
    return taps / taps.sum()


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Blur the last two axes with a separable Gaussian, reflecting at the borders.

    Used between ascent steps to damp the high-frequency patterns that raise an
    activation without looking like anything.
    """
    if sigma <= 0:
        return image
    taps = gaussian_kernel1d(sigma)
    radius = len(taps) // 2
    out = np.asarray(image, dtype=np.float64)
    for axis in (-2, -1):
        size = out.shape[axis]
        # reflect-padding needs radius < size; clamp the padding for tiny images.
        pad = min(radius, size - 1)
        widths = [(0, 0)] * out.ndim
        widths[axis] = (pad, pad)
        padded = np.pad(out, widths, mode="reflect") if pad > 0 else out
        acc = np.zeros_like(out)
        for k, tap in enumerate(taps[radius - pad : radius + pad + 1]):
            acc += tap * np.take(padded, np.arange(k, k + size), axis=axis)
        out = acc / taps[radius - pad : radius + pad + 1].sum()
    return out.astype(image.dtype, copy=False)


def roll(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Shift the last two axes cyclically (the random jitter of the ascent loops)."""
    return np.roll(image, (int(dy), int(dx)), axis=(-2, -1))


def resize_bilinear(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize the last two axes to ``size = (H, W)`` by bilinear interpolation.

    Pixel centres are aligned like PyTorch's ``interpolate(mode="bilinear",
    align_corners=False)`` (no antialiasing), so up- and down-scaling by the
    same factor round-trips a smooth image closely.
    """
    image = np.asarray(image)
    out_h, out_w = int(size[0]), int(size[1])
    in_h, in_w = image.shape[-2], image.shape[-1]
    if (out_h, out_w) == (in_h, in_w):
        return image.copy()
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"resize_bilinear: size must be positive, got {tuple(size)}")

    def coords(n_out: int, n_in: int):
        src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
        src = np.clip(src, 0.0, n_in - 1)
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    y0, y1, wy = coords(out_h, in_h)
    x0, x1, wx = coords(out_w, in_w)
    src = image.astype(np.float64, copy=False)
    rows = src[..., y0, :] * (1 - wy)[:, None] + src[..., y1, :] * wy[:, None]
    out = rows[..., x0] * (1 - wx) + rows[..., x1] * wx
    return out.astype(image.dtype if image.dtype.kind == "f" else np.float64, copy=False)


def zoom_center(image: np.ndarray, factor: float) -> np.ndarray:
    """Zoom into the centre by ``factor`` (> 1) keeping the size: crop, then resize back."""
    h, w = image.shape[-2], image.shape[-1]
    crop_h = max(1, int(round(h / factor)))
    crop_w = max(1, int(round(w / factor)))
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    return resize_bilinear(image[..., top : top + crop_h, left : left + crop_w], (h, w))


# --- colour maps for heat maps (no matplotlib needed) ---

# Control points of a perceptually ordered black-red-yellow-white ramp ("hot"-like).
_HEAT_POINTS = np.array(
    [[0.0, 0.0, 0.0], [0.55, 0.0, 0.1], [0.95, 0.35, 0.0], [1.0, 0.85, 0.2], [1.0, 1.0, 1.0]]
)


def heat_colormap(values: np.ndarray) -> np.ndarray:
    """Map an ``(H, W)`` array in [0, 1] to an RGB ``(3, H, W)`` heat picture."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0) * (len(_HEAT_POINTS) - 1)
    lo = np.minimum(np.floor(v).astype(np.int64), len(_HEAT_POINTS) - 2)
    t = (v - lo)[..., None]
    rgb = _HEAT_POINTS[lo] * (1 - t) + _HEAT_POINTS[lo + 1] * t
    return np.transpose(rgb, (2, 0, 1))


def overlay_heatmap(image: np.ndarray, heat: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Blend a heat map ``(H, W)`` over a picture ``(C, H, W)`` in [0, 1]; returns RGB ``(3, H, W)``."""
    image = np.asarray(image, dtype=np.float64)
    base = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image[:3]
    heat = np.asarray(heat, dtype=np.float64)
    peak = heat.max()
    colored = heat_colormap(heat / peak if peak > 0 else heat)
    return np.clip((1 - alpha) * base + alpha * colored, 0.0, 1.0)
