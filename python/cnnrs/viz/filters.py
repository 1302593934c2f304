"""What a filter looks for: input images that maximise one filter's activation,
and pictures of the first layer's kernels."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np

from . import images
from .ascent import AscentSettings, ascend, objective_values
from .layers import LayerRef, filter_norm_objective, resolve_layer


def infer_image_shape(model, image_shape: Optional[Sequence[int]] = None, where: str = "viz") -> tuple:
    """``image_shape`` if given, else the model's ``input_shape`` attribute ``(C, H, W)``."""
    shape = image_shape if image_shape is not None else getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError(
            f"{where}: cannot infer the input image shape of {type(model).__name__}; "
            "pass image_shape=(C, H, W), e.g. (1, 28, 28) for MNIST"
        )
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) <= 0:
        raise ValueError(f"{where}: image_shape must be (C, H, W) with positive sizes, got {shape}")
    return shape


def parse_filters(spec: Union[str, int, Sequence[int]]) -> list:
    """``"0-5"`` -> [0..5], ``"1,3,7"`` -> [1, 3, 7], ``"0-3,8"`` -> [0, 1, 2, 3, 8]; ints pass through."""
    if isinstance(spec, (int, np.integer)):
        return [int(spec)]
    if not isinstance(spec, str):
        return [int(s) for s in spec]
    out = []
    for part in spec.split(","):
        part = part.strip()
        if "-" in part[1:]:
            first, last = part.split("-", 1)
            if int(last) < int(first):
                raise ValueError(f"bad filter range {part!r}: the end is before the start")
            out.extend(range(int(first), int(last) + 1))
        elif part:
            out.append(int(part))
    if not out:
        raise ValueError(f"no filters in {spec!r}")
    return out


def filter_images(
    model,
    layer: LayerRef,
    filters: Union[str, int, Sequence[int]],
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
    return_gains: bool = False,
    scale: int = 4,
):
    """Images that maximise ``||h_{layer, d}(x)||_2`` for each filter ``d`` in ``filters``.

    Gradient ascent on the input from ``x_0 ~ U[0, 1]^{C x H x W}`` (one image
    per filter, optimised together), regularised as described in
    :mod:`cnnrs.viz.ascent`. ``layer`` is a name from ``named_modules()`` (for
    example ``"features.3"``) or an index into a Sequential. Address the ReLU
    after a convolution to see what excites it; on the convolution itself the
    norm also rewards strongly negative responses.

    Args:
        filters: indices, or a string such as ``"0-5"`` or ``"0,2,4"``.
        image_shape: ``(C, H, W)``; inferred from ``model.input_shape`` when absent.
        normalize: ``(mean, std)`` of the data set when the model expects
            standardised input; images stay in pixel units [0, 1].
        out: path of a PNG grid of the results (needs Pillow).
        return_gains: also return the activation gain per filter, final L / initial L.

    Returns:
        ``(F, C, H, W)`` float32 array in the clip range, or ``(images, gains)``.
    """
    units = parse_filters(filters)
    shape = infer_image_shape(model, image_shape, "filter_images")
    settings = AscentSettings(steps, lr, jitter, l2_decay, blur_every, blur_sigma, clip, normalize_grad)
    settings.check("filter_images")
    resolve_layer(model, layer)  # fail early on a bad name

    rng = np.random.default_rng(seed)
    x0 = rng.uniform(0.0, 1.0, size=(len(units),) + shape)
    objective = filter_norm_objective(units)
    x = ascend(model, layer, x0, objective, settings, rng, normalize, keep_best=True)

    start = objective_values(model, layer, x0, objective, normalize)
    final = objective_values(model, layer, x, objective, normalize)
    # A filter silent at the start (start = 0) that fires at the end has an infinite gain.
    with np.errstate(divide="ignore", invalid="ignore"):
        gains = np.where(start > 0, final / np.where(start > 0, start, 1.0), np.where(final > 0, np.inf, 0.0))
    result = x.astype(np.float32)
    if out is not None:
        save_grid(result, out, scale=scale)
    return (result, gains) if return_gains else result


def save_grid(batch: np.ndarray, path, scale: int = 4, ncols: Optional[int] = None, each: bool = True):
    """Write a batch ``(N, C, H, W)`` as one PNG grid, each image stretched to its own range."""
    tiles = images.normalize_each(batch) if each else np.asarray(batch)
    grid = images.make_grid(images.upscale_nearest(tiles, scale), ncols=ncols, padding=2)
    return images.save_png(grid, path)


def filter_grid(conv_layer, out=None, scale: int = 8, ncols: Optional[int] = None) -> np.ndarray:
    """The kernels of a convolution as a picture grid.

    With 1 or 3 input channels (a first layer) each kernel is one grey or RGB
    tile; otherwise each (output, input) channel pair gets a grey tile, one row
    per output channel. Each kernel is scaled symmetrically so that zero is
    mid-grey, bright is positive and dark is negative.

    Returns the grid as a ``(C, H, W)`` float array in [0, 1]; ``out`` also
    writes it as a PNG.
    """
    weight = getattr(conv_layer, "weight", conv_layer)
    weight = weight.numpy() if hasattr(weight, "numpy") else np.asarray(weight)
    if weight.ndim != 4:
        raise ValueError(
            f"filter_grid: expected a conv weight (C_out, C_in, kH, kW), got shape {weight.shape}"
        )
    c_out, c_in, kh, kw = weight.shape
    if c_in in (1, 3):
        tiles = images.normalize_each(weight, symmetric=True)
    else:
        tiles = images.normalize_each(weight.reshape(c_out * c_in, 1, kh, kw), symmetric=True)
        ncols = c_in if ncols is None else ncols
    grid = images.make_grid(images.upscale_nearest(tiles, scale), ncols=ncols, padding=2)
    if out is not None:
        images.save_png(grid, out)
    return grid
