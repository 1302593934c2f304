"""Layers and a LeNet-like network against PyTorch: same weights in, same outputs and gradients out."""

import numpy as np
import pytest

import cnnrs
import cnnrs.nn as nn

torch = pytest.importorskip("torch")
# One torch thread: on a shared 2-core machine OpenMP's spinning barriers make tiny ops take
# seconds when another process holds a core; these tests compare numbers, not speed.
torch.set_num_threads(1)


def to_torch(a):
    return torch.from_numpy(np.array(a, dtype=np.float32 if np.asarray(a).dtype.kind == "f" else np.int64))


def compare(ours, theirs, shape, atol=1e-5, rtol=1e-4, seed=0, train=True):
    """Copy our weights into the torch module, run both on the same input and upstream gradient,
    compare output, input gradient, parameter gradients and buffers."""
    theirs.load_state_dict({k: to_torch(v.numpy()) for k, v in ours.state_dict().items()})
    ours.train(train)
    theirs.train(train)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    xa = cnnrs.tensor(x, requires_grad=True)
    xb = to_torch(x).requires_grad_(True)
    ya, yb = ours(xa), theirs(xb)
    np.testing.assert_allclose(ya.numpy(), yb.detach().numpy(), atol=atol, rtol=rtol)
    g = rng.standard_normal(ya.shape).astype(np.float32)
    ya.backward(cnnrs.tensor(g))
    yb.backward(to_torch(g))
    np.testing.assert_allclose(xa.grad.numpy(), xb.grad.numpy(), atol=atol, rtol=rtol)
    for (name, pa), (_, pb) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(pa.grad.numpy(), pb.grad.numpy(), atol=atol * 10, rtol=rtol, err_msg=name)
    for (name, ba), (_, bb) in zip(ours.named_buffers(), theirs.named_buffers()):
        np.testing.assert_allclose(ba.numpy(), bb.numpy(), atol=atol, rtol=rtol, err_msg=name)


