"""Time to 99.0 % MNIST test accuracy, LeNet-5, one recipe for both libraries (full mode only).

Recipe: LeNet-5 from cnnrs.models, PyTorch twin starting from the same weights;
``cnnrs train lenet5``'s recipe (Adam, lr 3e-3, batch 128; SGD is available),
pixels scaled to [0, 1] and normalised
with MNIST's mean/std; each epoch one numpy permutation shared by both, so
both see the same batches in the same order. The two trainings advance
alternately, one step each, so that the machine's drift hits both alike; each
has its own clock, which runs only during its training steps (evaluation on
the 10,000 test images every ``eval_every`` steps is not counted). A library
stops when it reaches the target or when its clock passes the cap.
"""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

import numpy as np

from .timing import SUBJECT, CaseResult, Measurement

MEAN, STD = 0.1307, 0.3081


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip) as a numpy array: magic (2 zero bytes, dtype 0x08 = uint8, ndim), dims, data."""
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(root: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    folder = Path(root) / "mnist"

    def images(name):
        x = _read_idx(folder / name).astype(np.float32)[:, None] / np.float32(255)
        return ((x - MEAN) / STD).astype(np.float32)

    def labels(name):
        return _read_idx(folder / name).astype(np.int64)

    return (
        images("train-images-idx3-ubyte.gz"),
        labels("train-labels-idx1-ubyte.gz"),
        images("t10k-images-idx3-ubyte.gz"),
        labels("t10k-labels-idx1-ubyte.gz"),
    )


class _Run:
    """One library's training: a step function, an accuracy function, and its own clock."""

    def __init__(self, name, step, accuracy):
        self.name, self.step, self.accuracy = name, step, accuracy
        self.train_seconds = 0.0
        self.steps = 0
        self.best = None  # best test accuracy so far; None before the first evaluation
        self.reached_at = None  # (seconds, steps)
        self.done = False


def _optimizer(library, optimizer: str, parameters, lr: float, momentum: float):
    """The same optimiser in both libraries: "adam" (default betas) or "sgd" with momentum."""
    if optimizer == "adam":
        return library.optim.Adam(parameters, lr=lr)
    if optimizer == "sgd":
        return library.optim.SGD(parameters, lr=lr, momentum=momentum)
    raise ValueError(f"time_to_accuracy: optimizer must be 'adam' or 'sgd', got {optimizer!r}")


def _cnnrs_run(model, optimizer_name, lr, momentum, x_test, y_test):
    import cnnrs

    optimizer = _optimizer(cnnrs, optimizer_name, model.parameters(), lr, momentum)
    loss_fn = cnnrs.nn.CrossEntropyLoss()

    def step(x, y):
        model.train()
        optimizer.zero_grad()
        loss_fn(model(cnnrs.from_numpy(x)), cnnrs.from_numpy(y)).backward()
        optimizer.step()

    def accuracy():
        model.eval()
        correct = 0
        with cnnrs.no_grad():
            for i in range(0, len(x_test), 1000):
                logits = np.asarray(model(cnnrs.from_numpy(x_test[i : i + 1000])).numpy())
                correct += int((logits.argmax(1) == y_test[i : i + 1000]).sum())
        return correct / len(x_test)

    return _Run(SUBJECT, step, accuracy)


def _torch_run(twin, optimizer_name, lr, momentum, x_test, y_test):
    import torch

    optimizer = _optimizer(torch, optimizer_name, twin.parameters(), lr, momentum)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(x, y):
        twin.train()
        optimizer.zero_grad()
        loss_fn(twin(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        optimizer.step()

    def accuracy():
        twin.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(x_test), 1000):
                logits = twin(torch.from_numpy(x_test[i : i + 1000])).numpy()
                correct += int((logits.argmax(1) == y_test[i : i + 1000]).sum())
        return correct / len(x_test)

    return _Run("torch", step, accuracy)


def time_to_accuracy(
    target: float = 0.99,
    cap_seconds: float = 180.0,
    eval_every: int = 100,
    batch: int = 128,
    optimizer: str = "adam",
    lr: float = 3e-3,
    momentum: float = 0.9,
    seed: int = 0,
    data_root: str = "",
) -> CaseResult:
    from .cases_networks import LENET5, make_pair

    name = f"LeNet-5 MNIST to {target:.1%} (s)"
    root = data_root or os.environ.get("CNNRS_DATA", "")
    try:
        x_train, y_train, x_test, y_test = load_mnist(root)
        model, twin = make_pair(LENET5, batch)
    except Exception as exc:
        return CaseResult(
            name, "accuracy", "s", False, [Measurement(SUBJECT, error=f"{type(exc).__name__}: {exc}")]
        )
    runs = [
        _cnnrs_run(model, optimizer, lr, momentum, x_test, y_test),
        _torch_run(twin, optimizer, lr, momentum, x_test, y_test),
    ]
    rng = np.random.default_rng(seed)
    step_index = 0
    while not all(r.done for r in runs):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order) - batch + 1, batch):
            indices = order[start : start + batch]
            x, y = x_train[indices], y_train[indices]
            step_index += 1
            for r in runs:
                if r.done:
                    continue
                t0 = time.perf_counter()
                r.step(x, y)
                r.train_seconds += time.perf_counter() - t0
                r.steps += 1
                if step_index % eval_every == 0:
                    r.best = max(r.best or 0.0, r.accuracy())
                    if r.best >= target:
                        r.reached_at, r.done = (r.train_seconds, r.steps), True
                if r.train_seconds > cap_seconds:
                    r.done = True
            if all(r.done for r in runs):
                break
    measurements = []
    for r in runs:
        m = Measurement(r.name)
        if r.reached_at:
            m.value, m.samples = r.reached_at[0], [r.reached_at[0], float(r.reached_at[1])]
        else:
            best = "never evaluated" if r.best is None else f"best {r.best:.2%}"
            m.error = f"not reached in {r.train_seconds:.0f} s ({r.steps} steps, {best})"
        measurements.append(m)
    steps = ", ".join(f"{r.name} {r.reached_at[1]} steps" for r in runs if r.reached_at)
    # time to accuracy = steps needed x time per step; the first varies with rounding noise, say both
    per_step = ", ".join(f"{r.name} {1e3 * r.train_seconds / max(1, r.steps):.1f} ms/step" for r in runs)
    note = (
        f"{optimizer} lr {lr}{f' momentum {momentum}' if optimizer == 'sgd' else ''} batch {batch}, "
        f"shared permutation per epoch, eval every {eval_every} steps (not timed), "
        f"cap {cap_seconds:.0f} s; reached after: {steps or 'none'}; {per_step}"
    )
    return CaseResult(name, "accuracy", "s", False, measurements, note=note)
