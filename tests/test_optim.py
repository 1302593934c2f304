"""Optimisers and learning-rate schedulers: updates and lr sequences against torch, state_dict
round trips, hyper-parameter checks."""

import copy

import numpy as np
import pytest

import cnnrs
import cnnrs.nn as nn
from cnnrs.optim import SGD, Adam, AdamW, lr_scheduler

SHAPES = [(4, 3), (3,), (2, 2, 3)]


def make_params(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in SHAPES]


def grads_for(step, seed=1):
    rng = np.random.default_rng(seed + step)
    return [rng.standard_normal(s).astype(np.float32) for s in SHAPES]


def run_ours(make_opt, steps, schedule=None):
    params = [nn.Parameter(cnnrs.tensor(p)) for p in make_params()]
    opt = make_opt(params)
    sched = schedule(opt) if schedule else None
    for step in range(steps):
        for p, g in zip(params, grads_for(step)):
            p.grad = cnnrs.tensor(g)
        opt.step()
        if sched:
            sched.step()
    return [p.numpy() for p in params], opt


def run_torch(make_opt, steps, schedule=None):
    torch = pytest.importorskip("torch")
    params = [torch.nn.Parameter(torch.from_numpy(p)) for p in make_params()]
    opt = make_opt(params)
    sched = schedule(opt) if schedule else None
    for step in range(steps):
        for p, g in zip(params, grads_for(step)):
            p.grad = torch.from_numpy(g)
        opt.step()
        if sched:
            sched.step()
    return [p.detach().numpy() for p in params], opt


OPTIMIZERS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1, "amsgrad": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True, "maximize": True}),
]


@pytest.mark.parametrize("name,kwargs", OPTIMIZERS)
def test_optimizer_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    ours, _ = run_ours(lambda p: getattr(cnnrs.optim, name)(p, **kwargs), 6)
    theirs, _ = run_torch(lambda p: getattr(torch.optim, name)(p, **kwargs), 6)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_state_names_and_state_dict_layout():
    _, opt = run_ours(lambda p: Adam(p, lr=0.01, amsgrad=True), 2)
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2]
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert sd["state"][0]["step"] == 2
    assert sd["param_groups"][0]["params"] == [0, 1, 2]
    assert sd["param_groups"][0]["lr"] == 0.01
    _, sgd = run_ours(lambda p: SGD(p, lr=0.1, momentum=0.9), 1)
    assert sgd.state_dict()["state"][1]["momentum_buffer"].dtype == np.float32


@pytest.mark.parametrize("name,kwargs", [OPTIMIZERS[2], OPTIMIZERS[5]])
def test_state_dict_round_trip_resumes_exactly(name, kwargs):
    """3 steps, save, load into a fresh optimiser, 3 more steps == 6 uninterrupted steps."""
    make = lambda p: getattr(cnnrs.optim, name)(p, **kwargs)  # noqa: E731
    straight, _ = run_ours(make, 6)
    params = [nn.Parameter(cnnrs.tensor(p)) for p in make_params()]
    opt = make(params)
    for step in range(3):
        for p, g in zip(params, grads_for(step)):
            p.grad = cnnrs.tensor(g)
        opt.step()
    saved = copy.deepcopy(opt.state_dict())
    resumed = make(params)
    resumed.load_state_dict(saved)
    for step in range(3, 6):
        for p, g in zip(params, grads_for(step)):
            p.grad = cnnrs.tensor(g)
        resumed.step()
    for a, b in zip(straight, params):
        np.testing.assert_array_equal(a, b.numpy())


def test_load_state_dict_from_torch_optimizer():
    torch = pytest.importorskip("torch")
    _, topt = run_torch(lambda p: torch.optim.Adam(p, lr=0.01), 3)
    tsd = topt.state_dict()
    params = [nn.Parameter(cnnrs.tensor(p)) for p in make_params()]
    opt = Adam(params, lr=0.5)
    opt.load_state_dict(tsd)
    assert opt.param_groups[0]["lr"] == 0.01
    assert opt.state[params[0]]["step"] == 3
    np.testing.assert_allclose(opt.state[params[0]]["exp_avg"], tsd["state"][0]["exp_avg"].numpy())


