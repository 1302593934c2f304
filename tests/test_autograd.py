"""Every differentiable op: forward against a float64 numpy reference, gradient against float64
central finite differences of that reference (tinygrad's test_ops style: one line per op)."""

import numpy as np
import pytest

import cnnrs
import cnnrs.nn.functional as F
from gradcheck import check


def softmax64(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# --------------------------------------------------------------------------- binary ops with broadcasting


@pytest.mark.parametrize(
    "sa,sb",
    [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((1,), (2, 3)), ((), (2, 3)), ((5, 1), (1, 5))],
)
def test_binary_broadcasting(sa, sb):
    check([sa, sb], lambda a, b: a + b, lambda a, b: a + b)
    check([sa, sb], lambda a, b: a - b, lambda a, b: a - b)
    check([sa, sb], lambda a, b: a * b, lambda a, b: a * b)
    check([sa, sb], lambda a, b: a / b, lambda a, b: a / b, low=0.5, high=2.0)


def test_scalar_operands():
    check([(3, 4)], lambda a: 2.0 * a + 1, lambda a: 2 * a + 1)
    check([(3, 4)], lambda a: 1 - a / 3, lambda a: 1 - a / 3)
    check([(3, 4)], lambda a: 2 / a, lambda a: 2 / a, low=0.5)
    check([(3, 4)], lambda a: -a, lambda a: -a)


def test_pow():
    check([(3, 4)], lambda a: a**2, lambda a: a**2)
    check([(3, 4)], lambda a: a**3, lambda a: a**3)
    check([(3, 4)], lambda a: a**0.5, lambda a: a**0.5, low=0.5)
    check([(3, 4), (3, 4)], lambda a, b: a**b, lambda a, b: a**b, low=0.5, high=2.0)
    check([(3, 4)], lambda a: 2.0**a, lambda a: 2.0**a)


@pytest.mark.parametrize("sa,sb", [((3, 5), (5, 4)), ((1, 7), (7, 1)), ((17, 33), (33, 9))])
def test_matmul_2d(sa, sb):
    check([sa, sb], lambda a, b: a @ b, lambda a, b: a @ b)


def test_matmul_transposed_views_and_batched():
    check([(5, 3), (5, 4)], lambda a, b: a.T @ b, lambda a, b: a.T @ b)
    check([(3, 5), (4, 5)], lambda a, b: a @ b.T, lambda a, b: a @ b.T)
    check([(2, 3, 4), (4, 5)], lambda a, b: a @ b, lambda a, b: a @ b)
    check([(2, 3, 4), (2, 4, 5)], lambda a, b: a @ b, lambda a, b: a @ b)
    check([(4,), (4, 3)], lambda a, b: a @ b, lambda a, b: a @ b)
    check([(3, 4), (4,)], lambda a, b: a @ b, lambda a, b: a @ b)


# --------------------------------------------------------------------------- unary ops


def test_unary():
    check([(3, 4)], lambda a: a.exp(), np.exp)
    check([(3, 4)], lambda a: a.log(), np.log, low=0.1)
    check([(3, 4)], lambda a: a.sqrt(), np.sqrt, low=0.1)
    check([(3, 4)], lambda a: a.abs(), np.abs)
    check([(3, 4)], lambda a: a.clamp(-0.5, 0.7), lambda a: np.clip(a, -0.5, 0.7))
    check([(3, 4)], lambda a: a.clamp(min=0.1), lambda a: np.maximum(a, 0.1))
    check([(3, 4)], lambda a: a.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), low=-30, high=30)
    check([(3, 4)], lambda a: a.tanh(), np.tanh)
    check([(3, 4)], lambda a: a.square(), np.square)
    check([(3, 4)], lambda a: a.norm(), lambda a: np.sqrt((a * a).sum()))
    check([(3, 4)], lambda a: a.norm(1, dim=1), lambda a: np.abs(a).sum(1))
    check([(3, 4)], lambda a: a.norm(3, dim=0), lambda a: (np.abs(a) ** 3).sum(0) ** (1 / 3))


def test_activations():
    check([(2, 3, 5, 5)], lambda a: a.relu(), lambda a: np.maximum(a, 0))
    check([(2, 3, 5, 5)], F.relu, lambda a: np.maximum(a, 0))
    check([(4, 6)], lambda a: F.leaky_relu(a, 0.2), lambda a: np.where(a > 0, a, 0.2 * a))
    check([(4, 6)], lambda a: F.softmax(a, dim=1), lambda a: softmax64(a, 1))
    check([(4, 6)], lambda a: F.softmax(a, dim=0), lambda a: softmax64(a, 0))
    check([(4, 6)], lambda a: F.log_softmax(a, dim=1), lambda a: np.log(softmax64(a, 1)))
    check([(2, 3, 4)], lambda a: a.log_softmax(-1), lambda a: np.log(softmax64(a, -1)))


