"""Training loop: ``Trainer`` (fit / evaluate / checkpoint / resume) and the functional ``fit``.

Every epoch the trainer writes, under ``out_dir``, the history (``history.json``
and ``history.csv``) and an atomic checkpoint (see :mod:`cnnrs.checkpoint`); at
the end of ``fit``, when matplotlib is installed, ``curves.png``. ``fit(epochs, resume=True)``
restores weights, optimiser, scheduler, history and every random state from
the latest checkpoint and continues after its epoch; the weights at the end
are bit-identical to those of a run that was never interrupted.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

from . import random as _random
from .autograd import no_grad
from .checkpoint import (
    MODEL_FILE,
    atomic_write,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    to_numpy,
)

try:  # tqdm is a declared dependency, but a missing one must not break training
    from tqdm import tqdm
except ImportError:  # pragma: no cover
    tqdm = None


def _loader_generator_state(loader):
    """The state of the loader's shuffling generator (None if it has none)."""
    if loader is None:
        return None
    if hasattr(loader, "state_dict"):
        return loader.state_dict()
    generator = getattr(loader, "generator", None)
    if generator is None:
        return None
    if hasattr(generator, "get_state"):
        return generator.get_state()
    if hasattr(generator, "bit_generator"):  # numpy.random.Generator
        return generator.bit_generator.state
    return None


def _set_loader_generator_state(loader, state) -> None:
    if loader is None or state is None:
        return
    if hasattr(loader, "load_state_dict"):
        loader.load_state_dict(state)
        return
    generator = loader.generator
    if hasattr(generator, "set_state"):
        generator.set_state(state)
    else:
        generator.bit_generator.state = state


def _batch_size(labels) -> int:
    return int(to_numpy(labels).shape[0])