def test_load_state_dict_mismatch():
    params = [nn.Parameter(cnnrs.zeros(2)), nn.Parameter(cnnrs.zeros(3))]
    sd = SGD(params[:1], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="doesn't match the size"):
        SGD(params, lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        SGD([{"params": params[:1]}, {"params": params[1:]}], lr=0.1).load_state_dict(sd)


def test_param_groups_with_own_options():
    a, b = nn.Parameter(cnnrs.ones(2)), nn.Parameter(cnnrs.ones(2))
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad, b.grad = cnnrs.ones(2), cnnrs.ones(2)
    opt.step()
    np.testing.assert_allclose(a.numpy(), [0.9, 0.9])
    np.testing.assert_allclose(b.numpy(), [0.0, 0.0])
    c = nn.Parameter(cnnrs.ones(1))
    opt.add_param_group({"params": c, "momentum": 0.5})
    assert opt.param_groups[2]["lr"] == 0.1 and opt.param_groups[2]["momentum"] == 0.5
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


def test_zero_grad_and_params_without_grad_are_skipped():
    a, b = nn.Parameter(cnnrs.ones(2)), nn.Parameter(cnnrs.ones(2))
    opt = Adam([a, b], lr=0.1)
    a.grad = cnnrs.ones(2)
    opt.step()
    assert b.numpy().tolist() == [1.0, 1.0] and b not in opt.state
    opt.zero_grad()
    assert a.grad is None


def test_closure_is_called():
    w = nn.Parameter(cnnrs.tensor([2.0]))
    opt = SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 4.0
    assert w.item() == 1.0


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: SGD(p, lr=-1), "Invalid learning rate: -1"),
        (lambda p: SGD(p, lr=0.1, momentum=-0.5), "Invalid momentum value"),
        (lambda p: SGD(p, lr=0.1, weight_decay=-1), "Invalid weight_decay value"),
        (lambda p: SGD(p, lr=0.1, nesterov=True), "Nesterov momentum requires"),
        (lambda p: Adam(p, lr=-0.1), "Invalid learning rate"),
        (lambda p: Adam(p, eps=-1), "Invalid epsilon value"),
        (lambda p: Adam(p, betas=(1.0, 0.9)), "Invalid beta parameter at index 0"),
        (lambda p: AdamW(p, betas=(0.9, -0.1)), "Invalid beta parameter at index 1"),
        (lambda p: SGD([], lr=0.1), "empty parameter list"),
    ],
)
def test_bad_hyper_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make([nn.Parameter(cnnrs.zeros(1))])


def test_non_leaf_and_int_tensors_are_refused():
    x = cnnrs.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([x * 2], lr=0.1)
    with pytest.raises(TypeError, match="set"):
        SGD({nn.Parameter(cnnrs.zeros(1))}, lr=0.1)


# --------------------------------------------------------------------------- schedulers

SCHEDULERS = [
    ("StepLR", {"step_size": 3, "gamma": 0.5}, 12),
    ("CosineAnnealingLR", {"T_max": 5, "eta_min": 0.001}, 17),
    ("OneCycleLR", {"max_lr": 0.5, "total_steps": 20}, 20),
    ("MultiStepLR", {"milestones": [2, 5, 5, 9], "gamma": 0.3}, 12),
    ("ExponentialLR", {"gamma": 0.9}, 8),
    ("LambdaLR", {"lr_lambda": lambda epoch: 1 / (1 + epoch)}, 8),
    ("OneCycleLR", {"max_lr": 0.5, "epochs": 2, "steps_per_epoch": 7, "anneal_strategy": "linear"}, 14),
    ("OneCycleLR", {"max_lr": 0.3, "total_steps": 15, "three_phase": True, "pct_start": 0.25}, 15),
]


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
@pytest.mark.parametrize("name,kwargs,steps", SCHEDULERS)
def test_scheduler_lr_sequence_matches_torch(optimizer, name, kwargs, steps):
    torch = pytest.importorskip("torch")
    opt_kwargs = {"lr": 0.1, "momentum": 0.9} if optimizer == "SGD" else {"lr": 0.1}

    def sequence(lib, sched_lib, param):
        opt = getattr(lib, optimizer)([param], **opt_kwargs)
        sched = getattr(sched_lib, name)(opt, **kwargs)
        lrs, moms = [sched.get_last_lr()[0]], []
        for _ in range(steps - 1):
            opt.step()
            sched.step()
            lrs.append(sched.get_last_lr()[0])
            group = opt.param_groups[0]
            moms.append(group["momentum"] if optimizer == "SGD" else group["betas"][0])
        return lrs, moms

    ours = sequence(cnnrs.optim, lr_scheduler, nn.Parameter(cnnrs.zeros(1)))
    theirs = sequence(torch.optim, torch.optim.lr_scheduler, torch.nn.Parameter(torch.zeros(1)))
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-12)


def test_scheduler_state_dict_round_trip():
    opt = SGD([nn.Parameter(cnnrs.zeros(1))], lr=0.1)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    for _ in range(4):
        sched.step()
    state = sched.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 4
    opt2 = SGD([nn.Parameter(cnnrs.zeros(1))], lr=0.1)
    sched2 = lr_scheduler.CosineAnnealingLR(opt2, T_max=10)
    sched2.load_state_dict(state)
    opt2.param_groups[0]["lr"] = sched.get_last_lr()[0]
    sched.step()
    sched2.step()
    assert sched.get_last_lr() == sched2.get_last_lr()


def test_scheduler_argument_checks():
    opt = SGD([nn.Parameter(cnnrs.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="total_steps"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="pct_start"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=2.0)
    with pytest.raises(ValueError, match="step_size"):
        lr_scheduler.StepLR(opt, step_size=0)
    with pytest.raises(TypeError, match="not an Optimizer"):
        lr_scheduler.StepLR(object(), step_size=1)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=2)
    sched.step()
    sched.step()
    with pytest.raises(ValueError, match="Tried to step 3 times"):
        sched.step()