# --------------------------------------------------------------------------- reductions


@pytest.mark.parametrize("dim,keepdim", [(None, False), (0, False), (1, True), ((0, 2), False), (-1, True)])
def test_sum_mean(dim, keepdim):
    check([(3, 4, 5)], lambda a: a.sum(dim, keepdim), lambda a: a.sum(axis=dim, keepdims=keepdim))
    check([(3, 4, 5)], lambda a: a.mean(dim, keepdim), lambda a: a.mean(axis=dim, keepdims=keepdim))


def test_var_std():
    check([(4, 5)], lambda a: a.var(), lambda a: a.var(ddof=1))
    check([(4, 5)], lambda a: a.var(1, unbiased=False), lambda a: a.var(axis=1))
    check([(4, 5)], lambda a: a.std(0), lambda a: a.std(axis=0, ddof=1))


def test_max_min():
    check([(3, 4)], lambda a: a.max(), lambda a: np.asarray(a.max()))
    check([(3, 4)], lambda a: a.min(), lambda a: np.asarray(a.min()))
    check([(3, 4)], lambda a: a.max(dim=1).values, lambda a: a.max(axis=1))
    check([(3, 4)], lambda a: a.max(0, keepdim=True)[0], lambda a: a.max(axis=0, keepdims=True))
    check([(3, 4)], lambda a: a.min(dim=1).values, lambda a: a.min(axis=1))


def test_max_with_dim_returns_indices_and_ties_share_global_gradient():
    x = cnnrs.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]], requires_grad=True)
    values, indices = x.max(dim=1)
    np.testing.assert_array_equal(values.numpy(), [5.0, 7.0])
    np.testing.assert_array_equal(indices.numpy(), [1, 0])
    assert indices.dtype == np.int64 and not indices.requires_grad
    x.max().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0, 0], [0.5, 0, 0.5]])
    np.testing.assert_array_equal(x.argmax(dim=1).numpy(), [1, 0])
    assert x.argmax().item() == 3


# --------------------------------------------------------------------------- shapes and indexing


def test_shape_ops():
    check([(2, 3, 4)], lambda a: a.reshape(4, 6), lambda a: a.reshape(4, 6))
    check([(2, 3, 4)], lambda a: a.view(-1), lambda a: a.reshape(-1))
    check([(2, 3, 4)], lambda a: a.flatten(1), lambda a: a.reshape(2, 12))
    check([(2, 3, 4)], lambda a: a.transpose(0, 2), lambda a: a.transpose(2, 1, 0))
    check([(2, 3, 4)], lambda a: a.permute(1, 2, 0), lambda a: a.transpose(1, 2, 0))
    check([(3, 4)], lambda a: a.T, lambda a: a.T)
    check([(3, 4)], lambda a: a.unsqueeze(1), lambda a: a[:, None])
    check([(3, 1, 4)], lambda a: a.squeeze(1), lambda a: a[:, 0])
    check([(3, 1)], lambda a: a.expand(3, 5), lambda a: np.broadcast_to(a, (3, 5)))


def test_getitem():
    check([(4, 5)], lambda a: a[1], lambda a: a[1])
    check([(4, 5)], lambda a: a[1:3, ::2], lambda a: a[1:3, ::2])
    check([(4, 5)], lambda a: a[:, -1], lambda a: a[:, -1])
    idx = np.array([0, 2, 2, 3])
    check([(4, 5)], lambda a: a[idx], lambda a: a[idx])  # repeated rows add up
    check([(4, 5)], lambda a: a[cnnrs.tensor(idx)], lambda a: a[idx])
    check(
        [(4, 5)], lambda a: a[np.arange(4), np.array([0, 1, 4, 4])], lambda a: a[np.arange(4), [0, 1, 4, 4]]
    )


def test_cat_stack_where():
    check([(2, 3), (4, 3)], lambda a, b: cnnrs.cat([a, b]), lambda a, b: np.concatenate([a, b]))
    check([(2, 3), (2, 3)], lambda a, b: cnnrs.stack([a, b], 1), lambda a, b: np.stack([a, b], 1))
    cond = np.array([[True, False, True]])
    check([(2, 3), (2, 3)], lambda a, b: cnnrs.where(cond, a, b), lambda a, b: np.where(cond, a, b))


def test_composite_expression():
    def cn(a, b):
        return ((a * b).exp() + a.sigmoid() * 3).log().mean(1) - (a @ b.T).sum(0)

    def ref(a, b):
        return np.log(np.exp(a * b) + 3 / (1 + np.exp(-a))).mean(1) - (a @ b.T).sum(0)

    check([(4, 4), (4, 4)], cn, ref, low=-1, high=1)


# --------------------------------------------------------------------------- graph behaviour


def test_gradients_accumulate_until_zeroed():
    x = cnnrs.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2 + 3, 4 + 3])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3, 3])


