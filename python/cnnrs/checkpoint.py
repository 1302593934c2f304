"""Checkpoints that survive a kill at any moment.

Layout of a run directory::

    run_dir/
      latest.json                  {"checkpoint": "checkpoints/epoch-0003", "epoch": 3}
      model.safetensors            the latest weights (a convenience copy)
      checkpoints/epoch-0003/
        model.safetensors          weights; keys = state_dict keys (PyTorch loads them)
        state.json                 epoch, history, config, optimiser / scheduler / RNG states
        state.safetensors          the arrays those states hold, referenced from state.json

A checkpoint is written into a fresh temporary directory (every file flushed
and fsync'ed), renamed to its final name, and only then published by replacing
``latest.json`` atomically (temp file in the same directory, fsync,
``os.replace``, fsync of the directory). A reader only follows ``latest.json``,
so a kill before the replace leaves the previous checkpoint in charge and a
half-written directory is never read; stale temporary directories are removed
by the next successful save.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from safetensors.numpy import load as _st_load
from safetensors.numpy import save as _st_save

FORMAT_VERSION = 1
LATEST = "latest.json"
CHECKPOINTS = "checkpoints"
MODEL_FILE = "model.safetensors"
STATE_JSON = "state.json"
STATE_ARRAYS = "state.safetensors"
TMP_PREFIX = ".tmp-"
# Key of the safetensors metadata entry that describes the model (architecture + kwargs).
MODEL_METADATA_KEY = "cnnrs.config"

PathLike = Union[str, "os.PathLike[str]"]


# ---------------------------------------------------------------------------
# durable file operations


def fsync_dir(path: PathLike) -> None:
    """fsync a directory so a rename or new file in it survives a power cut (no-op where unsupported)."""
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_durable(path: PathLike, data: bytes) -> None:
    """Write ``data`` to a new file and fsync it (the caller makes it visible atomically)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write(path: PathLike, data: Union[bytes, str]) -> None:
    """Replace ``path`` with ``data`` atomically: readers see the old file or the new one, never a mix."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


# ---------------------------------------------------------------------------
# nested states (optimiser, scheduler, RNG) <-> JSON + arrays


def to_numpy(value) -> np.ndarray:
    """A numpy array from a numpy array or anything with ``.numpy()`` (a cnnrs Tensor or Parameter)."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):  # a Tensor, possibly part of an autograd graph
        return np.asarray(value.detach().numpy())
    if hasattr(value, "numpy"):
        return np.asarray(value.numpy())
    return np.asarray(value)


def _c_order(array: np.ndarray) -> np.ndarray:
    """C-contiguous, keeping 0-d arrays 0-d (np.ascontiguousarray would make them shape (1,),
    e.g. BatchNorm's num_batches_tracked, which PyTorch then refuses to load)."""
    return np.asarray(array, order="C")


def _is_array_like(value) -> bool:
    return isinstance(value, np.ndarray) or (hasattr(value, "numpy") and hasattr(value, "shape"))


def flatten_state(obj: Any, arrays: dict[str, np.ndarray], prefix: str = "s") -> Any:
    """JSON-able copy of ``obj`` whose arrays are moved into ``arrays`` and referenced by key.

    Handles dicts (any hashable keys), lists, tuples, numpy scalars, arrays and
    tensors; Python ints of any size (PCG64 states are 128-bit) stay exact.
    """
    if _is_array_like(obj):
        key = f"{prefix}.{len(arrays)}"
        arrays[key] = _c_order(to_numpy(obj))
        return {"__ndarray__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: flatten_state(v, arrays, prefix) for k, v in obj.items()}
        return {
            "__items__": [
                [flatten_state(k, arrays, prefix), flatten_state(v, arrays, prefix)] for k, v in obj.items()
            ]
        }
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten_state(v, arrays, prefix) for v in obj]}
    if isinstance(obj, list):
        return [flatten_state(v, arrays, prefix) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"checkpoint: cannot store a value of type {type(obj).__name__} in a checkpoint")


