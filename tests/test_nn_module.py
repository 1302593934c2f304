"""Module mechanics: registration, traversal, state_dict, modes, hooks, repr, constructor checks."""

from collections import OrderedDict

import numpy as np
import pytest

import cnnrs
import cnnrs.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Linear(4 * 3 * 3, 5)
        self.register_buffer("scale", cnnrs.ones(1))
        self.register_buffer("cache", cnnrs.zeros(2), persistent=False)

    def forward(self, x):
        return self.classifier(self.features(x * self.scale).flatten(1))


def test_names_follow_torch():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "features.0.weight",
        "features.0.bias",
        "features.1.weight",
        "features.1.bias",
        "classifier.weight",
        "classifier.bias",
    ]
    assert list(net.state_dict()) == [
        "scale",
        "features.0.weight",
        "features.0.bias",
        "features.1.weight",
        "features.1.bias",
        "features.1.running_mean",
        "features.1.running_var",
        "features.1.num_batches_tracked",
        "classifier.weight",
        "classifier.bias",
    ]
    assert [n for n, _ in net.named_modules()] == [
        "",
        "features",
        "features.0",
        "features.1",
        "features.2",
        "features.3",
        "classifier",
    ]
    assert [n for n, _ in net.named_children()] == ["features", "classifier"]
    assert [n for n, _ in net.named_buffers()][:2] == ["scale", "cache"]
    assert net.features[1].num_batches_tracked.dtype == np.int64
    assert len(list(net.parameters())) == 6 and len(list(net.children())) == 2
    assert len(list(net.modules())) == 7


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(3, 3)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2


def test_state_dict_round_trip_and_in_place_load():
    cnnrs.manual_seed(0)
    a, b = Net(), Net()
    weight_before = b.classifier.weight
    b.load_state_dict(a.state_dict())
    assert b.classifier.weight is weight_before  # loaded in place: optimisers keep working
    x = cnnrs.randn(2, 1, 8, 8)
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    # plain numpy arrays are accepted too (e.g. from safetensors)
    b.load_state_dict({k: v.numpy() * 0 for k, v in a.state_dict().items()})
    assert b.classifier.weight.abs().sum().item() == 0


def test_load_state_dict_errors():
    net = Net()
    sd = net.state_dict()
    missing = OrderedDict((k, v) for k, v in sd.items() if k != "classifier.bias")
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "classifier.bias"'):
        net.load_state_dict(missing)
    extra = OrderedDict(sd, extra_thing=cnnrs.zeros(1))
    with pytest.raises(RuntimeError, match='Unexpected key\\(s\\) in state_dict: "extra_thing"'):
        net.load_state_dict(extra)
    result = net.load_state_dict(extra, strict=False)
    assert result.unexpected_keys == ["extra_thing"] and result.missing_keys == []
    old_style = OrderedDict((k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    assert net.load_state_dict(old_style).missing_keys == []
    bad = OrderedDict(sd)
    bad["classifier.weight"] = cnnrs.zeros(5, 7)
    with pytest.raises(RuntimeError, match="size mismatch for classifier.weight.*\\(5, 7\\).*\\(5, 36\\)"):
        net.load_state_dict(bad)


def test_train_eval_and_zero_grad():
    net = Net()
    assert net.training and net.features[1].training
    net.eval()
    assert not net.training and not net.features[1].training
    net.train()
    assert net.features[3].training
    net(cnnrs.randn(2, 1, 8, 8)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and p.grad.abs().sum().item() == 0 for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_forward_hooks_and_removal():
    net = Net()
    seen = []
    handle = net.features[0].register_forward_hook(
        lambda m, inp, out: seen.append((type(m).__name__, out.shape))
    )
    net(cnnrs.randn(2, 1, 8, 8))
    assert seen == [("Conv2d", (2, 4, 6, 6))]
    handle.remove()
    net(cnnrs.randn(2, 1, 8, 8))
    assert len(seen) == 1
    # a hook that returns a value replaces the output
    h = net.classifier.register_forward_hook(lambda m, inp, out: out * 0)
    assert net(cnnrs.randn(1, 1, 8, 8)).abs().sum().item() == 0
    h.remove()
    pre = net.classifier.register_forward_pre_hook(lambda m, inp: (inp[0] * 0,))
    assert np.allclose(net(cnnrs.randn(1, 1, 8, 8)).numpy(), net.classifier.bias.numpy())
    pre.remove()


def test_hook_on_conv_sees_pre_relu_output_in_sequential():
    """With a hook on the Conv2d, Sequential must not fuse the ReLU in: the hook sees negatives."""
    cnnrs.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU())
    outputs = []
    seq[0].register_forward_hook(lambda m, i, o: outputs.append(o.numpy().copy()))
    y = seq(cnnrs.randn(1, 1, 6, 6))
    assert outputs[0].min() < 0
    np.testing.assert_array_equal(y.numpy(), np.maximum(outputs[0], 0))


def test_apply_and_register_methods():
    net = Net()
    names = []
    net.apply(lambda m: names.append(type(m).__name__))
    assert names[-1] == "Net" and names[0] == "Conv2d"
    m = nn.Module()
    m.add_module("lin", nn.Linear(2, 2))
    m.register_parameter("p", nn.Parameter(cnnrs.zeros(3)))
    assert [n for n, _ in m.named_parameters()] == ["p", "lin.weight", "lin.bias"]
    with pytest.raises(KeyError):
        m.register_parameter("a.b", nn.Parameter(cnnrs.zeros(1)))
    with pytest.raises(TypeError):
        m.register_parameter("q", cnnrs.zeros(1))
    with pytest.raises(TypeError):
        m.p = cnnrs.zeros(3)  # plain tensor over a parameter
    del m.p
    assert [n for n, _ in m.named_parameters()] == ["lin.weight", "lin.bias"]
    assert m.get_submodule("lin") is m.lin and m.get_parameter("lin.bias") is m.lin.bias


def test_sequential_indexing_slicing_and_ordered_dict():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert isinstance(seq[0], nn.Linear) and isinstance(seq[-1], nn.Linear)
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is seq[0]
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    with pytest.raises(IndexError):
        seq[3]
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.Tanh())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]
    assert seq[:2][1:][0] is seq[1]
    seq.append(nn.Sigmoid())
    assert len(seq) == 4 and seq(cnnrs.randn(5, 2)).shape == (5, 1)
    ml = nn.ModuleList([nn.Linear(1, 1) for _ in range(3)])
    assert len(ml) == 3 and len(list(ml.parameters())) == 6
    assert [n for n, _ in ml.named_parameters()][0] == "0.weight"


