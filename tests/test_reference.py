"""tests/reference.py itself against PyTorch (float64), so that the other tests can trust it."""

from __future__ import annotations

import numpy as np
import pytest

import reference as ref

CONV_CASES = [
    # N, C_in, H, W, C_out, kH, kW, stride, padding (t, b, l, r), dilation, groups
    (2, 4, 7, 9, 6, 3, 2, (2, 1), (1, 2, 0, 1), (1, 2), 2),
    (1, 3, 5, 5, 3, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 3),
    (3, 2, 8, 6, 4, 3, 3, (1, 2), (1, 1, 1, 1), (2, 1), 1),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv_reference_matches_pytorch(case, rng):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F  # noqa: N812

    n, ci, h, w, co, kh, kw, stride, pad, dilation, groups = case
    x = rng.standard_normal((n, ci, h, w))
    weight = rng.standard_normal((co, ci // groups, kh, kw))
    bias = rng.standard_normal(co)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
    ty = F.conv2d(F.pad(tx, (pad[2], pad[3], pad[0], pad[1])), tw, tb, stride, 0, dilation, groups)
    y = ref.conv2d(x, weight, bias, stride, pad, dilation, groups)
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-12)
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    for mine, theirs in zip(ref.conv2d_backward(x, weight, dy, stride, pad, dilation, groups), (tx, tw, tb)):
        np.testing.assert_allclose(mine, theirs.grad.numpy(), atol=1e-12)


def test_pool_references_match_pytorch(rng):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F  # noqa: N812

    x = rng.standard_normal((2, 3, 9, 8))
    tx = torch.tensor(x)
    for k, s, p, d, ceil in [((3, 3), (2, 2), (1, 1), (1, 1), True), ((2, 3), (1, 2), (1, 0), (2, 1), False)]:
        y, idx = ref.max_pool2d(x, k, s, p, d, ceil)
        ty, tidx = F.max_pool2d(tx, k, s, p, d, ceil, return_indices=True)
        np.testing.assert_array_equal(y, ty.numpy())
        np.testing.assert_array_equal(idx, tidx.numpy())
        for cip in (True, False):
            np.testing.assert_allclose(
                ref.avg_pool2d(x, k, s, p, ceil, cip),
                F.avg_pool2d(tx, k, s, p, ceil, cip).numpy(),
                atol=1e-12,
            )
