"""cnnrs.checkpoint: round trips and atomicity (a kill at any moment leaves the last good checkpoint)."""

import json
import os

import numpy as np
import pytest

from cnnrs import checkpoint as ck


def weights(value):
    return {"layer.weight": np.full((2, 3), value, np.float32), "layer.bias": np.arange(2, dtype=np.float32)}


def state(epoch):
    return {
        "epoch": epoch,
        "history": [{"epoch": e, "loss": 1.0 / e} for e in range(1, epoch + 1)],
        "optimizer": {
            "state": {0: {"momentum_buffer": np.ones(3, np.float32), "step": 7}},
            "param_groups": [{"lr": 0.1, "params": [0]}],
        },
        "rng": {"bit_generator": "PCG64", "state": {"state": 2**127 + 3, "inc": 12345}, "has_uint32": 0},
        "tuple": (1, "a", None),
    }


def test_round_trip(tmp_path):
    path = ck.save_checkpoint(tmp_path, weights(1.5), state(1), config={"model": "m", "kwargs": {"a": 1}})
    assert path == tmp_path / "checkpoints" / "epoch-0001"
    loaded = ck.load_checkpoint(tmp_path)
    assert loaded.epoch == 1 and loaded.path == path
    assert loaded.config == {"model": "m", "kwargs": {"a": 1}}
    np.testing.assert_array_equal(loaded.weights["layer.weight"], weights(1.5)["layer.weight"])
    assert loaded.state["optimizer"]["state"][0]["step"] == 7
    np.testing.assert_array_equal(loaded.state["optimizer"]["state"][0]["momentum_buffer"], np.ones(3))
    assert loaded.state["rng"]["state"]["state"] == 2**127 + 3
    assert loaded.state["tuple"] == (1, "a", None)
    # The convenience copy and a checkpoint directory load too; the weights file is self-describing.
    assert ck.load_checkpoint(path).epoch == 1
    lone = ck.load_checkpoint(tmp_path / "model.safetensors")
    assert lone.config["model"] == "m" and lone.state == {}


def test_weights_file_has_exactly_the_state_dict_keys(tmp_path):
    from safetensors.numpy import load_file

    ck.save_checkpoint(tmp_path, weights(0.0), state(1))
    assert set(load_file(tmp_path / "checkpoints" / "epoch-0001" / "model.safetensors")) == {
        "layer.weight",
        "layer.bias",
    }


def test_zero_dimensional_arrays_keep_their_shape(tmp_path):
    # BatchNorm's num_batches_tracked is 0-d in PyTorch; a (1,) array would not load there.
    ck.save_checkpoint(
        tmp_path, {"bn.num_batches_tracked": np.array(7, np.int64)}, {"epoch": 1, "x": np.float32(2)}
    )
    loaded = ck.load_checkpoint(tmp_path)
    assert loaded.weights["bn.num_batches_tracked"].shape == ()
    assert loaded.weights["bn.num_batches_tracked"] == 7


def test_keeps_only_the_newest(tmp_path):
    for epoch in range(1, 5):
        ck.save_checkpoint(tmp_path, weights(epoch), state(epoch), keep=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch-0003", "epoch-0004"]
    assert ck.load_checkpoint(tmp_path).epoch == 4


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4])
def test_kill_during_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch, fail_at):
    """Simulate a kill at the 1st .. 4th file write of the second save: half the bytes reach the disk."""
    ck.save_checkpoint(tmp_path, weights(1.0), state(1))
    real_write = ck.write_durable
    calls = {"n": 0}

    def dying_write(path, data):
        calls["n"] += 1
        if calls["n"] == fail_at:
            with open(path, "wb") as f:
                f.write(data[: len(data) // 2])
            raise KeyboardInterrupt("killed")
        real_write(path, data)

    monkeypatch.setattr(ck, "write_durable", dying_write)
    real_replace = os.replace

    def dying_replace(src, dst):
        if fail_at == 4:  # all files written, killed at the rename of the directory
            raise KeyboardInterrupt("killed")
        real_replace(src, dst)

    if fail_at == 4:
        calls["n"] = -100  # let every write through
        monkeypatch.setattr(ck.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(tmp_path, weights(2.0), state(2))
    monkeypatch.undo()
    loaded = ck.load_checkpoint(tmp_path)
    assert loaded.epoch == 1
    np.testing.assert_array_equal(loaded.weights["layer.weight"], weights(1.0)["layer.weight"])


def test_kill_before_pointer_update_and_stale_temp_files(tmp_path, monkeypatch):
    """Killed after the new directory is in place but before latest.json moves: still the old one.
    A real kill leaves its temporary files behind; readers ignore them and the next save removes them."""
    ck.save_checkpoint(tmp_path, weights(1.0), state(1))
    real_replace = os.replace

    def dying_replace(src, dst):
        if str(dst).endswith(ck.LATEST):
            with open(src, "r+b") as f:  # leave the temp pointer half-written, as a kill would
                f.truncate(5)
            raise KeyboardInterrupt("killed")
        real_replace(src, dst)

    monkeypatch.setattr(ck.os, "replace", dying_replace)
    real_unlink = os.unlink
    monkeypatch.setattr(ck.os, "unlink", lambda p: None)  # a killed process cleans nothing up
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(tmp_path, weights(2.0), state(2))
    monkeypatch.setattr(ck.os, "unlink", real_unlink)
    monkeypatch.undo()
    stale = [p.name for p in tmp_path.iterdir() if p.name.startswith(ck.TMP_PREFIX)]
    assert stale, "the simulated kill should leave a temporary pointer file"
    (tmp_path / "checkpoints" / (ck.TMP_PREFIX + "dead")).mkdir()
    (tmp_path / "checkpoints" / (ck.TMP_PREFIX + "dead") / "model.safetensors").write_bytes(b"garbage")
    assert ck.load_checkpoint(tmp_path).epoch == 1
    assert json.loads((tmp_path / ck.LATEST).read_text())["epoch"] == 1
    # The next save succeeds, takes a free name and removes the stale checkpoint temp directory.
    path = ck.save_checkpoint(tmp_path, weights(3.0), state(2))
    assert path.name == "epoch-0002-1"
    assert ck.load_checkpoint(tmp_path).epoch == 2
    assert not any(p.name.startswith(ck.TMP_PREFIX) for p in (tmp_path / "checkpoints").iterdir())
    assert not any(p.name.startswith(ck.TMP_PREFIX) for p in tmp_path.iterdir())


def test_atomic_write_failure_leaves_old_file(tmp_path, monkeypatch):
    target = tmp_path / "history.json"
    ck.atomic_write(target, "old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(ck.os, "replace", boom)
    with pytest.raises(OSError):
        ck.atomic_write(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]


def test_missing_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        ck.load_checkpoint(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        ck.load_checkpoint(tmp_path)
    assert ck.latest_checkpoint(tmp_path) is None


def test_unstorable_value(tmp_path):
    with pytest.raises(TypeError, match="cannot store a value of type object"):
        ck.save_checkpoint(tmp_path, weights(0.0), {"epoch": 1, "x": object()})
    assert ck.latest_checkpoint(tmp_path) is None
