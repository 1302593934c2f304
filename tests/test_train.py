"""cnnrs.train: the trainer learns, writes its files, and resumed runs are bit-identical."""

import json

import numpy as np
import pytest

import cnnrs
from cnnrs import nn, optim
from cnnrs.checkpoint import load_checkpoint
from cnnrs.data import DataLoader, TensorDataset
from cnnrs.train import Trainer, fit

CLASSES = 4


def tiny_dataset(n, seed):
    """Class c = a bright 3x3 blob in quadrant c of an 8x8 image, plus noise: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    images = rng.normal(0, 0.3, (n, 1, 8, 8)).astype(np.float32)
    for i, c in enumerate(labels):
        r, q = divmod(int(c), 2)
        images[i, 0, 4 * r + 1 : 4 * r + 4, 4 * q + 1 : 4 * q + 4] += 1.0
    return TensorDataset(images, labels.astype(np.int64))


def tiny_model():
    # Dropout makes the global RNG matter for exact resume; BatchNorm adds buffers (a 0-d one too).
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(4 * 4 * 4, CLASSES),
    )


def make_trainer(out_dir, epochs=2, seed=0, optimizer="sgd", plots=False):
    cnnrs.manual_seed(seed)
    model = tiny_model()
    train_loader = DataLoader(tiny_dataset(96, 1), batch_size=16, shuffle=True, generator=seed)
    val_loader = DataLoader(tiny_dataset(40, 2), batch_size=16)
    if optimizer == "sgd":
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    else:
        opt = optim.Adam(model.parameters(), lr=0.01)
    scheduler = optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=epochs * len(train_loader))
    return Trainer(
        model,
        opt,
        nn.CrossEntropyLoss(),
        train_loader,
        val_loader=val_loader,
        scheduler=scheduler,
        out_dir=out_dir,
        config={"model": "tiny"},
        progress=False,
        log=None,
        plots=plots,
    )


def test_loss_goes_down_and_files_are_written(tmp_path):
    trainer = make_trainer(tmp_path, epochs=6, plots=True)
    history = trainer.fit(6)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5, 6]
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert history[-1]["val_accuracy"] > 0.9
    assert json.loads((tmp_path / "history.json").read_text()) == json.loads(json.dumps(history))
    csv_lines = (tmp_path / "history.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,lr,train_loss") and len(csv_lines) == 7
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint.epoch == 6 and checkpoint.config == {"model": "tiny"}
    assert sorted(checkpoint.weights) == sorted(trainer.model.state_dict())
    try:
        import matplotlib  # noqa: F401

        assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    except ImportError:
        assert not (tmp_path / "curves.png").exists()


def test_no_matplotlib_skips_the_plot_and_says_so(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes "import matplotlib" fail
    lines = []
    trainer = make_trainer(tmp_path, epochs=1, plots=True)
    trainer.log = lines.append
    trainer.fit(1)
    assert not (tmp_path / "curves.png").exists()
    assert "matplotlib is not installed: no curves.png" in lines


def test_evaluate(tmp_path):
    trainer = make_trainer(None)
    result = trainer.evaluate(trainer.val_loader)
    assert result["samples"] == 40 and 0.0 <= result["accuracy"] <= 1.0 and result["loss"] > 0


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, optimizer):
    straight = make_trainer(tmp_path / "straight", epochs=3, optimizer=optimizer)
    straight.fit(3)

    first = make_trainer(tmp_path / "resumed", epochs=3, optimizer=optimizer)
    first.fit(3, stop_after=1)  # killed after epoch 1
    # A new process: fresh objects, a different global RNG state; resume must restore everything.
    second = make_trainer(tmp_path / "resumed", epochs=3, seed=123, optimizer=optimizer)
    cnnrs.manual_seed(999)
    second.fit(3, resume=True)

    assert second.epoch == 3
    ours, theirs = straight.model.state_dict(), second.model.state_dict()
    for key in ours:
        np.testing.assert_array_equal(ours[key].detach().numpy(), theirs[key].detach().numpy(), err_msg=key)
    assert [r["train_loss"] for r in straight.history] == [r["train_loss"] for r in second.history]
    assert straight.optimizer.param_groups[0]["lr"] == second.optimizer.param_groups[0]["lr"]


def test_resume_after_a_kill_between_publishing_and_the_copies_refreshes_them(tmp_path):
    """save() publishes latest.json, then rewrites model.safetensors and the history files.
    A kill in between leaves those one epoch behind; resuming a finished run must refresh them."""
    import json

    out = tmp_path / "run"
    trainer = make_trainer(out, epochs=2)
    trainer.fit(2, stop_after=1)
    stale_model, stale_history = (out / "model.safetensors").read_bytes(), (out / "history.json").read_text()
    trainer.fit(2, resume=True)
    final_model = (out / "model.safetensors").read_bytes()
    assert final_model != stale_model
    # The kill: latest.json says epoch 2, the copies are still those of epoch 1.
    (out / "model.safetensors").write_bytes(stale_model)
    (out / "history.json").write_text(stale_history)

    resumed = make_trainer(out, epochs=2, seed=5)
    resumed.fit(2, resume=True)  # nothing left to train
    assert resumed.epoch == 2
    assert (out / "model.safetensors").read_bytes() == final_model
    assert [row["epoch"] for row in json.loads((out / "history.json").read_text())] == [1, 2]


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    lines = []
    trainer = make_trainer(tmp_path, epochs=1)
    trainer.log = lines.append
    trainer.fit(1, resume=True)
    assert any("no checkpoint found" in line for line in lines)
    assert trainer.epoch == 1


def test_functional_fit(tmp_path):
    cnnrs.manual_seed(0)
    model = tiny_model()
    loader = DataLoader(tiny_dataset(32, 3), batch_size=16, shuffle=True, generator=0)
    history = fit(
        model,
        optim.SGD(model.parameters(), lr=0.05),
        nn.CrossEntropyLoss(),
        loader,
        epochs=2,
        progress=False,
        log=None,
    )
    assert len(history) == 2 and "val_loss" not in history[0]


def test_weights_load_into_pytorch(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    trainer = make_trainer(tmp_path, epochs=1)
    trainer.fit(1)
    reference = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(4 * 4 * 4, CLASSES),
    ).eval()
    reference.load_state_dict(load_file(tmp_path / "model.safetensors"))
    trainer.model.eval()
    x = tiny_dataset(8, 5).arrays[0]
    np.testing.assert_allclose(
        trainer.model(cnnrs.tensor(x)).detach().numpy(),
        reference(torch.from_numpy(x)).detach().numpy(),
        rtol=1e-5,
        atol=1e-6,
    )


def test_bad_arguments():
    with pytest.raises(ValueError, match="scheduler_step"):
        Trainer(tiny_model(), None, nn.CrossEntropyLoss(), [], scheduler_step="sometimes")
    with pytest.raises(ValueError, match="no samples"):
        Trainer(tiny_model(), None, nn.CrossEntropyLoss(), [], progress=False, log=None).evaluate([])