def test_repr_like_torch():
    assert repr(nn.Conv2d(1, 6, 5)) == "Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))"
    assert (
        repr(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False))
        == "Conv2d(3, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)"
    )
    assert repr(nn.Linear(4, 2)) == "Linear(in_features=4, out_features=2, bias=True)"
    assert repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.Sequential(nn.ReLU(), nn.Flatten())) == (
        "Sequential(\n  (0): ReLU()\n  (1): Flatten(start_dim=1, end_dim=-1)\n)"
    )
    assert (
        repr(nn.MaxPool2d(2)) == "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"
    )
    assert "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)" == repr(
        nn.BatchNorm2d(4)
    )


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: nn.Conv2d(0, 4, 3), "Conv2d: in_channels"),
        (lambda: nn.Conv2d(3, 4, 0), "Conv2d: kernel_size"),
        (lambda: nn.Conv2d(3, 4, 3, stride=0), "Conv2d: stride"),
        (lambda: nn.Conv2d(3, 4, 3, padding=-1), "Conv2d: padding"),
        (lambda: nn.Conv2d(3, 4, 3, padding="full"), "Conv2d: invalid padding"),
        (lambda: nn.Conv2d(3, 4, 3, stride=2, padding="same"), "strided"),
        (lambda: nn.Conv2d(3, 4, 3, groups=2), "divisible by groups"),
        (lambda: nn.Conv2d(3, 4, (3, 3, 3)), "Conv2d: kernel_size"),
        (lambda: nn.Conv2d(3, 4, 2.5), "Conv2d: kernel_size"),
        (lambda: nn.Linear(-1, 3), "Linear: in_features"),
        (lambda: nn.MaxPool2d(2, padding=2), "MaxPool2d: padding"),
        (lambda: nn.MaxPool2d(0), "MaxPool2d: kernel_size"),
        (lambda: nn.AvgPool2d(3, divisor_override=0), "divisor_override"),
        (lambda: nn.AdaptiveAvgPool2d(0), "AdaptiveAvgPool2d"),
        (lambda: nn.BatchNorm2d(0), "BatchNorm2d: num_features"),
        (lambda: nn.BatchNorm2d(3, momentum=2), "momentum"),
        (lambda: nn.Dropout(1.5), "Dropout: p"),
        (lambda: nn.CrossEntropyLoss(label_smoothing=2.0), "label_smoothing"),
        (lambda: nn.CrossEntropyLoss(reduction="avg"), "reduction"),
    ],
)
def test_constructor_arguments_are_validated(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_unsupported_options_say_so():
    with pytest.raises(NotImplementedError, match="padding_mode"):
        nn.Conv2d(1, 1, 3, padding_mode="reflect")
    with pytest.raises(NotImplementedError, match="weight"):
        nn.CrossEntropyLoss(weight=cnnrs.ones(3))


def test_batchnorm_checks_input_shape():
    with pytest.raises(ValueError, match="4D"):
        nn.BatchNorm2d(3)(cnnrs.randn(2, 3))
    with pytest.raises(ValueError, match="channels"):
        nn.BatchNorm2d(3)(cnnrs.randn(2, 4, 2, 2))


def test_default_init_bounds_like_torch():
    cnnrs.manual_seed(0)
    conv = nn.Conv2d(6, 16, 5)
    fan_in = 6 * 25
    # kaiming_uniform_(a=sqrt(5)) -> bound = 1 / sqrt(fan_in), same bound for the bias
    bound = 1 / np.sqrt(fan_in)
    assert np.abs(conv.weight.numpy()).max() <= bound and np.abs(conv.weight.numpy()).max() > 0.9 * bound
    assert np.abs(conv.bias.numpy()).max() <= bound
    assert abs(conv.weight.numpy().std() - bound / np.sqrt(3)) < 0.1 * bound


def test_init_functions():
    w = nn.Parameter(cnnrs.zeros(64, 32, 3, 3))
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w.numpy().std() - np.sqrt(2 / (64 * 9))) < 0.01
    nn.init.xavier_uniform_(w)
    assert np.abs(w.numpy()).max() <= np.sqrt(6 / (32 * 9 + 64 * 9))
    nn.init.constant_(w, 0.5)
    assert (w.numpy() == 0.5).all()
    nn.init.zeros_(w)
    assert nn.init.calculate_gain("relu") == np.sqrt(2)
    assert nn.init.calculate_gain("leaky_relu", 0.2) == np.sqrt(2 / 1.04)
    with pytest.raises(ValueError):
        nn.init.calculate_gain("softplus")
