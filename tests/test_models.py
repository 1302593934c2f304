"""cnnrs.models: output shapes, parameter counts, the classic LeNet's C3 table, and state_dict
compatibility with the same architectures written in PyTorch."""

import numpy as np
import pytest

import cnnrs
from cnnrs import nn
from cnnrs.models import (
    MaskedConv2d,
    conv_pattern,
    create_model,
    lenet5,
    vgg11,
    vgg13,
    vgg16,
    vgg19,
    vgg_small,
)
from cnnrs.models.lenet import C3_CONNECTIONS, c3_mask


def count(model) -> int:
    return sum(int(np.prod(p.shape)) for p in model.parameters())


def images(n, c, side, seed=0):
    return cnnrs.tensor(np.random.default_rng(seed).standard_normal((n, c, side, side)).astype(np.float32))


# ----------------------------------------------------------------------------- LeNet-5


def test_lenet5_shapes_and_parameters():
    model = lenet5()
    assert model(images(3, 1, 28)).shape == (3, 10)
    # conv1 156 + conv2 2416 + fc 48120 + 10164 + 850
    assert count(model) == 61706
    assert lenet5(num_classes=7)(images(2, 1, 28)).shape == (2, 7)


def test_lenet5_classic_parameters_match_the_paper():
    model = lenet5(classic=True)
    assert model(images(2, 1, 28)).shape == (2, 10)
    assert model.c3.num_effective_parameters() == 1516
    # The paper's 60,000 trainable parameters up to F6, plus the linear output layer (84 * 10 + 10).
    effective = {
        name: (m.num_effective_parameters() if isinstance(m, MaskedConv2d) else count(m))
        for name, m in model.named_children()
    }
    assert effective == {
        "c1": 156,
        "s2": 12,
        "c3": 1516,
        "s4": 32,
        "c5": 48120,
        "f6": 10164,
        "output": 850,
        "squash": 0,
        "flatten": 0,
    }


def test_classic_initialisation_is_uniform_in_2_4_over_fan_in():
    cnnrs.manual_seed(0)
    model = lenet5(classic=True)
    c1 = np.abs(model.c1.weight.numpy())
    assert c1.max() <= 2.4 / 25 and c1.max() > 0.8 * 2.4 / 25
    c3 = np.abs(model.c3.weight.numpy())
    for out_map, fan_in in ((0, 75), (6, 100), (15, 150)):
        assert c3[out_map].max() <= 2.4 / fan_in and c3[out_map].max() > 0.8 * 2.4 / fan_in
    f6 = np.abs(model.f6.weight.numpy())
    assert f6.max() <= 2.4 / 120


def test_c3_table_is_table_one_of_the_paper():
    mask = c3_mask()[:, :, 0, 0]
    assert mask.sum() == 60
    assert [int(row.sum()) for row in mask] == [3] * 6 + [4] * 9 + [6]
    # Every S2 map feeds 10 C3 maps.
    assert mask.sum(axis=0).tolist() == [10] * 6
    assert C3_CONNECTIONS[12] == (0, 1, 3, 4)


def test_classic_c3_mask_holds_through_gradients_and_training():
    cnnrs.manual_seed(0)
    model = lenet5(classic=True)
    mask = model.c3.mask
    assert np.all(model.c3.weight.numpy() * (1 - mask) == 0)
    opt = cnnrs.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    labels = cnnrs.tensor(np.arange(4) % 10)
    for step in range(3):
        opt.zero_grad()
        loss = nn.CrossEntropyLoss()(model(images(4, 1, 28, seed=step)), labels)
        loss.backward()
        grad = model.c3.weight.grad.numpy()
        assert np.all(grad * (1 - mask) == 0)
        assert np.any(grad * mask != 0)
        opt.step()
    # Masked weights never moved away from zero (weight decay and momentum included).
    assert np.all(model.c3.weight.numpy() * (1 - mask) == 0)


def test_scaled_tanh():
    from cnnrs.models import ScaledTanh

    x = np.linspace(-3, 3, 7, dtype=np.float32)
    y = ScaledTanh()(cnnrs.tensor(x)).detach().numpy()
    np.testing.assert_allclose(y, 1.7159 * np.tanh(2 * x / 3), rtol=1e-6, atol=1e-6)
    # f(1) = 1 and f(-1) = -1: why LeCun chose these constants.
    np.testing.assert_allclose(
        ScaledTanh()(cnnrs.tensor(np.array([1.0, -1.0], np.float32))).detach().numpy(), [1, -1], atol=1e-4
    )


# ----------------------------------------------------------------------------- VGG


