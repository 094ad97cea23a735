"""lazytorch.optim against torch.optim: parameter trajectories, state dicts, param groups, and the
compiled step (one program per step, nothing compiled after the first, memory flat).

Both libraries start from the same values and get the same gradients each step (set explicitly
from numpy arrays), so the trajectories must agree to float32 round-off.
"""
import gc

import numpy as np
import pytest

import lazytorch as lt
from compiler.ir.node import Node

torch = pytest.importorskip("torch")

SHAPES = ((3, 4), (4,))
STEPS = 20


def _data(steps=STEPS, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]
    return init, grads


def _trajectories(name, kwargs, dtype=np.float32, steps=STEPS):
    """Max |lazytorch - torch| over all parameters and steps."""
    init, grads = _data(steps, dtype)
    lp = [lt.tensor(a, requires_grad=True) for a in init]
    tp = [torch.tensor(a, requires_grad=True) for a in init]
    lopt, topt = getattr(lt.optim, name)(lp, **kwargs), getattr(torch.optim, name)(tp, **kwargs)
    worst = 0.0
    for step_grads in grads:
        for p, g in zip(lp, step_grads):
            p.grad = lt.tensor(g)
        for p, g in zip(tp, step_grads):
            p.grad = torch.tensor(g)
        lopt.step()
        topt.step()
        for a, b in zip(lp, tp):
            assert a.dtype.name == str(b.dtype).removeprefix("torch.")
            worst = max(worst, float(np.abs(a.detach().numpy() - b.detach().numpy()).max()))
    return worst


CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True)),
    ("Adam", dict(lr=0.01, maximize=True, weight_decay=0.05)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.9, centered=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, centered=True, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1, eps=1e-8)),
    ("Adagrad", dict(lr=0.1, maximize=True)),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_trajectory_matches_torch(name, kwargs):
    assert _trajectories(name, kwargs) <= 1e-5


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01, amsgrad=True))])
def test_float64_trajectory(name, kwargs):
    assert _trajectories(name, kwargs, dtype=np.float64) <= 1e-12


def test_forward_backward_step_matches_torch():
    """A real loss through autograd: the gradients and the update run as one program."""
    rng = np.random.default_rng(1)
    w0, b0 = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    x, y = rng.standard_normal((8, 4)).astype(np.float32), rng.standard_normal((8, 3)).astype(np.float32)
    lw, lb = lt.tensor(w0, requires_grad=True), lt.tensor(b0, requires_grad=True)
    tw, tb = torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    lopt = lt.optim.Adam([lw, lb], lr=0.05)
    topt = torch.optim.Adam([tw, tb], lr=0.05)
    for _ in range(10):
        for opt, w, b, X, Y in ((lopt, lw, lb, lt.tensor(x), lt.tensor(y)),
                                (topt, tw, tb, torch.tensor(x), torch.tensor(y))):
            opt.zero_grad()
            loss = ((X @ w + b - Y) ** 2).mean()
            loss.backward()
            opt.step()
        np.testing.assert_allclose(lw.detach().numpy(), tw.detach().numpy(), atol=1e-5)
        np.testing.assert_allclose(lb.detach().numpy(), tb.detach().numpy(), atol=1e-5)
        np.testing.assert_allclose(lw.grad.numpy(), tw.grad.numpy(), atol=1e-5)


def test_param_groups_and_closure():
    init, grads = _data(5)
    lp = [lt.tensor(a, requires_grad=True) for a in init]
    tp = [torch.tensor(a, requires_grad=True) for a in init]
    lopt = lt.optim.SGD([{"params": [lp[0]]}, {"params": lp[1], "lr": 0.5}], lr=0.1, momentum=0.5)
    topt = torch.optim.SGD([{"params": [tp[0]]}, {"params": tp[1], "lr": 0.5}], lr=0.1, momentum=0.5)
    assert [g["lr"] for g in lopt.param_groups] == [0.1, 0.5]
    for step_grads in grads:
        def closure(params=lp, lib=lt):
            for p, g in zip(params, step_grads):
                p.grad = lib.tensor(g)
            return 1.25
        assert lopt.step(closure) == 1.25
        topt.step(lambda: closure(tp, torch))
    for a, b in zip(lp, tp):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-6)


def test_params_without_grad_are_skipped():
    a, b = lt.ones(2, requires_grad=True), lt.ones(2, requires_grad=True)
    opt = lt.optim.Adam([a, b], lr=0.1)
    a.grad = lt.ones(2)
    opt.step()
    assert b.tolist() == [1.0, 1.0] and len(opt.state) == 1 and a.tolist() != [1.0, 1.0]


