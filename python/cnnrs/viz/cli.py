"""The ``cnnrs visualize`` and ``cnnrs dream`` subcommands.

``cnnrs/cli.py`` registers them with ``register_command(name, help,
add_arguments, run)`` using the pairs below; each ``run_*`` returns the exit
status. Heavy imports happen inside the run functions.

    cnnrs visualize runs/lenet5-mnist --layer features.4 --filters 0-5 --classes 0-9 --out docs/images/lenet5
    cnnrs dream runs/lenet5-mnist --image mnist:0 --layer features.4 --out docs/images/lenet5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from . import images

# Data sets whose images the commands can take as ``NAME:INDEX`` and whose
# normalisation (the trainer always normalises) a checkpoint trained on them implies.
_DATASETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}

VISUALIZE_HELP = "filter images, class images, kernels and saliency maps of a trained model"
DREAM_HELP = "Deep Dream: enhance what a layer sees in an image"


# --- loading a trained model ---


def load_model(checkpoint: str):
    """``(model in eval mode, run config)`` from a run directory, checkpoint directory or weights file."""
    from ..checkpoint import load_checkpoint
    from ..models import create_model

    ckpt = load_checkpoint(checkpoint)
    config = dict(ckpt.config or {})
    model_config = config.get("model")
    if isinstance(model_config, dict):  # {"name": ..., "kwargs": {...}} or {"name": ..., **kwargs}
        name = model_config.get("name") or model_config.get("arch")
        kwargs = dict(
            model_config.get("kwargs") or {k: v for k, v in model_config.items() if k not in ("name", "arch")}
        )
    else:
        name = model_config or config.get("arch")
        kwargs = dict(config.get("model_kwargs") or {})
    if not name:
        raise ValueError(
            f"{checkpoint}: the checkpoint does not record which model it holds (config: {config})"
        )
    model = create_model(name, **kwargs)
    model.load_state_dict(_match_shapes(ckpt.weights, model.state_dict()))
    model.eval()
    config.setdefault("model_name", name)
    config.setdefault("model_kwargs", kwargs)
    return model, config


def _match_shapes(weights: dict, state: dict) -> dict:
    """Give each stored array the shape the model expects when only the shape differs.

    Checkpoints written through ``np.ascontiguousarray`` store 0-d buffers
    (BatchNorm's ``num_batches_tracked``) as shape ``(1,)``.
    """
    out = {}
    for key, value in weights.items():
        expected = tuple(state[key].shape) if key in state else None
        if expected is not None and tuple(value.shape) != expected and value.size == int(np.prod(expected)):
            value = value.reshape(expected)
        out[key] = value
    return out


def dataset_class(name: Optional[str]):
    """The data-set class for a name such as ``"mnist"``, or None."""
    if not name:
        return None
    from .. import data

    attribute = _DATASETS.get(str(name).lower())
    return getattr(data, attribute) if attribute else None


def _dataset_name(config: dict) -> Optional[str]:
    dataset = config.get("dataset")
    if isinstance(dataset, dict):
        dataset = dataset.get("name")
    return dataset


def input_settings(config: dict, override: Optional[str]) -> Tuple[Optional[tuple], tuple]:
    """``(normalize, image_shape)`` for a run: the data set's mean/std when training normalised."""
    kwargs = config.get("model_kwargs") or {}
    channels = int(kwargs.get("in_channels", 1))
    size = int(kwargs.get("image_size", 28))
    shape = (channels, size, size)
    if override is not None:
        if override.lower() == "none":
            return None, shape
        mean, std = (float(v) for v in override.split(","))
        return (mean, std), shape
    cls = dataset_class(_dataset_name(config))
    normalized = config.get("normalize", True)
    if cls is None or not normalized:
        return None, shape
    return (tuple(cls.mean), tuple(cls.std)), shape


def load_input_image(spec: str, shape: tuple, data_root: Optional[str] = None) -> np.ndarray:
    """An image ``(C, H, W)`` in [0, 1] from ``DATASET:INDEX`` (test split) or a picture file.

    Data-set images smaller than ``shape`` (28x28 digits for a VGG that takes
    32x32) are zero-padded around, as the trainer pads them.
    """
    name, _, index = spec.partition(":")
    cls = dataset_class(name) if index.isdigit() else None
    if cls is None:
        return images.load_image(spec, channels=shape[0], size=shape[1:]).astype(np.float64)
    root = Path(data_root) / cls.name if data_root else None
    image = cls(root=root, train=False).images[int(index)].astype(np.float64)
    pad_h, pad_w = shape[1] - image.shape[1], shape[2] - image.shape[2]
    if pad_h > 0 or pad_w > 0:
        widths = ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2))
        image = np.pad(image, widths)
    return image


# --- cnnrs visualize ---


def add_visualize_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Gradient ascent on the input: images that excite filters of a layer or classes, "
        "plus first-layer kernels and a saliency map. Writes PNGs and numbers.json into --out."
    )
    parser.add_argument("checkpoint", help="run directory, checkpoint directory or .safetensors file")
    parser.add_argument("--layer", help="layer name as in named_modules() (e.g. features.4) or index")
    parser.add_argument("--filters", default="0-5", help="filters of --layer: '0-5', '0,3,7' (default 0-5)")
    parser.add_argument("--classes", help="also make class images, e.g. '0-9'")
    parser.add_argument("--kernels", action="store_true", help="also draw the first convolution's kernels")
    parser.add_argument(
        "--saliency", metavar="IMAGE", help="also a saliency map of IMAGE (file or mnist:INDEX)"
    )
    parser.add_argument("--out", required=True, help="output directory")
    _add_ascent_options(parser, steps=200, lr=0.1, jitter=2)
    parser.add_argument("--blur-every", type=int, default=4, help="blur every N steps (0: never)")
    parser.add_argument("--blur-sigma", type=float, default=0.8)
    parser.add_argument("--l2-decay", type=float, default=0.0)