def unflatten_state(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"}:
            return arrays[obj["__ndarray__"]].copy()
        if set(obj) == {"__tuple__"}:
            return tuple(unflatten_state(v, arrays) for v in obj["__tuple__"])
        if set(obj) == {"__items__"}:
            return {
                _hashable(unflatten_state(k, arrays)): unflatten_state(v, arrays) for k, v in obj["__items__"]
            }
        return {k: unflatten_state(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unflatten_state(v, arrays) for v in obj]
    return obj


def _hashable(key):
    return tuple(key) if isinstance(key, list) else key


# ---------------------------------------------------------------------------
# weights files


def weights_to_bytes(state_dict: dict, config: Optional[dict] = None) -> bytes:
    """safetensors bytes of a state_dict (keys kept as they are), with the model description as metadata."""
    tensors = {k: _c_order(to_numpy(v)) for k, v in state_dict.items()}
    metadata = {"format": "np"}
    if config is not None:
        metadata[MODEL_METADATA_KEY] = json.dumps(config, sort_keys=True)
    return _st_save(tensors, metadata=metadata)


def read_weights(path: PathLike) -> tuple[dict[str, np.ndarray], Optional[dict]]:
    """(state_dict arrays, model description or None) from a safetensors file."""
    data = Path(path).read_bytes()
    arrays = _st_load(data)
    config = None
    header_len = int.from_bytes(data[:8], "little")
    metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
    if MODEL_METADATA_KEY in metadata:
        config = json.loads(metadata[MODEL_METADATA_KEY])
    return arrays, config


# ---------------------------------------------------------------------------
# checkpoints


@dataclass
class Checkpoint:
    """A loaded checkpoint: weights, the trainer's state (epoch, history, ...) and the run config."""

    path: Path
    weights: dict[str, np.ndarray]
    state: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    @property
    def epoch(self) -> int:
        return int(self.state.get("epoch", 0))


def save_checkpoint(
    run_dir: PathLike,
    weights: dict,
    state: dict,
    config: Optional[dict] = None,
    keep: int = 2,
) -> Path:
    """Write a checkpoint of ``weights`` + ``state`` under ``run_dir`` and make it the latest.

    ``state`` is any nested structure of dicts / lists / scalars / arrays (see
    :func:`flatten_state`) and should hold ``"epoch"``. ``config`` describes
    the model and recipe (JSON-able). The ``keep`` most recent checkpoints are
    kept; older ones and stale temporary directories are deleted.
    Returns the checkpoint directory.
    """
    run_dir = Path(run_dir)
    root = run_dir / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    config = dict(config or {})
    epoch = int(state.get("epoch", 0))

    arrays: dict[str, np.ndarray] = {}
    document = {
        "format_version": FORMAT_VERSION,
        "config": config,
        "state": flatten_state(state, arrays),
    }
    model_bytes = weights_to_bytes(weights, config)

    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=root))
    try:
        write_durable(tmp / MODEL_FILE, model_bytes)
        write_durable(tmp / STATE_ARRAYS, _st_save(arrays, metadata={"format": "np"}))
        write_durable(tmp / STATE_JSON, json.dumps(document, indent=1).encode("utf-8"))
        fsync_dir(tmp)
        final = _free_name(root, f"epoch-{epoch:04d}")
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(root)
    # Publishing step: until this replace succeeds the previous checkpoint stays the latest.
    pointer = {"checkpoint": f"{CHECKPOINTS}/{final.name}", "epoch": epoch}
    atomic_write(run_dir / LATEST, json.dumps(pointer, indent=1))
    atomic_write(run_dir / MODEL_FILE, model_bytes)
    _prune(root, keep=keep, current=final)
    for leftover in run_dir.glob(TMP_PREFIX + "*"):  # temp files of a killed atomic_write
        if leftover.is_file():
            leftover.unlink(missing_ok=True)
    return final


def _free_name(root: Path, base: str) -> Path:
    """``root/base``, or ``root/base-1``, ... when an earlier (interrupted or resumed) run left one."""
    candidate, n = root / base, 0
    while candidate.exists():
        n += 1
        candidate = root / f"{base}-{n}"
    return candidate


def _prune(root: Path, keep: int, current: Path) -> None:
    """Delete stale temporary directories and all but the ``keep`` newest checkpoints."""
    finished = []
    for entry in root.iterdir():
        if entry.name.startswith(TMP_PREFIX):
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.is_dir():
            finished.append(entry)
    finished.sort(key=lambda p: p.stat().st_mtime_ns)
    for old in finished[: max(0, len(finished) - max(keep, 1))]:
        if old != current:
            shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(run_dir: PathLike) -> Optional[Path]:
    """The directory ``run_dir/latest.json`` points to, or None if there is no finished checkpoint."""
    pointer = Path(run_dir) / LATEST
    if not pointer.is_file():
        return None
    target = Path(run_dir) / json.loads(pointer.read_text())["checkpoint"]
    return target if target.is_dir() else None


def load_checkpoint(path: PathLike) -> Checkpoint:
    """Load a checkpoint from a run directory (its latest), a checkpoint directory or a weights file.

    A lone ``.safetensors`` file gives the weights and the model description in
    its metadata, with an empty trainer state.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.is_file():
        weights, config = read_weights(path)
        return Checkpoint(path=path, weights=weights, config=config or {})
    if (path / LATEST).is_file():
        resolved = latest_checkpoint(path)
        if resolved is None:
            raise FileNotFoundError(f"{path / LATEST} points to a checkpoint that does not exist")
        path = resolved
    if not (path / STATE_JSON).is_file():
        raise FileNotFoundError(f"{path} holds no checkpoint ({LATEST} or {STATE_JSON} missing)")
    document = json.loads((path / STATE_JSON).read_text())
    if document.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: checkpoint format {document.get('format_version')} is not {FORMAT_VERSION}"
        )
    arrays = _st_load((path / STATE_ARRAYS).read_bytes())
    weights, _ = read_weights(path / MODEL_FILE)
    state = unflatten_state(document["state"], arrays)
    return Checkpoint(path=path, weights=weights, state=state, config=document.get("config", {}))


__all__ = [
    "Checkpoint",
    "atomic_write",
    "flatten_state",
    "latest_checkpoint",
    "load_checkpoint",
    "read_weights",
    "save_checkpoint",
    "unflatten_state",
    "weights_to_bytes",
]
