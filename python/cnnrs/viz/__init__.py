"""Seeing what a network sees: filter images, class images, Deep Dream, saliency maps
and kernel grids, all by gradients with respect to the input.

Importing this package needs only numpy; the functions that write PNGs need
Pillow (``pip install 'cnnrs[viz]'``) and say so when it is missing.

Example::

    from cnnrs import viz
    images, gains = viz.filter_images(model, "features.4", "0-5", image_shape=(1, 28, 28),
                                      return_gains=True, out="filters.png")
    picture, confidence = viz.class_image(model, 3, image_shape=(1, 28, 28))
"""

from .class_image import class_confidence, class_image
from .dream import deep_dream, dream_zoom
from .filters import filter_grid, filter_images, parse_filters
from .images import load_image, make_grid, save_png
from .layers import InputNormalization, forward_to, input_gradient, layer_names, resolve_layer
from .saliency import saliency

__all__ = [
    "InputNormalization",
    "class_confidence",
    "class_image",
    "deep_dream",
    "dream_zoom",
    "filter_grid",
    "filter_images",
    "forward_to",
    "input_gradient",
    "layer_names",
    "load_image",
    "make_grid",
    "parse_filters",
    "resolve_layer",
    "save_png",
    "saliency",
]