class ConstantRng:
    """Stands in for the global generator: drawing 130 M random numbers takes ~10 s per VGG at 224,
    and parameter counts and shapes do not depend on them."""

    def uniform(self, low=0.0, high=1.0, size=None):
        return np.broadcast_to(np.float32(0), size)

    normal = uniform


@pytest.mark.parametrize(
    "builder, batch_norm, expected",
    [
        (vgg11, False, 132_863_336),
        (vgg13, False, 133_047_848),
        (vgg16, False, 138_357_544),
        (vgg19, False, 143_667_240),
        (vgg11, True, 132_868_840),
        (vgg13, True, 133_053_736),
        (vgg16, True, 138_365_992),
        (vgg19, True, 143_678_248),
    ],
)
def test_vgg_imagenet_parameter_counts_match_torchvision(builder, batch_norm, expected, monkeypatch):
    monkeypatch.setattr(nn.init, "get_rng", lambda: ConstantRng())
    assert count(builder(batch_norm=batch_norm)) == expected


def test_vgg_imagenet_head(monkeypatch):
    monkeypatch.setattr(nn.init, "get_rng", lambda: ConstantRng())
    model = vgg11(num_classes=7)
    model.eval()
    # The features of a 224x224 image are 512x7x7; the adaptive pool keeps them, the head maps them.
    features = cnnrs.tensor(np.ones((1, 512, 7, 7), np.float32))
    pooled = model.avgpool(features)
    assert pooled.shape == (1, 512, 7, 7)
    assert model.classifier(model.flatten(pooled)).shape == (1, 7)
    assert [type(m).__name__ for m in model.classifier] == [
        "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear",
    ]  # fmt: skip


@pytest.mark.parametrize("builder", [vgg11, vgg13, vgg16, vgg19])
def test_vgg_cifar_shapes(builder):
    model = builder(image_size=32)
    model.eval()
    assert model(images(1, 3, 32)).shape == (1, 10)


def test_vgg_cifar_in_channels_and_bn():
    model = vgg11(batch_norm=True, image_size=32, in_channels=1, num_classes=5)
    model.eval()
    assert model(images(2, 1, 32)).shape == (2, 5)
    # 9.2 M conv + BN parameters, head 512*512+512 + 512*5+5
    conv_bn = count(model.features)
    assert count(model) == conv_bn + 262_656 + 2_565


def test_vgg_bad_arguments():
    with pytest.raises(ValueError, match="image_size"):
        vgg11(image_size=64)
    with pytest.raises(ValueError, match="num_classes"):
        vgg11(image_size=32, num_classes=0)


# ----------------------------------------------------------------------------- the pattern builder


def test_conv_pattern_layers_and_shapes():
    model = conv_pattern(3, 32, 10, n=2, m=2, k=1, channels=(8, 16), fc_widths=(20,), batch_norm=True)
    kinds = [type(m).__name__ for m in model.features]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU"] * 2 + ["MaxPool2d"] + [
        "Conv2d",
        "BatchNorm2d",
        "ReLU",
    ] * 2 + ["MaxPool2d"]
    assert [type(m).__name__ for m in model.classifier] == ["Linear", "ReLU", "Linear"]
    assert model.classifier[0].weight.shape == (20, 16 * 8 * 8)
    model.eval()
    assert model(images(1, 3, 32)).shape == (1, 10)