def test_shared_subexpression_and_reused_input():
    x = cnnrs.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x * 2
    z = (y * y + y).sum()  # y used twice
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (2 * 2 * x.numpy() + 1))


def test_leaf_grads_do_not_alias():
    a = cnnrs.tensor([1.0, 2.0], requires_grad=True)
    b = cnnrs.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad.data *= 10  # user edits one gradient in place ...
    np.testing.assert_allclose(b.grad.numpy(), [1, 1])  # ... the other is untouched


def test_no_grad_context_and_decorator():
    x = cnnrs.tensor([1.0], requires_grad=True)
    with cnnrs.no_grad():
        y = x * 2
        with cnnrs.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad
    assert cnnrs.is_grad_enabled()

    @cnnrs.no_grad()
    def f(t):
        return t * 2

    @cnnrs.no_grad
    def g(t):
        return t * 2

    assert not f(x).requires_grad and not g(x).requires_grad
    assert cnnrs.is_grad_enabled()


def test_backward_twice_needs_retain_graph():
    x = cnnrs.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_backward_errors():
    x = cnnrs.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar outputs"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        cnnrs.tensor([1.0]).sum().backward()
    (x * 2).backward(cnnrs.tensor([1.0, 0.5]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 1.0])
    with pytest.raises(RuntimeError, match="shape"):
        (x * 2).backward(np.ones(3))


def test_gradient_with_respect_to_input_through_network():
    """Feature visualisation needs d(activation)/d(input) with frozen weights."""
    cnnrs.manual_seed(0)
    net = cnnrs.nn.Sequential(cnnrs.nn.Conv2d(1, 4, 3), cnnrs.nn.ReLU(), cnnrs.nn.MaxPool2d(2))
    net.requires_grad_(False)
    image = cnnrs.randn(1, 1, 8, 8, requires_grad=True)
    net(image)[0, 2].mean().backward()
    assert image.grad is not None and image.grad.shape == (1, 1, 8, 8)
    assert all(p.grad is None for p in net.parameters())
    # finite difference along the gradient direction
    direction = image.grad.numpy() / np.linalg.norm(image.grad.numpy())
    eps = 1e-2

    def f(img):
        with cnnrs.no_grad():
            return net(cnnrs.tensor(img))[0, 2].mean().item()

    fd = (f(image.numpy() + eps * direction) - f(image.numpy() - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(fd, np.linalg.norm(image.grad.numpy()), rtol=2e-2)


def test_grad_function_and_retain_grad():
    x = cnnrs.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    y = (h * h).sum()
    (gx,) = cnnrs.grad(y, [x], retain_graph=True)
    np.testing.assert_allclose(gx.numpy(), 18 * x.numpy())
    assert x.grad is None and h.grad is None  # grad() stores nothing
    (gh,) = cnnrs.grad(y, h, retain_graph=True)
    np.testing.assert_allclose(gh.numpy(), 2 * h.numpy())
    y.backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.numpy())


def test_non_float_cannot_require_grad():
    with pytest.raises(RuntimeError, match="floating point"):
        cnnrs.tensor([1, 2], requires_grad=True)


def test_deep_graph_has_no_recursion_limit():
    x = cnnrs.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1.0
    y.backward()
    assert x.grad.item() == 1.0


def test_in_place_on_leaf_requiring_grad_is_refused():
    x = cnnrs.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        x.add_(1.0)
    with cnnrs.no_grad():
        x.add_(1.0)
    assert x.item() == 2.0


def test_backward_frees_the_graph():
    import weakref

    x = cnnrs.tensor(np.ones((4, 4), dtype=np.float32), requires_grad=True)
    hidden = (x * 2).exp()
    probe = weakref.ref(hidden)
    loss = hidden.sum()
    del hidden
    loss.backward()
    assert probe() is None  # the intermediate activation is gone although `loss` is alive
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()


def test_grad_mode_is_per_thread():
    import threading

    seen = []
    with cnnrs.no_grad():
        worker = threading.Thread(target=lambda: seen.append(cnnrs.is_grad_enabled()))
        worker.start()
        worker.join()
    assert seen == [True]


@pytest.mark.parametrize("setting,expected", [("1", "True"), ("0", "False")])
def test_allocator_tuning_applies_on_first_backward_and_can_be_turned_off(setting, expected):
    import os
    import subprocess
    import sys

    if not sys.platform.startswith("linux") or "glibc" not in " ".join(__import__("platform").libc_ver()):
        pytest.skip("glibc only")
    code = (
        "import cnnrs; from cnnrs import _allocator as a; assert not a._State.done; "
        "x = cnnrs.ones(2, requires_grad=True); (x * x).sum().backward(); print(a._State.applied)"
    )
    env = dict(os.environ, CNNRS_MALLOC_TUNING=setting)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == expected