def _add_ascent_options(parser, steps: int, lr: float, jitter: int) -> None:
    parser.add_argument("--steps", type=int, default=steps, help=f"ascent steps (default {steps})")
    parser.add_argument("--lr", type=float, default=lr, help=f"step size in pixel units (default {lr})")
    parser.add_argument(
        "--jitter", type=int, default=jitter, help=f"random shift in pixels (default {jitter})"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=int, default=4, help="enlarge pictures by this factor")
    parser.add_argument(
        "--normalize",
        metavar="MEAN,STD",
        help="input normalisation (default: the training data set's; 'none')",
    )
    parser.add_argument("--data-root", help="folder holding <dataset>/ folders (default: $CNNRS_DATA)")


def _first_conv(model):
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if weight is not None and len(getattr(weight, "shape", ())) == 4:
            return name, module
    raise ValueError(f"{type(model).__name__} has no convolution to draw")


def run_visualize(args) -> int:
    from .class_image import class_image
    from .filters import filter_grid, filter_images, parse_filters
    from .saliency import saliency

    model, config = load_model(args.checkpoint)
    normalize, shape = input_settings(config, args.normalize)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = dict(
        steps=args.steps,
        lr=args.lr,
        image_shape=shape,
        jitter=args.jitter,
        l2_decay=args.l2_decay,
        blur_every=args.blur_every,
        blur_sigma=args.blur_sigma,
        seed=args.seed,
        normalize=normalize,
        scale=args.scale,
    )
    numbers = {"checkpoint": str(args.checkpoint), "model": config.get("model_name"), "normalize": normalize}

    if args.layer is not None:
        units = parse_filters(args.filters)
        path = out / f"filters_{str(args.layer).replace('.', '_')}.png"
        _, gains = filter_images(model, args.layer, units, out=path, return_gains=True, **common)
        numbers["filters"] = {"layer": args.layer, "filters": units, "gains": [float(g) for g in gains]}
        print(f"{path}: activation gain (final / initial L) per filter")
        for unit, gain in zip(units, gains):
            note = "  (silent on the random start, firing at the end)" if np.isinf(gain) else ""
            print(f"  filter {unit:3d}: x{gain:.1f}{note}")
    if args.classes is not None:
        classes = parse_filters(args.classes)
        path = out / "classes.png"
        _, confidence = class_image(model, classes, out=path, **common)
        numbers["classes"] = {"classes": classes, "confidence": [float(c) for c in confidence]}
        print(f"{path}: softmax confidence of each class on its image")
        for cls, conf in zip(classes, confidence):
            print(f"  class {cls:3d}: {conf:.4f}")
    if args.kernels:
        name, conv = _first_conv(model)
        path = out / "kernels.png"
        filter_grid(conv, out=path, scale=max(args.scale, 1) * 4)
        print(f"{path}: kernels of {name}")
    if args.saliency:
        image = load_input_image(args.saliency, shape, args.data_root)
        path = out / "saliency.png"
        saliency(model, image, normalize=normalize, out=path, scale=max(args.scale, 1) * 2)
        print(f"{path}: saliency map of {args.saliency}")
    (out / "numbers.json").write_text(json.dumps(numbers, indent=1))
    return 0


# --- cnnrs dream ---


def add_dream_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Deep Dream with jitter and octaves; --frames N also zooms in and dreams again."
    parser.add_argument("checkpoint", help="run directory, checkpoint directory or .safetensors file")
    parser.add_argument(
        "--image", required=True, help="picture file, or DATASET:INDEX such as mnist:0 (test set)"
    )
    parser.add_argument("--layer", required=True, help="layer name as in named_modules() or index")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--octaves", type=int, default=4)
    parser.add_argument("--octave-scale", type=float, default=1.4)
    parser.add_argument("--frames", type=int, default=1, help="zoom-and-dream frames (default 1: one dream)")
    parser.add_argument("--zoom", type=float, default=1.1, help="zoom factor between frames")
    _add_ascent_options(parser, steps=10, lr=0.02, jitter=2)


def run_dream(args) -> int:
    from .dream import dream_zoom

    model, config = load_model(args.checkpoint)
    normalize, shape = input_settings(config, args.normalize)
    image = load_input_image(args.image, shape, args.data_root)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frames = dream_zoom(
        model,
        image,
        args.layer,
        frames=args.frames,
        zoom=args.zoom,
        seed=args.seed,
        octaves=args.octaves,
        octave_scale=args.octave_scale,
        jitter=args.jitter,
        steps=args.steps,
        lr=args.lr,
        normalize=normalize,
    )
    stem = f"dream_{str(args.layer).replace('.', '_')}"
    # The input beside the dream(s), one strip.
    strip = np.stack([image.astype(np.float32)] + frames)
    grid = images.make_grid(images.upscale_nearest(strip, args.scale), ncols=len(strip), padding=2)
    images.save_png(grid, out / f"{stem}.png")
    for index, frame in enumerate(frames if len(frames) > 1 else []):
        images.save_png(images.upscale_nearest(frame, args.scale), out / f"{stem}_{index:03d}.png")
    print(f"{out / (stem + '.png')}: input, then {len(frames)} dream frame(s)")
    return 0
