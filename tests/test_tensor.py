"""Tensor construction, dtypes, conversions and non-differentiable behaviour."""

import numpy as np
import pytest

import cnnrs


def test_dtypes_from_python_and_numpy_data():
    assert cnnrs.tensor([1.0, 2.0]).dtype == np.float32
    assert cnnrs.tensor(np.zeros(3, dtype=np.float64)).dtype == np.float32
    assert cnnrs.tensor([1, 2, 3]).dtype == np.int64
    assert cnnrs.tensor(np.array([1, 2], dtype=np.uint8)).dtype == np.int64
    assert cnnrs.tensor([True, False]).dtype == np.bool_
    assert cnnrs.tensor(3.5).shape == ()


def test_tensor_copies_and_from_numpy_shares():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = cnnrs.tensor(a)
    a[0, 0] = 100
    assert t[0, 0].item() == 0
    s = cnnrs.from_numpy(a)
    a[0, 1] = 7
    assert s[0, 1].item() == 7
    assert s.numpy() is a
    with pytest.raises(TypeError):
        cnnrs.from_numpy([1, 2])


def test_array_protocol_numpy2():
    t = cnnrs.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert np.asarray(t) is t.data
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    copied = np.array(t, copy=True)
    copied[0, 0] = 9
    assert t[0, 0].item() == 1.0
    assert np.add(t, 1).shape == (2, 2)


def test_basic_properties():
    t = cnnrs.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4) and t.ndim == 3 and t.size() == (2, 3, 4) and t.size(1) == 3
    assert t.numel() == 24 and len(t) == 2 and t.dim() == 3
    assert cnnrs.ones((2, 2)).sum().item() == 4.0
    assert cnnrs.tensor([[5.0]]).item() == 5.0
    with pytest.raises(ValueError):
        cnnrs.zeros(2).item()
    assert float(cnnrs.tensor(2.5)) == 2.5 and int(cnnrs.tensor(3)) == 3


def test_factories():
    assert cnnrs.arange(5).dtype == np.int64
    np.testing.assert_array_equal(cnnrs.arange(1, 7, 2).numpy(), [1, 3, 5])
    assert cnnrs.arange(0.0, 1.0, 0.25).dtype == np.float32
    assert cnnrs.zeros_like(cnnrs.ones(2, 3)).sum().item() == 0
    assert cnnrs.ones_like(cnnrs.ones(2, 3)).shape == (2, 3)
    assert cnnrs.full((2, 2), 7.0).numpy().tolist() == [[7.0, 7.0], [7.0, 7.0]]
    assert cnnrs.randn(3, 4).dtype == np.float32 and cnnrs.rand(5).numpy().max() < 1
    assert cnnrs.randn(2, requires_grad=True).requires_grad


def test_manual_seed_makes_random_repeatable():
    cnnrs.manual_seed(123)
    a = cnnrs.randn(5).numpy().copy()
    w1 = cnnrs.nn.Linear(3, 2).weight.numpy().copy()
    cnnrs.manual_seed(123)
    np.testing.assert_array_equal(cnnrs.randn(5).numpy(), a)
    np.testing.assert_array_equal(cnnrs.nn.Linear(3, 2).weight.numpy(), w1)
    assert cnnrs.initial_seed() == 123


def test_detach_shares_data_and_cuts_graph():
    x = cnnrs.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    assert np.shares_memory(d.numpy(), y.numpy())
    assert y.grad_fn is not None and not y.is_leaf


def test_comparisons_have_no_grad_and_bool_dtype():
    x = cnnrs.tensor([1.0, 2.0, 3.0], requires_grad=True)
    m = x > 1.5
    assert m.dtype == np.bool_ and not m.requires_grad
    np.testing.assert_array_equal(m.numpy(), [False, True, True])
    np.testing.assert_array_equal((x == cnnrs.tensor([1.0, 0.0, 3.0])).numpy(), [True, False, True])
    labels = cnnrs.tensor([1, 2, 3])
    assert (labels == cnnrs.tensor([1, 0, 3])).sum().item() == 2
    # tensors hash by identity (optimiser state dicts), even though == is elementwise
    assert len({x, x, labels}) == 2


def test_repr_like_torch():
    assert repr(cnnrs.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert "requires_grad=True" in repr(cnnrs.tensor([1.0], requires_grad=True))
    assert "grad_fn=<MulBackward>" in repr(cnnrs.tensor([1.0], requires_grad=True) * 2)


def test_indexing_without_grad_and_setitem():
    t = cnnrs.arange(12).reshape(3, 4)
    assert t[1, 2].item() == 6
    np.testing.assert_array_equal(t[:, 1].numpy(), [1, 5, 9])
    np.testing.assert_array_equal(t[t > 9].numpy(), [10, 11])
    t[0] = 0
    assert t[0].sum().item() == 0


def test_reshape_view_and_errors():
    t = cnnrs.arange(6).float()
    assert t.view(2, 3).shape == (2, 3) and t.reshape((3, -1)).shape == (3, 2)
    with pytest.raises(RuntimeError, match="view"):
        t.view(2, 3).T.view(6)
    assert t.view(2, 3).T.reshape(6).shape == (6,)
    with pytest.raises(RuntimeError):
        t.view(2, 3).permute(0, 0)


def test_in_place_helpers_under_no_grad():
    t = cnnrs.zeros(3)
    t.fill_(2.0).mul_(3.0).add_(cnnrs.ones(3))
    np.testing.assert_array_equal(t.numpy(), [7, 7, 7])
    t.zero_()
    assert t.sum().item() == 0


def test_mean_of_integer_tensor_is_refused_like_torch():
    with pytest.raises(RuntimeError, match="dtype"):
        cnnrs.tensor([1, 2]).mean()


def test_lazy_submodules_do_not_load_at_import():
    import subprocess
    import sys

    code = (
        "import cnnrs, sys; print(any(m in sys.modules for m in ('cnnrs.data', 'cnnrs.train', 'cnnrs.viz')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_type_promotion_like_torch():
    x = cnnrs.tensor([1.0, 2.0])
    labels = cnnrs.tensor([1, 2])
    assert (x + labels).dtype == np.float32 and (labels * x).dtype == np.float32
    assert (labels + 1).dtype == np.int64 and (labels * 2.5).dtype == np.float32
    assert (labels / 2).dtype == np.float32 and (2 / labels).dtype == np.float32
    assert (x * True).dtype == np.float32 and (1 - x).dtype == np.float32
    assert (x**2).dtype == np.float32 and (2**x).dtype == np.float32
    np.testing.assert_allclose((labels / 4).numpy(), [0.25, 0.5])
    assert cnnrs.nn.functional.mse_loss(x, labels).dtype == np.float32
