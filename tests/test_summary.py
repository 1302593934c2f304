"""cnnrs.summary: shapes, parameters, multiply-adds and receptive fields, checked against hand computation."""

import pytest

from cnnrs.models import lenet5, vgg11
from cnnrs.summary import summary

# LeNet-5 (modern) on 1x28x28, computed by hand:
#   conv1: 6 x 28 x 28 outputs x (1 x 5 x 5) = 117,600 MACs; RF 5, jump 1
#   pool1: RF 5 + (2 - 1) x 1 = 6, jump 2
#   conv2: 16 x 10 x 10 x (6 x 5 x 5) = 240,000 MACs; RF 6 + 4 x 2 = 14, jump 2
#   pool2: RF 14 + 1 x 2 = 16, jump 4
#   fc: 400 x 120 = 48,000; 120 x 84 = 10,080; 84 x 10 = 840
LENET5_ROWS = [
    # name, type, output shape, params, MACs, RF, jump
    ("features.0", "Conv2d", (1, 6, 28, 28), 156, 117_600, 5, 1),
    ("features.1", "ReLU", (1, 6, 28, 28), 0, 0, 5, 1),
    ("features.2", "MaxPool2d", (1, 6, 14, 14), 0, 0, 6, 2),
    ("features.3", "Conv2d", (1, 16, 10, 10), 2_416, 240_000, 14, 2),
    ("features.4", "ReLU", (1, 16, 10, 10), 0, 0, 14, 2),
    ("features.5", "MaxPool2d", (1, 16, 5, 5), 0, 0, 16, 4),
    ("flatten", "Flatten", (1, 400), 0, 0, None, None),
    ("classifier.0", "Linear", (1, 120), 48_120, 48_000, None, None),
    ("classifier.1", "ReLU", (1, 120), 0, 0, None, None),
    ("classifier.2", "Linear", (1, 84), 10_164, 10_080, None, None),
    ("classifier.3", "ReLU", (1, 84), 0, 0, None, None),
    ("classifier.4", "Linear", (1, 10), 850, 840, None, None),
]


def as_tuples(rows):
    keys = ("name", "type", "output_shape", "params", "macs", "receptive_field", "jump")
    return [tuple(row[k] for k in keys) for row in rows]


def test_lenet5_rows_match_hand_computation():
    lines = []
    rows = summary(lenet5(), (1, 28, 28), print_fn=lines.append)
    assert as_tuples(rows) == LENET5_ROWS
    text = "\n".join(lines)
    assert "Total params: 61,706" in text
    assert "Total MACs: 416,520" in text
    assert "features.3" in text and "240,000" in text


def test_batch_dimension_scales_macs_not_params():
    rows = summary(lenet5(), (4, 1, 28, 28), print_fn=None)
    assert rows[0]["output_shape"] == (4, 6, 28, 28)
    assert rows[0]["macs"] == 4 * 117_600
    assert rows[0]["params"] == 156


def test_classic_lenet5_counts_only_connected_c3_weights():
    rows = {r["name"]: r for r in summary(lenet5(classic=True), (1, 28, 28), print_fn=None)}
    # 60 connections x 25 weights + 16 biases; 60 x 25 x 10 x 10 MACs
    assert rows["c3"]["params"] == 1516
    assert rows["c3"]["macs"] == 150_000
    assert rows["s2"]["params"] == 12 and rows["s2"]["macs"] == 6 * 14 * 14
    # C5 sees the whole 32x32 (padded) input field, as in the paper.
    assert rows["c5"]["receptive_field"] == 32
    assert rows["c5"]["jump"] == 4


def test_module_called_twice_gives_two_rows():
    rows = summary(lenet5(classic=True), (1, 28, 28), print_fn=None)
    assert sum(r["name"] == "squash" for r in rows) == 6


def test_vgg_cifar_receptive_field_and_training_mode_restored():
    model = vgg11(image_size=32)
    model.train()
    rows = summary(model, (3, 32, 32), print_fn=None)
    assert model.training
    first_conv = rows[0]
    assert first_conv["receptive_field"] == 3 and first_conv["macs"] == 64 * 32 * 32 * 27
    last_pool = [r for r in rows if r["type"] == "MaxPool2d"][-1]
    # 8 convs and 5 pools: r = 1 + 2*(1+2+4+4+8+8+16+16) + (1+2+4+8+16) = 150, jump 32
    assert last_pool["receptive_field"] == 150 and last_pool["jump"] == 32


def test_bad_input_shape():
    with pytest.raises(ValueError, match="input_shape must be positive"):
        summary(lenet5(), (1, 0, 28), print_fn=None)
