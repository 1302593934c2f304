"""sgd_step / adam_step against tests/reference.py (float64) and torch.optim over several steps."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import reference as ref
from cnnrs import _cnnrs

SHAPES = [(3,), (4, 5), (6, 1, 5, 5), (70_000,)]  # the last is split into parallel chunks

SGD_CONFIGS = [
    dict(momentum=0.0),
    dict(momentum=0.9),
    dict(momentum=0.9, dampening=0.3),
    dict(momentum=0.9, nesterov=True, weight_decay=1e-2),
    dict(momentum=0.5, maximize=True, weight_decay=0.1),
    dict(weight_decay=0.05, maximize=True),
]

ADAM_CONFIGS = [
    dict(),
    dict(weight_decay=0.1),
    dict(weight_decay=0.1, decoupled_weight_decay=True),
    dict(amsgrad=True, beta1=0.8, beta2=0.99),
    dict(amsgrad=True, maximize=True, weight_decay=0.05, decoupled_weight_decay=True),
    dict(eps=1e-3, beta1=0.3),
]


def make(rng, shapes):
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


@pytest.mark.parametrize("cfg", SGD_CONFIGS, ids=str)
def test_sgd_matches_reference(cfg, rng):
    params = make(rng, SHAPES)
    bufs = [np.empty_like(p) for p in params] if cfg.get("momentum") else None
    expected = [p.astype(np.float64) for p in params]
    ref_bufs = [None] * len(params)
    for step in range(4):
        grads = make(rng, SHAPES)
        _cnnrs.sgd_step(params, grads, bufs, 0.05, first_step=step == 0, **cfg)
        for i, g in enumerate(grads):
            expected[i], ref_bufs[i] = ref.sgd_step(
                expected[i], g.astype(np.float64), ref_bufs[i], 0.05, **cfg
            )
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cfg", ADAM_CONFIGS, ids=str)
def test_adam_matches_reference(cfg, rng):
    params = make(rng, SHAPES)
    ms = [np.zeros_like(p) for p in params]
    vs = [np.zeros_like(p) for p in params]
    vmax = [np.zeros_like(p) for p in params] if cfg.get("amsgrad") else None
    state = [[p.astype(np.float64), np.zeros(p.shape), np.zeros(p.shape), np.zeros(p.shape)] for p in params]
    for step in range(1, 6):
        grads = make(rng, SHAPES)
        _cnnrs.adam_step(params, grads, ms, vs, vmax, step, 1e-2, **cfg)
        for s, g in zip(state, grads):
            s[:] = ref.adam_step(s[0], g.astype(np.float64), *s[1:], step, 1e-2, **cfg)
    for p, s in zip(params, state):
        np.testing.assert_allclose(p, s[0], rtol=1e-5, atol=1e-6)
    for m, s in zip(ms, state):
        np.testing.assert_allclose(m, s[1], rtol=1e-5, atol=1e-6)


def _torch_run(torch, opt_cls, kwargs, params, grads_per_step):
    tp = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params]
    opt = opt_cls(tp, **kwargs)
    for grads in grads_per_step:
        for t, g in zip(tp, grads):
            t.grad = torch.from_numpy(g)
        opt.step()
    return [t.detach().numpy() for t in tp]


@pytest.mark.parametrize(
    "cfg", [dict(c, lr=0.05) for c in SGD_CONFIGS] + [dict(momentum=0.9, nesterov=True, lr=0.1)], ids=str
)
def test_sgd_matches_torch(cfg, rng):
    torch = pytest.importorskip("torch")
    params = make(rng, SHAPES[:3])
    grads = [make(rng, SHAPES[:3]) for _ in range(5)]
    expected = _torch_run(torch, torch.optim.SGD, cfg, params, grads)
    bufs = [np.zeros_like(p) for p in params]
    kw = {k: v for k, v in cfg.items() if k != "lr"}
    for step, g in enumerate(grads):
        _cnnrs.sgd_step(params, g, bufs, cfg["lr"], first_step=step == 0, **kw)
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p, e, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cfg,adamw", list(itertools.product(ADAM_CONFIGS, [False, True])), ids=str)
def test_adam_matches_torch(cfg, adamw, rng):
    torch = pytest.importorskip("torch")
    cfg = dict(cfg)
    if adamw:
        cfg["decoupled_weight_decay"] = True
        cfg.setdefault("weight_decay", 0.01)  # AdamW's default
    elif cfg.get("decoupled_weight_decay"):
        pytest.skip("decoupled decay is AdamW's case")
    kwargs = dict(
        lr=1e-2,
        betas=(cfg.get("beta1", 0.9), cfg.get("beta2", 0.999)),
        eps=cfg.get("eps", 1e-8),
        weight_decay=cfg.get("weight_decay", 0.0),
        amsgrad=cfg.get("amsgrad", False),
        maximize=cfg.get("maximize", False),
    )
    params = make(rng, SHAPES[:3])
    grads = [make(rng, SHAPES[:3]) for _ in range(6)]
    expected = _torch_run(torch, torch.optim.AdamW if adamw else torch.optim.Adam, kwargs, params, grads)
    ms = [np.zeros_like(p) for p in params]
    vs = [np.zeros_like(p) for p in params]
    vmax = [np.zeros_like(p) for p in params]
    for step, g in enumerate(grads, start=1):
        _cnnrs.adam_step(params, g, ms, vs, vmax, step, **{**cfg, "lr": 1e-2})
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p, e, rtol=1e-5, atol=1e-6)


def test_sgd_without_momentum_ignores_buffers(rng):
    p = rng.standard_normal(10).astype(np.float32)
    g = rng.standard_normal(10).astype(np.float32)
    buf = np.full(10, 7.0, np.float32)
    expected = p - 0.1 * g
    _cnnrs.sgd_step([p], [g], [buf], 0.1)
    np.testing.assert_allclose(p, expected, rtol=1e-6)
    assert (buf == 7.0).all()


def test_nan_and_inf_propagate():
    p = np.zeros(3, np.float32)
    _cnnrs.sgd_step([p], [np.array([np.nan, np.inf, 1.0], np.float32)], None, 0.1)
    assert np.isnan(p[0]) and p[1] == -np.inf and p[2] == np.float32(-0.1)
    q = np.ones(2, np.float32)
    m, v, vm = (np.zeros(2, np.float32) for _ in range(3))
    _cnnrs.adam_step([q], [np.array([np.nan, 1.0], np.float32)], [m], [v], [vm], 1, 0.1, amsgrad=True)
    assert np.isnan(q[0]) and np.isnan(vm[0]) and np.isfinite(q[1])


def test_empty_parameter_list_is_a_no_op():
    _cnnrs.sgd_step([], [], None, 0.1)
    _cnnrs.adam_step([], [], [], [], None, 1, 0.1)