def test_add_param_group_and_errors():
    a, b = lt.ones(2, requires_grad=True), lt.ones(3, requires_grad=True)
    opt = lt.optim.SGD([a], lr=0.1)
    opt.add_param_group({"params": [b], "momentum": 0.9})
    assert opt.param_groups[1]["lr"] == 0.1 and opt.param_groups[1]["momentum"] == 0.9
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="empty parameter list"):
        lt.optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        lt.optim.SGD([a * 2], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors"):
        lt.optim.SGD(a, lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        lt.optim.Adam([a], lr=-1)
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        lt.optim.SGD([a], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        lt.optim.AdamW([a], betas=(0.9, 1.0))


def test_zero_grad():
    p = lt.ones(3, requires_grad=True)
    opt = lt.optim.SGD([p], lr=0.1)
    p.grad = lt.ones(3)
    opt.zero_grad(set_to_none=False)
    assert p.grad.tolist() == [0.0, 0.0, 0.0]
    opt.zero_grad()
    assert p.grad is None


def _torch_state(sd):
    """A lazytorch copy of a torch optimizer state dict."""
    state = {k: {n: lt.tensor(v.numpy()) if isinstance(v, torch.Tensor) else v for n, v in s.items()}
             for k, s in sd["state"].items()}
    return {"state": state, "param_groups": [dict(g) for g in sd["param_groups"]]}


@pytest.mark.parametrize("name,kwargs", [("Adam", dict(lr=0.01, amsgrad=True)),
                                         ("SGD", dict(lr=0.1, momentum=0.9)),
                                         ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
                                         ("Adagrad", dict(lr=0.1))])
def test_state_dict_format_and_resume(name, kwargs):
    """Same keys as torch's; loading torch's state dict mid-run continues torch's trajectory."""
    init, grads = _data(10)
    lp = [lt.tensor(a, requires_grad=True) for a in init]
    tp = [torch.tensor(a, requires_grad=True) for a in init]
    lopt, topt = getattr(lt.optim, name)(lp, **kwargs), getattr(torch.optim, name)(tp, **kwargs)

    def step(k):
        for p, q, g in zip(lp, tp, grads[k]):
            p.grad, q.grad = lt.tensor(g), torch.tensor(g)
        lopt.step()
        topt.step()

    for k in range(5):
        step(k)
    ours, theirs = lopt.state_dict(), topt.state_dict()
    assert ours["param_groups"] == theirs["param_groups"]
    assert sorted(ours["state"]) == sorted(theirs["state"]) == [0, 1]
    for i in ours["state"]:
        assert sorted(ours["state"][i]) == sorted(theirs["state"][i])
        for key, value in ours["state"][i].items():
            assert value.dtype.name == str(theirs["state"][i][key].dtype).removeprefix("torch.")
            np.testing.assert_allclose(value.numpy(), theirs["state"][i][key].numpy(), atol=1e-5)
    # a fresh optimizer over fresh parameters, loaded from torch's state, continues torch's run
    lp2 = [lt.tensor(q.detach().numpy(), requires_grad=True) for q in tp]
    lopt2 = getattr(lt.optim, name)(lp2, lr=123.0)
    lopt2.load_state_dict(_torch_state(theirs))
    assert lopt2.param_groups[0]["lr"] == kwargs["lr"] and lopt2.param_groups[0]["params"] == lp2
    lp[:] = lp2
    lopt = lopt2
    for k in range(5, 10):
        step(k)
    for a, b in zip(lp, tp):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-5)


def test_load_state_dict_does_not_alias_and_checks_groups():
    p = lt.ones(2, requires_grad=True)
    opt = lt.optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = lt.ones(2)
    opt.step()
    sd = opt.state_dict()
    other = lt.optim.SGD([lt.ones(2, requires_grad=True)], lr=0.1, momentum=0.9)
    other.load_state_dict(sd)
    assert other.state_dict()["state"][0]["momentum_buffer"] is not sd["state"][0]["momentum_buffer"]
    with pytest.raises(ValueError, match="different number of parameter groups"):
        lt.optim.SGD([{"params": [lt.ones(1, requires_grad=True)]}, {"params": [lt.ones(1, requires_grad=True)]}],
                     lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="doesn't match the size"):
        lt.optim.SGD([lt.ones(1, requires_grad=True), lt.ones(1, requires_grad=True)], lr=0.1).load_state_dict(sd)


def _training_loop(make_optimizer, make_scheduler=None):
    """A tiny regression model; yields after every step."""
    lt.manual_seed(0)
    w, b = lt.randn(4, 3, requires_grad=True), lt.randn(3, requires_grad=True)
    x, y = lt.randn(8, 4), lt.randn(8, 3)
    opt = make_optimizer([w, b])
    scheduler = make_scheduler(opt) if make_scheduler else None
    while True:
        opt.zero_grad()
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        opt.step()
        if scheduler:
            scheduler.step()
        yield loss


@pytest.mark.parametrize("make_optimizer,make_scheduler", [
    (lambda p: lt.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1), None),
    (lambda p: lt.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
     lambda o: lt.optim.lr_scheduler.OneCycleLR(o, max_lr=0.5, total_steps=10)),    # cycles momentum too
    (lambda p: lt.optim.Adam(p, lr=0.1, amsgrad=True), lambda o: lt.optim.lr_scheduler.ExponentialLR(o, 0.9)),
    (lambda p: lt.optim.AdamW(p, lr=0.1), lambda o: lt.optim.lr_scheduler.OneCycleLR(o, max_lr=0.5, total_steps=10)),
    (lambda p: lt.optim.RMSprop(p, lr=0.01, momentum=0.5, centered=True), None),
    (lambda p: lt.optim.Adagrad(p, lr=0.1, lr_decay=0.1), None),
], ids=["sgd", "sgd-onecycle", "adam-exponential", "adamw-onecycle", "rmsprop", "adagrad"])
def test_steps_after_the_first_compile_nothing(make_optimizer, make_scheduler):
    loop = _training_loop(make_optimizer, make_scheduler)
    losses = [next(loop).item()]
    before = lt.debug.counters()
    for _ in range(5):
        losses.append(next(loop).item())
    after = lt.debug.counters()
    assert after["kernel_compiles"] == before["kernel_compiles"]
    assert after["graph_compiles"] == before["graph_compiles"]
    # forward + backward + update are one program per step: one schedule lookup each
    assert after["cache_hits"] - before["cache_hits"] == 5
    assert losses[-1] < losses[0]


def test_module_and_dataloader_steps_after_the_first_compile_nothing():
    """With nn parameters (lazily initialized) and DataLoader batches, the first step's program is
    already the one every later step reuses."""
    nn = pytest.importorskip("lazytorch.nn")
    if not hasattr(nn, "Linear"):
        pytest.skip("lazytorch.nn.Linear not available")
    from lazytorch.utils.data import DataLoader, TensorDataset
    lt.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = lt.optim.Adam(model.parameters(), lr=0.01)
    loader = DataLoader(TensorDataset(lt.randn(48, 4), lt.randn(48, 3)), batch_size=8, shuffle=True)
    for i, (xb, yb) in enumerate(loader):
        if i == 1:
            before = lt.debug.counters()
        opt.zero_grad()
        loss = ((model(xb) - yb) ** 2).mean()
        loss.backward()
        opt.step()
    after = lt.debug.counters()
    assert (after["kernel_compiles"], after["graph_compiles"]) == (before["kernel_compiles"], before["graph_compiles"])
    assert after["cache_hits"] - before["cache_hits"] == 5


JIT_CASES = [
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.1, eps=1e-8, maximize=True)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.9, centered=True, maximize=True)),
]