@pytest.mark.parametrize(
    "args,kwargs,shape",
    [
        ((3, 8, 3), {}, (2, 3, 9, 9)),
        ((3, 8, 3), {"padding": 1}, (2, 3, 9, 9)),
        ((3, 8, (3, 5)), {"padding": (2, 1), "stride": (2, 1)}, (2, 3, 11, 10)),
        ((3, 8, 4), {"padding": "same"}, (2, 3, 8, 7)),
        ((3, 8, (2, 3)), {"padding": "same", "dilation": 2}, (1, 3, 8, 9)),
        ((3, 8, 3), {"padding": "valid"}, (2, 3, 6, 6)),
        ((4, 8, 3), {"groups": 2, "bias": False}, (2, 4, 7, 7)),
        ((4, 4, 3), {"groups": 4, "stride": 2, "padding": 1}, (2, 4, 8, 8)),
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
def test_conv2d(args, kwargs, shape):
    compare(nn.Conv2d(*args, **kwargs), torch.nn.Conv2d(*args, **kwargs), shape, atol=1e-4)


def test_conv1d():
    compare(
        nn.Conv1d(3, 5, 3, padding=1, stride=2), torch.nn.Conv1d(3, 5, 3, padding=1, stride=2), (2, 3, 20)
    )
    compare(nn.Conv1d(2, 4, 4, padding="same"), torch.nn.Conv1d(2, 4, 4, padding="same"), (2, 2, 9))


def test_linear():
    compare(nn.Linear(20, 7), torch.nn.Linear(20, 7), (5, 20))
    compare(nn.Linear(6, 3, bias=False), torch.nn.Linear(6, 3, bias=False), (2, 4, 6))


@pytest.mark.parametrize(
    "kwargs,shape",
    [
        ({"kernel_size": 2}, (2, 3, 8, 8)),
        ({"kernel_size": 3, "stride": 2, "padding": 1}, (2, 3, 9, 10)),
        ({"kernel_size": 3, "stride": 2, "ceil_mode": True}, (1, 2, 8, 8)),
        ({"kernel_size": 2, "dilation": 2}, (1, 2, 9, 9)),
    ],
)
def test_max_pool2d(kwargs, shape):
    compare(nn.MaxPool2d(**kwargs), torch.nn.MaxPool2d(**kwargs), shape)


def test_max_pool2d_return_indices():
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    _, ia = nn.MaxPool2d(2, return_indices=True)(cnnrs.tensor(x))
    _, ib = torch.nn.MaxPool2d(2, return_indices=True)(to_torch(x))
    np.testing.assert_array_equal(ia.numpy(), ib.numpy())


@pytest.mark.parametrize(
    "kwargs,shape",
    [
        ({"kernel_size": 2}, (2, 3, 8, 8)),
        ({"kernel_size": 3, "stride": 2, "padding": 1}, (2, 3, 9, 10)),
        ({"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}, (1, 2, 9, 9)),
        ({"kernel_size": 3, "stride": 2, "ceil_mode": True}, (1, 2, 8, 8)),
        ({"kernel_size": 2, "divisor_override": 3}, (1, 2, 6, 6)),
    ],
)
def test_avg_pool2d(kwargs, shape):
    compare(nn.AvgPool2d(**kwargs), torch.nn.AvgPool2d(**kwargs), shape)


@pytest.mark.parametrize("out,shape", [((7, 7), (1, 4, 14, 14)), ((3, 2), (2, 3, 7, 5)), (1, (2, 3, 5, 5))])
def test_adaptive_avg_pool2d(out, shape):
    compare(nn.AdaptiveAvgPool2d(out), torch.nn.AdaptiveAvgPool2d(out), shape)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm2d_train_then_eval(momentum):
    ours, theirs = nn.BatchNorm2d(4, momentum=momentum), torch.nn.BatchNorm2d(4, momentum=momentum)
    for seed in range(3):  # running stats accumulate over steps
        compare(ours, theirs, (5, 4, 3, 3), seed=seed)
    assert ours.num_batches_tracked.item() == 3
    compare(ours, theirs, (5, 4, 3, 3), seed=7, train=False)


def test_batchnorm1d_and_no_affine():
    compare(nn.BatchNorm1d(6), torch.nn.BatchNorm1d(6), (8, 6))
    compare(nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3), (4, 3, 5))
    compare(nn.BatchNorm2d(3, affine=False), torch.nn.BatchNorm2d(3, affine=False), (4, 3, 2, 2))
    compare(
        nn.BatchNorm2d(3, track_running_stats=False),
        torch.nn.BatchNorm2d(3, track_running_stats=False),
        (4, 3, 2, 2),
        train=False,
    )


@pytest.mark.parametrize(
    "module,torch_module",
    [
        (nn.ReLU(), torch.nn.ReLU()),
        (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
        (nn.Tanh(), torch.nn.Tanh()),
        (nn.Sigmoid(), torch.nn.Sigmoid()),
        (nn.Softmax(dim=1), torch.nn.Softmax(dim=1)),
        (nn.LogSoftmax(dim=1), torch.nn.LogSoftmax(dim=1)),
        (nn.Flatten(), torch.nn.Flatten()),
        (nn.Identity(), torch.nn.Identity()),
    ],
)
def test_activations_and_shape_layers(module, torch_module):
    compare(module, torch_module, (3, 4, 5))


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ignore", [False, True])
def test_cross_entropy_loss(smoothing, reduction, ignore):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((16, 10)).astype(np.float32) * 3
    target = rng.integers(0, 10, 16)
    if ignore:
        target[[2, 5]] = 7
    kwargs = {"label_smoothing": smoothing, "reduction": reduction, "ignore_index": 7 if ignore else -100}
    za, zb = cnnrs.tensor(logits, requires_grad=True), to_torch(logits).requires_grad_(True)
    la = nn.CrossEntropyLoss(**kwargs)(za, cnnrs.tensor(target))
    lb = torch.nn.CrossEntropyLoss(**kwargs)(zb, to_torch(target))
    np.testing.assert_allclose(la.numpy(), lb.detach().numpy(), rtol=1e-5, atol=1e-6)
    (la.sum() if reduction == "none" else la).backward()
    (lb.sum() if reduction == "none" else lb).backward()
    np.testing.assert_allclose(za.grad.numpy(), zb.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_nll_and_mse_loss():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 4)).astype(np.float32)
    t = rng.integers(0, 4, 6)
    for ours, theirs, target in [
        (nn.NLLLoss(), torch.nn.NLLLoss(), t),
        (nn.NLLLoss(reduction="sum", ignore_index=1), torch.nn.NLLLoss(reduction="sum", ignore_index=1), t),
        (nn.MSELoss(), torch.nn.MSELoss(), rng.standard_normal((6, 4)).astype(np.float32)),
    ]:
        xa, xb = cnnrs.tensor(x, requires_grad=True), to_torch(x).requires_grad_(True)
        la, lb = ours(xa, cnnrs.tensor(target)), theirs(xb, to_torch(target))
        np.testing.assert_allclose(la.item(), lb.item(), rtol=1e-5)
        la.backward(), lb.backward()
        np.testing.assert_allclose(xa.grad.numpy(), xb.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_dropout_statistics_and_eval():
    cnnrs.manual_seed(3)
    drop = nn.Dropout(0.25)
    y = drop(cnnrs.ones(400, 400)).numpy()
    assert abs((y == 0).mean() - 0.25) < 0.005
    assert abs(y.mean() - 1.0) < 0.01  # the 1 / (1 - p) scaling keeps the expectation
    drop.eval()
    x = cnnrs.randn(3, 3)
    np.testing.assert_array_equal(drop(x).numpy(), x.numpy())


def lenet(m):
    return m.Sequential(
        m.Conv2d(1, 6, 5, padding=2),
        m.ReLU(),
        m.MaxPool2d(2),
        m.Conv2d(6, 16, 5),
        m.ReLU(),
        m.MaxPool2d(2),
        m.Flatten(),
        m.Linear(400, 120),
        m.ReLU(),
        m.Linear(120, 84),
        m.ReLU(),
        m.Linear(84, 10),
    )


def test_lenet_end_to_end_training_matches_torch():
    """Four SGD-with-momentum steps on the same batches give the same losses and weights."""
    cnnrs.manual_seed(0)
    ours, theirs = lenet(nn), lenet(torch.nn)
    theirs.load_state_dict({k: to_torch(v.numpy()) for k, v in ours.state_dict().items()})
    opt_a = cnnrs.optim.SGD(ours.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    opt_b = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    for _ in range(4):
        x = rng.standard_normal((16, 1, 28, 28)).astype(np.float32)
        y = rng.integers(0, 10, 16)
        opt_a.zero_grad()
        opt_b.zero_grad()
        la = nn.CrossEntropyLoss()(ours(cnnrs.tensor(x)), cnnrs.tensor(y))
        lb = torch.nn.CrossEntropyLoss()(theirs(to_torch(x)), to_torch(y))
        np.testing.assert_allclose(la.item(), lb.item(), rtol=1e-4)
        la.backward()
        lb.backward()
        opt_a.step()
        opt_b.step()
    for (name, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-5, rtol=1e-3, err_msg=name)


def test_state_dict_moves_to_torch_and_back():
    cnnrs.manual_seed(1)
    ours = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 36, 3),
    )
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (k, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert tuple(a.shape) == tuple(b.shape), k
    theirs(torch.randn(4, 1, 8, 8))  # move torch's running stats away from the defaults
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    ours.eval(), theirs.eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(ours(cnnrs.tensor(x)).numpy(), theirs(to_torch(x)).detach().numpy(), atol=1e-5)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm(norm_type):
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s).astype(np.float32) for s in [(3,), (2, 4)]]
    ours = [nn.Parameter(cnnrs.zeros(*g.shape)) for g in grads]
    theirs = [torch.nn.Parameter(torch.zeros(*g.shape)) for g in grads]
    for p, t, g in zip(ours, theirs, grads):
        p.grad, t.grad = cnnrs.tensor(g), torch.from_numpy(g.copy())
    a = nn.utils.clip_grad_norm_(ours, 0.5, norm_type)
    b = torch.nn.utils.clip_grad_norm_(theirs, 0.5, norm_type)
    np.testing.assert_allclose(a.item(), b.item(), rtol=1e-6)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_batchnorm_is_accurate_for_large_means():
    """Activations far from zero (mean 1000, std 1): no cancellation in the statistics or the gradient."""
    ours, theirs = nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    theirs.load_state_dict({k: to_torch(v.numpy()) for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(0)
    x = (1000 + rng.standard_normal((8, 3, 5, 5))).astype(np.float32)
    g = rng.standard_normal((8, 3, 5, 5)).astype(np.float32)
    xa, xb = cnnrs.tensor(x, requires_grad=True), to_torch(x).requires_grad_(True)
    ya, yb = ours(xa), theirs(xb)
    ya.backward(cnnrs.tensor(g))
    yb.backward(to_torch(g))
    np.testing.assert_allclose(ya.numpy(), yb.detach().numpy(), atol=2e-3)
    np.testing.assert_allclose(xa.grad.numpy(), xb.grad.numpy(), atol=2e-3)
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), atol=2e-2)


def test_unbatched_inputs_like_torch():
    cnnrs.manual_seed(0)
    for ours, theirs in [
        (nn.Conv2d(2, 3, 3, padding=1), torch.nn.Conv2d(2, 3, 3, padding=1)),
        (nn.MaxPool2d(2), torch.nn.MaxPool2d(2)),
        (nn.AvgPool2d(2), torch.nn.AvgPool2d(2)),
    ]:
        compare(ours, theirs, (2, 6, 6))


def test_shape_errors_name_the_op():
    with pytest.raises(cnnrs.ShapeError, match="linear: input of shape \\(4, 12\\).*in_features = 10"):
        nn.Linear(10, 3)(cnnrs.randn(4, 12))
    with pytest.raises(cnnrs.ShapeError, match="matmul"):
        cnnrs.randn(2, 3) @ cnnrs.randn(2, 3)
    with pytest.raises(cnnrs.ShapeError, match="conv2d"):
        nn.Conv2d(3, 3, 3)(cnnrs.randn(4, 2, 8, 8))
