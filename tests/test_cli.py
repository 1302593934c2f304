"""The cnnrs command: help, one-line errors, summary, and a tiny train -> resume -> eval round trip."""

import subprocess
import sys

import pytest

from cnnrs.cli import COMMANDS, main, recipe_for


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "cnnrs", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in ("train", "eval", "summary"):
        assert name in out
    assert {"train", "eval", "summary"} <= set(COMMANDS)


def test_bad_model_name_is_one_line_error():
    result = run_cli("train", "resnet50", "--dataset", "mnist")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown model 'resnet50'" in lines[0]


def test_model_that_does_not_fit_the_data_set(capsys):
    assert main(["train", "lenet5", "--dataset", "cifar10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["cnnrs train: error: lenet5 takes 1x28x28 images; cifar10 has 3x32x32"]


def test_bad_option_value_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "lenet5", "--epochs", "zero"])
    assert exit_info.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err


def test_eval_of_missing_checkpoint(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err


def test_summary_lenet5(capsys):
    assert main(["summary", "lenet5"]) == 0
    out = capsys.readouterr().out
    assert "features.0" in out and "Total params: 61,706" in out and "Total MACs: 416,520" in out


def test_summary_with_input_shape(capsys):
    assert main(["summary", "vgg11", "--dataset", "cifar10", "--input-shape", "2,3,32,32"]) == 0
    assert "(2, 10)" in capsys.readouterr().out


def test_default_recipes():
    assert recipe_for("lenet5", "mnist").optimizer == "adam"
    assert recipe_for("vgg16", "fashion-mnist").flip is False
    assert recipe_for("vgg16", "cifar10").flip is True


@pytest.fixture(scope="module")
def mnist_available():
    from cnnrs.data import MNIST, DatasetNotFoundError

    try:
        MNIST(train=False)
    except DatasetNotFoundError:
        pytest.skip("MNIST files not found (set CNNRS_DATA)")


def test_tiny_train_resume_and_eval(tmp_path, capsys, mnist_available):
    out = tmp_path / "run"
    common = [
        "--limit-train",
        "256",
        "--limit-test",
        "100",
        "--batch-size",
        "64",
        "--out",
        str(out),
        "--no-progress",
    ]
    # A 2-epoch run "killed" after its first epoch, then resumed with the same command.
    assert main(["train", "lenet5", "--dataset", "mnist", "--epochs", "2", "--stop-after", "1", *common]) == 0
    text = capsys.readouterr().out
    assert "epoch 1/2" in text and "epoch 2/2" not in text and "test accuracy" in text
    assert (out / "latest.json").exists() and (out / "history.csv").exists()

    assert main(["train", "lenet5", "--dataset", "mnist", "--epochs", "2", "--resume", *common]) == 0
    text = capsys.readouterr().out
    assert "resumed from" in text and "epoch 2/2" in text

    # Resuming under another recipe is refused with one line.
    assert main(["train", "lenet5", "--dataset", "mnist", "--epochs", "3", "--resume", *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a run with different settings" in err[0]

    assert main(["eval", str(out), "--limit-test", "100"]) == 0
    text = capsys.readouterr().out
    assert "lenet5 (epoch 2) on mnist test (100 images)" in text and "accuracy" in text
    # The lone weights file describes its model too.
    assert main(["eval", str(out / "model.safetensors"), "--dataset", "mnist", "--limit-test", "50"]) == 0
    assert "(50 images)" in capsys.readouterr().out


@pytest.mark.slow
def test_lenet5_mnist_default_recipe_reaches_99_percent(tmp_path, capsys, mnist_available):
    assert main(["train", "lenet5", "--dataset", "mnist", "--out", str(tmp_path), "--no-progress"]) == 0
    from cnnrs.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path).state["history"][-1]["val_accuracy"] >= 0.99


@pytest.mark.slow
def test_vgg_small_fashion_mnist_default_recipe_reaches_92_5_percent(tmp_path, capsys):
    from cnnrs.data import DatasetNotFoundError, FashionMNIST

    try:
        FashionMNIST(train=False)
    except DatasetNotFoundError:
        pytest.skip("Fashion-MNIST files not found (set CNNRS_DATA)")
    assert (
        main(["train", "vgg_small", "--dataset", "fashion-mnist", "--out", str(tmp_path), "--no-progress"])
        == 0
    )
    from cnnrs.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path).state["history"][-1]["val_accuracy"] >= 0.925


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, mnist_available):
    """A real kill: SIGKILL the training process after its first checkpoint, resume, compare bit for bit."""
    import json
    import os
    import signal
    import time

    import numpy as np
    from safetensors.numpy import load_file

    cmd = [sys.executable, "-m", "cnnrs", "train", "lenet5", "--dataset", "mnist", "--epochs", "2"]
    cmd += ["--limit-train", "64", "--limit-test", "32", "--batch-size", "32", "--no-progress"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run([*cmd, "--out", str(straight)], check=True, capture_output=True, timeout=300)

    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    process = subprocess.Popen([*cmd, "--out", str(killed)], **quiet)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        pointer = killed / "latest.json"
        if pointer.exists() and json.loads(pointer.read_text())["epoch"] >= 1:
            break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    subprocess.run([*cmd, "--out", str(killed), "--resume"], check=True, capture_output=True, timeout=300)

    ours, theirs = load_file(straight / "model.safetensors"), load_file(killed / "model.safetensors")
    assert sorted(ours) == sorted(theirs)
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    history = json.loads((killed / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