def test_conv_pattern_without_pool_or_hidden_layers():
    model = conv_pattern(1, 6, 4, n=1, m=2, k=0, channels=(3, 5), pool=False)
    assert [type(m).__name__ for m in model.classifier] == ["Linear"]
    assert model.classifier[0].weight.shape == (4, 5 * 6 * 6)
    assert model(images(1, 1, 6)).shape == (1, 4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": -1}, "n must be an integer >= 0"),
        ({"m": 2, "channels": (8,)}, "channels needs m = 2 entries"),
        ({"k": 1, "fc_widths": ()}, "fc_widths needs k = 1 entries"),
        ({"channels": (0,)}, "channels must be an integer >= 1"),
        ({"m": 6, "channels": (4,) * 6}, "shrink a 28x28 image to nothing"),
        ({"in_channels": 0}, "in_channels must be an integer >= 1"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_conv_pattern_rejects_bad_arguments(kwargs, message):
    args = dict(in_channels=1, image_size=28, num_classes=10, n=1, m=1, k=0, channels=(4,), fc_widths=())
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        conv_pattern(**args)


def test_vgg_small():
    model = vgg_small()
    model.eval()
    assert model(images(2, 1, 28)).shape == (2, 10)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.weight.shape[0] for c in convs] == [16, 16, 32, 32, 64, 64]
    assert model.classifier[0].weight.shape == (256, 64 * 3 * 3)


def test_create_model_names():
    assert create_model("lenet5-classic").c3.num_effective_parameters() == 1516
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        create_model("resnet")


# ----------------------------------------------------------------------------- PyTorch compatibility


def torch_models():
    """The same architectures written in PyTorch (module layout chosen to give the same keys)."""
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    class TorchLeNet5(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(
                tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
                tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2),
            )  # fmt: skip
            self.flatten = tnn.Flatten()
            self.classifier = tnn.Sequential(
                tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10)
            )

        def forward(self, x):
            return self.classifier(self.flatten(self.features(x)))

    class TorchSubsampling(tnn.Module):
        def __init__(self, c):
            super().__init__()
            self.weight = tnn.Parameter(torch.ones(c))
            self.bias = tnn.Parameter(torch.zeros(c))

        def forward(self, x):
            return tnn.functional.avg_pool2d(x, 2) * self.weight.view(1, -1, 1, 1) + self.bias.view(
                1, -1, 1, 1
            )

    class TorchMaskedConv2d(tnn.Conv2d):
        def __init__(self, *args, mask, **kwargs):
            super().__init__(*args, **kwargs)
            self.register_buffer("mask", torch.tensor(mask), persistent=False)

        def forward(self, x):
            return self._conv_forward(x, self.weight * self.mask, self.bias)

    class TorchLeNet5Classic(tnn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = tnn.Conv2d(1, 6, 5, padding=2)
            self.s2 = TorchSubsampling(6)
            self.c3 = TorchMaskedConv2d(6, 16, 5, mask=c3_mask())
            self.s4 = TorchSubsampling(16)
            self.c5 = tnn.Conv2d(16, 120, 5)
            self.f6 = tnn.Linear(120, 84)
            self.output = tnn.Linear(84, 10)
            self.flatten = tnn.Flatten()

        def forward(self, x):
            def f(a):
                return 1.7159 * torch.tanh(a * (2.0 / 3.0))

            x = f(self.s2(f(self.c1(x))))
            x = f(self.s4(f(self.c3(x))))
            x = f(self.f6(self.flatten(f(self.c5(x)))))
            return self.output(x)

    def torch_vgg11_cifar():
        # torchvision's make_layers with configuration A, then the 32x32 head of cnnrs.models.vgg.
        layers, c = [], 3
        for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
            if v == "M":
                layers.append(tnn.MaxPool2d(2, 2))
            else:
                layers += [tnn.Conv2d(c, v, 3, padding=1), tnn.BatchNorm2d(v), tnn.ReLU(inplace=True)]
                c = v
        model = tnn.Module()
        model.features = tnn.Sequential(*layers)
        model.flatten = tnn.Flatten()
        model.classifier = tnn.Sequential(
            tnn.Linear(512, 512), tnn.ReLU(True), tnn.Dropout(), tnn.Linear(512, 10)
        )
        model.forward = lambda x: model.classifier(model.flatten(model.features(x)))
        return model

    return torch, {
        "lenet5": (TorchLeNet5, lambda: lenet5()),
        "lenet5-classic": (TorchLeNet5Classic, lambda: lenet5(classic=True)),
        "vgg11-bn-32": (torch_vgg11_cifar, lambda: vgg11(batch_norm=True, image_size=32)),
    }


@pytest.mark.parametrize("name", ["lenet5", "lenet5-classic", "vgg11-bn-32"])
def test_state_dict_matches_pytorch_both_ways(name):
    torch, table = torch_models()
    torch_builder, cnnrs_builder = table[name]
    torch.manual_seed(0)
    reference = torch_builder().eval()
    model = cnnrs_builder()
    model.eval()
    ours = model.state_dict()
    theirs = reference.state_dict()
    assert list(ours) == list(theirs)
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}

    x = images(2, 3 if name.startswith("vgg") else 1, 32 if name.startswith("vgg") else 28, seed=1)
    # PyTorch -> cnnrs
    model.load_state_dict({k: v.detach().numpy() for k, v in theirs.items()})
    expected = reference(torch.from_numpy(x.numpy())).detach().numpy()
    np.testing.assert_allclose(model(x).detach().numpy(), expected, rtol=1e-4, atol=1e-5)
    # cnnrs -> PyTorch (fresh weights on our side)
    cnnrs.manual_seed(1)
    other = cnnrs_builder()
    other.eval()
    reference.load_state_dict(
        {k: torch.from_numpy(np.array(v.numpy())) for k, v in other.state_dict().items()}
    )
    expected = reference(torch.from_numpy(x.numpy())).detach().numpy()
    np.testing.assert_allclose(other(x).detach().numpy(), expected, rtol=1e-4, atol=1e-5)