def _jit_run(name, kwargs, use_jit):
    """20 steps of a tiny regression model (one plain step first, so RMSprop's state exists: torch
    creates it on the first step, and a changed state layout would make the jit trace again). A
    scheduler outside the step changes the lr, which the compiled step reads at every call."""
    lt.manual_seed(0)
    w, b = lt.randn(4, 3, requires_grad=True), lt.randn(3, requires_grad=True)
    x, y = lt.randn(8, 4), lt.randn(8, 3)
    opt = getattr(lt.optim, name)([w, b], **kwargs)
    scheduler = lt.optim.lr_scheduler.ExponentialLR(opt, 0.9)

    def step():
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()     # gradients are None before every call: one signature
        return loss

    step()
    run = lt.jit(step) if use_jit else step
    losses = []
    for _ in range(STEPS):
        losses.append(run().item())
        scheduler.step()
    return losses, [w, b], opt, run


@pytest.mark.parametrize("name,kwargs", JIT_CASES, ids=[n for n, _ in JIT_CASES])
def test_jitted_step_matches_eager(name, kwargs):
    """Adagrad's and RMSprop's steps need no host value: one trace replays all 20 steps, with the
    step count (and Adagrad's decayed lr) advancing inside the program and the scheduled lr read
    from the param group."""
    eager, p1, o1, _ = _jit_run(name, kwargs, False)
    jitted, p2, o2, run = _jit_run(name, kwargs, True)
    assert len(run.specializations) == 1
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-6)
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-6, atol=1e-6)
        for key, value in o1.state[a].items():
            np.testing.assert_allclose(o2.state[b][key].numpy(), value.numpy(), rtol=1e-6, atol=1e-6)
    assert o2.state[p2[0]]["step"].item() == STEPS + 1


def _live_graph_objects() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is Node or issubclass(type(o), lt.Tensor))


def test_memory_flat_over_10000_steps():
    """The graph behind the parameters never grows: after 10,000 steps, as many IR nodes and tensors
    are alive as after 1,000, and the garbage collector tracks no more objects than then (a leak of
    anything per step would add at least 9,000)."""
    w, x, y = lt.randn(4, requires_grad=True), lt.randn(4), lt.randn(4)
    opt = lt.optim.SGD([w], lr=0.01, momentum=0.9)
    scheduler = lt.optim.lr_scheduler.StepLR(opt, step_size=1000, gamma=0.9)
    counts = {}
    for i in range(1, 10_001):
        opt.zero_grad()
        loss = ((w * x - y) ** 2).sum()
        loss.backward()
        opt.step()
        scheduler.step()
        if i in (1_000, 10_000):
            del loss
            counts[i] = (_live_graph_objects(), len(gc.get_objects()))
    assert counts[10_000][0] == counts[1_000][0]
    assert counts[10_000][1] - counts[1_000][1] < 1_000
    assert np.isfinite(w.detach().numpy()).all()