class Trainer:
    """Train ``model`` with ``optimizer`` on ``train_loader``, evaluating on ``val_loader`` every epoch.

    Args:
        model: a cnnrs module returning logits (N, classes).
        optimizer: a cnnrs optimiser over ``model.parameters()``.
        loss_fn: called as ``loss_fn(logits, labels)``, returns a scalar Tensor (mean over the batch).
        train_loader: iterable of ``(images, labels)`` batches; its shuffling generator is
            checkpointed so that a resumed run sees the same batches.
        val_loader: optional loader evaluated after every epoch.
        scheduler: optional lr scheduler; stepped after every batch (``scheduler_step="batch"``,
            e.g. OneCycleLR) or every epoch (``"epoch"``).
        out_dir: where history, checkpoints and plots go; None keeps everything in memory.
        config: JSON-able description of the model and recipe, stored in every checkpoint
            (``cnnrs eval`` rebuilds the model from it).
        keep_checkpoints: how many epoch checkpoints to keep on disk.
        progress: show a tqdm progress bar per epoch.
        log: called with one line per event (epoch results, resume, ...); None is silent.
        plots: draw ``curves.png`` (loss and accuracy per epoch) at the end of ``fit`` when
            matplotlib is installed (about a second, so not after every epoch).
    """

    def __init__(
        self,
        model,
        optimizer,
        loss_fn: Callable,
        train_loader: Iterable,
        val_loader: Optional[Iterable] = None,
        scheduler=None,
        out_dir=None,
        scheduler_step: str = "batch",
        config: Optional[dict] = None,
        keep_checkpoints: int = 2,
        progress: bool = True,
        log: Optional[Callable[[str], None]] = print,
        plots: bool = True,
    ):
        if scheduler_step not in ("batch", "epoch"):
            raise ValueError(f"Trainer: scheduler_step must be 'batch' or 'epoch', got {scheduler_step!r}")
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.scheduler = scheduler
        self.scheduler_step = scheduler_step
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.config = dict(config or {})
        self.keep_checkpoints = keep_checkpoints
        self.progress = progress and tqdm is not None
        self.log = log or (lambda line: None)
        self.epoch = 0  # epochs finished
        self.history: list[dict] = []
        self.plots = plots

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, loader: Iterable) -> dict:
        """Mean loss and accuracy of the model on ``loader`` (eval mode, no gradients)."""
        was_training = self.model.training
        self.model.eval()
        total_loss, correct, seen = 0.0, 0, 0
        try:
            with no_grad():
                for images, labels in loader:
                    logits = self.model(images)
                    n = _batch_size(labels)
                    total_loss += float(self.loss_fn(logits, labels).item()) * n
                    correct += int((to_numpy(logits).argmax(axis=1) == to_numpy(labels)).sum())
                    seen += n
        finally:
            self.model.train(was_training)
        if seen == 0:
            raise ValueError("Trainer.evaluate: the loader yielded no samples")
        return {"loss": total_loss / seen, "accuracy": correct / seen, "samples": seen}

    # ------------------------------------------------------------------ training

    def train_epoch(self, epoch: int, total_epochs: Optional[int] = None) -> dict:
        """One pass over ``train_loader``; returns mean loss, accuracy and throughput."""
        self.model.train()
        total_loss, correct, seen = 0.0, 0, 0
        start = time.perf_counter()
        bar = None
        if self.progress:
            total = len(self.train_loader) if hasattr(self.train_loader, "__len__") else None
            label = f"epoch {epoch}" + (f"/{total_epochs}" if total_epochs else "")
            bar = tqdm(total=total, desc=label, unit="batch", leave=False, dynamic_ncols=True)
        try:
            for images, labels in self.train_loader:
                self.optimizer.zero_grad()
                logits = self.model(images)
                loss = self.loss_fn(logits, labels)
                loss.backward()
                self.optimizer.step()
                if self.scheduler is not None and self.scheduler_step == "batch":
                    self.scheduler.step()
                n = _batch_size(labels)
                total_loss += float(loss.item()) * n
                correct += int((to_numpy(logits).argmax(axis=1) == to_numpy(labels)).sum())
                seen += n
                if bar is not None:
                    bar.update(1)
                    elapsed = time.perf_counter() - start
                    bar.set_postfix(
                        loss=f"{total_loss / seen:.4f}",
                        acc=f"{correct / seen:.4f}",
                        img_s=f"{seen / max(elapsed, 1e-9):.0f}",
                        refresh=False,
                    )
        finally:
            if bar is not None:
                bar.close()
        if self.scheduler is not None and self.scheduler_step == "epoch":
            self.scheduler.step()
        if seen == 0:
            raise ValueError("Trainer.train_epoch: the training loader yielded no samples")
        elapsed = time.perf_counter() - start
        return {
            "train_loss": total_loss / seen,
            "train_accuracy": correct / seen,
            "train_time_s": elapsed,
            "images_per_s": seen / max(elapsed, 1e-9),
        }

    def fit(self, epochs: int, resume: bool = False, stop_after: Optional[int] = None) -> list[dict]:
        """Train until ``epochs`` epochs are done in total and return the history.

        Args:
            epochs: the run's length (what the lr schedule was built for).
            resume: first continue from the latest checkpoint in ``out_dir`` (from
                scratch if there is none).
            stop_after: stop once this many epochs are done, as if the run were
                killed there (a later ``fit(epochs, resume=True)`` finishes it).
        """
        if epochs < 0:
            raise ValueError(f"Trainer.fit: epochs must be >= 0, got {epochs}")
        if resume:
            self.resume()
        last = epochs if stop_after is None else min(epochs, stop_after)
        for epoch in range(self.epoch + 1, last + 1):
            row = {"epoch": epoch, "lr": self._current_lr()}
            row.update(self.train_epoch(epoch, epochs))
            if self.val_loader is not None:
                val = self.evaluate(self.val_loader)
                row.update({"val_loss": val["loss"], "val_accuracy": val["accuracy"]})
            self.epoch = epoch
            self.history.append(row)
            self.log(_format_row(row, epochs))
            if self.out_dir is not None:
                self.save()
        if self.out_dir is not None and self.plots and self.history:
            self.write_plot()
        return self.history

    def _current_lr(self) -> Optional[float]:
        groups = getattr(self.optimizer, "param_groups", None)
        return float(groups[0]["lr"]) if groups else None

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        """Everything besides the weights that a resumed run needs to continue exactly."""
        return {
            "epoch": self.epoch,
            "history": self.history,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": _random.get_rng_state(),
            "train_loader": _loader_generator_state(self.train_loader),
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        _random.set_rng_state(state["rng"])
        _set_loader_generator_state(self.train_loader, state.get("train_loader"))

    def save(self) -> Path:
        """Write history files, plots and an atomic checkpoint of the current state to ``out_dir``."""
        if self.out_dir is None:
            raise ValueError("Trainer.save: no out_dir was given")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = save_checkpoint(
            self.out_dir,
            self.model.state_dict(),
            self.state_dict(),
            config=self.config,
            keep=self.keep_checkpoints,
        )
        self._write_history()
        return path

    def resume(self, path=None) -> bool:
        """Load the checkpoint at ``path`` (default: the latest in ``out_dir``); False if there is none."""
        if path is None:
            if self.out_dir is None or latest_checkpoint(self.out_dir) is None:
                self.log("resume: no checkpoint found, starting from scratch")
                return False
            path = self.out_dir
        checkpoint = load_checkpoint(path)
        self.model.load_state_dict(checkpoint.weights)
        self.load_state_dict(checkpoint.state)
        if self.out_dir is not None and Path(path) == self.out_dir:
            self._republish(checkpoint.path)
        self.log(f"resumed from {checkpoint.path} after epoch {self.epoch}")
        return True

    def _republish(self, checkpoint_dir: Path) -> None:
        """Rewrite the run directory's convenience copies (weights, history) from the checkpoint.

        ``save`` publishes ``latest.json`` first and these copies after it, so a
        run killed in between leaves them one epoch behind the checkpoint; a
        resume with no epoch left to train would otherwise never refresh them.
        """
        atomic_write(self.out_dir / MODEL_FILE, (Path(checkpoint_dir) / MODEL_FILE).read_bytes())
        self._write_history()

    def _write_history(self) -> None:
        atomic_write(self.out_dir / "history.json", json.dumps(self.history, indent=1))
        columns = list(dict.fromkeys(key for row in self.history for key in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write(self.out_dir / "history.csv", buffer.getvalue())

    def write_plot(self) -> Optional[Path]:
        """Draw the history as ``out_dir/curves.png``; None (and a log line) without matplotlib."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            self.log("matplotlib is not installed: no curves.png")
            return None
        epochs = [row["epoch"] for row in self.history]
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
        for key, ax, label in (
            ("train_loss", ax_loss, "train"),
            ("val_loss", ax_loss, "validation"),
            ("train_accuracy", ax_acc, "train"),
            ("val_accuracy", ax_acc, "validation"),
        ):
            values = [row.get(key) for row in self.history]
            if all(v is not None for v in values):
                ax.plot(epochs, values, marker="o", label=label)
        ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
        ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
        for ax in (ax_loss, ax_acc):
            ax.grid(True, alpha=0.3)
            ax.legend()
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        plt.close(fig)
        atomic_write(self.out_dir / "curves.png", buffer.getvalue())
        return self.out_dir / "curves.png"


def _format_row(row: dict, epochs: int) -> str:
    parts = [
        f"epoch {row['epoch']}/{epochs}",
        f"loss {row['train_loss']:.4f}",
        f"acc {row['train_accuracy']:.4f}",
    ]
    if "val_loss" in row:
        parts += [f"val_loss {row['val_loss']:.4f}", f"val_acc {row['val_accuracy']:.4f}"]
    parts += [f"{row['images_per_s']:.0f} img/s", f"{row['train_time_s']:.1f} s"]
    return "  ".join(parts)


def fit(
    model,
    optimizer,
    loss_fn: Callable,
    train_loader: Iterable,
    epochs: int,
    val_loader: Optional[Iterable] = None,
    scheduler=None,
    out_dir=None,
    resume: bool = False,
    **trainer_kwargs,
) -> list[dict]:
    """Functional form of :class:`Trainer`: build one, run ``fit(epochs, resume)``, return the history."""
    trainer = Trainer(
        model,
        optimizer,
        loss_fn,
        train_loader,
        val_loader=val_loader,
        scheduler=scheduler,
        out_dir=out_dir,
        **trainer_kwargs,
    )
    return trainer.fit(epochs, resume=resume)


__all__ = ["Trainer", "fit"]
