"""Whole-network cases (images/s): training steps and inference of cnnrs.models against PyTorch twins.

A training step is what a training loop does per batch: zero the gradients,
forward, cross-entropy, backward, SGD step (lr 0.01, momentum 0.9), on a fixed
random batch. Inference is a forward pass in eval mode under no_grad. The
PyTorch twin has the same layers and starts from cnnrs's weights (copied
through the state_dict); both must produce the same eval-mode logits before
anything is timed. JAX would be the third anchor for training steps
(a jit-compiled step); it is reported as missing when not installed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .timing import Case, Contender
from .twins import copy_state, describe, torch_from_description, torch_training_step

LR = 0.01
MOMENTUM = 0.9


@dataclass(frozen=True)
class Network:
    """A model of cnnrs.models and the input it takes."""

    name: str
    builder: str  # name in cnnrs.models
    kwargs: tuple  # builder keyword arguments, as (key, value) pairs
    input_shape: tuple  # (C, H, W)
    num_classes: int = 10

    def build_cnnrs(self):
        from cnnrs import models

        return getattr(models, self.builder)(**dict(self.kwargs))


LENET5 = Network("lenet5", "lenet5", (), (1, 28, 28))
VGG_SMALL = Network("vgg_small", "vgg_small", (("in_channels", 3), ("image_size", 32)), (3, 32, 32))
VGG11 = Network("vgg11", "vgg11", (("image_size", 32),), (3, 32, 32))
NETWORKS = {n.name: n for n in (LENET5, VGG_SMALL, VGG11)}


def random_batch(network: Network, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *network.input_shape), dtype=np.float32)
    y = rng.integers(0, network.num_classes, size=batch, dtype=np.int64)
    return x, y


def cnnrs_training_step(model, x: np.ndarray, y: np.ndarray, lr: float = LR, momentum: float = MOMENTUM):
    """One cnnrs training step on a fixed batch, written as a user writes it."""
    import cnnrs

    optimizer = cnnrs.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    loss_fn = cnnrs.nn.CrossEntropyLoss()
    images, labels = cnnrs.from_numpy(x), cnnrs.from_numpy(y)

    def step():
        optimizer.zero_grad()
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss

    return step


def cnnrs_inference(model, x: np.ndarray):
    import cnnrs

    images = cnnrs.from_numpy(x)

    def forward():
        with cnnrs.no_grad():
            return model(images)

    return forward


def _torch_inference(model, x):
    import torch

    def forward():
        with torch.no_grad():
            return model(x)

    return forward


def make_pair(network: Network, batch: int):
    """(cnnrs model, PyTorch twin with the same weights) after checking they agree in eval mode."""
    import torch

    import cnnrs

    cnnrs.manual_seed(0)
    model = network.build_cnnrs()
    twin = torch_from_description(describe(model))
    copy_state(model.state_dict(), twin)
    model.eval()
    twin.eval()
    x, _ = random_batch(network, min(batch, 8), seed=1)
    with cnnrs.no_grad():
        ours = np.asarray(model(cnnrs.from_numpy(x)).numpy())
    with torch.no_grad():
        theirs = twin(torch.from_numpy(x)).numpy()
    scale = max(1e-6, float(np.max(np.abs(theirs))))
    error = float(np.max(np.abs(ours - theirs))) / scale
    if not error <= 1e-3:
        raise AssertionError(
            f"{network.name}: cnnrs and its PyTorch twin disagree (relative error {error:.2e})"
        )
    return model, twin


def _jax_missing() -> Contender:
    try:
        import jax  # noqa: F401
    except ImportError:
        return Contender.absent("jax", "jax is not installed")
    return Contender.absent("jax", "jax is installed but the suite has no JAX twin of the models yet")


def _build(network: Network, batch: int, training: bool):
    def build() -> list[Contender]:
        try:
            import torch
        except ImportError:
            return _build_without_torch(network, batch, training)
        model, twin = make_pair(network, batch)
        x, y = random_batch(network, batch)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        if training:
            model.train()
            twin.train()
            return [
                Contender("cnnrs", cnnrs_training_step(model, x, y)),
                Contender("torch", torch_training_step(twin, tx, ty, LR, MOMENTUM)),
                _jax_missing(),
            ]
        return [
            Contender("cnnrs", cnnrs_inference(model, x)),
            Contender("torch", _torch_inference(twin, tx)),
        ]

    return build


def _build_without_torch(network: Network, batch: int, training: bool) -> list[Contender]:
    model = network.build_cnnrs()
    x, y = random_batch(network, batch)
    torch_missing = Contender.absent("torch", "torch is not installed")
    if training:
        model.train()
        return [Contender("cnnrs", cnnrs_training_step(model, x, y)), torch_missing, _jax_missing()]
    model.eval()
    return [Contender("cnnrs", cnnrs_inference(model, x)), torch_missing]


# (network, batch, training) for each mode
QUICK = ((LENET5, 64, True), (LENET5, 1, True), (LENET5, 256, False), (VGG_SMALL, 64, True))
FULL = (
    (LENET5, 1, True),
    (LENET5, 64, True),
    (LENET5, 256, True),
    (LENET5, 1, False),
    (LENET5, 256, False),
    (VGG_SMALL, 64, True),
    (VGG_SMALL, 64, False),
    (VGG11, 64, True),
)


def cases(quick: bool) -> list[Case]:
    result = []
    for network, batch, training in QUICK if quick else FULL:
        kind = "train" if training else "infer"
        result.append(
            Case(
                f"{network.name} {kind} b{batch}",
                "networks",
                "images/s",
                float(batch),
                _build(network, batch, training),
            )
        )
    return result
