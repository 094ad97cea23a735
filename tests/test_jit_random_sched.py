"""`lazytorch.jit` with random numbers drawn inside the function and schedulers stepped inside it.

Random draws are program inputs drawn again on the host at every call, in the body's order, so a
jitted step consumes the generator's stream exactly as the plain step does: with the same seed,
jitted and plain runs agree. A scheduler's `step()` is replayed in Python at every call and the
optimizer reads the lr (momentum, betas) from its param group at every call: no retrace.

Shapes are those of tests/test_jit.py and tests/test_optim.py where possible (each new program is
one Numba compile).
"""
import numpy as np
import pytest

import lazytorch as lt
import lazytorch.nn as nn
import lazytorch.nn.functional as F
import lazytorch.optim as optim
from test_jit import mlp


def close(a, b, tol=1e-6):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.allclose(a, b, rtol=tol, atol=tol)


# ---------------------------------------------------------------------------------------------
# random numbers

def dropout_mlp(use_jit: bool, steps: int = 100):
    """test_jit's MLP with Dropout(0.5) after the ReLU, SGD with momentum."""
    losses, model, _, step = mlp(use_jit, lambda p: optim.SGD(p, lr=0.05, momentum=0.9), steps, dropout=0.5)
    return losses, model, step


def test_dropout_mlp_matches_eager_for_100_steps():
    eager, m1, _ = dropout_mlp(False)
    jitted, m2, step = dropout_mlp(True)
    assert close(eager, jitted), max(abs(a - b) for a, b in zip(eager, jitted))
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert close(p1.detach().numpy(), p2.detach().numpy())
    assert len(step.specializations) == 2         # no gradients on the first call, then gradients


def test_dropout_stream_is_left_where_the_plain_run_leaves_it():
    dropout_mlp(False, steps=3)
    after_eager = lt.rand(4).numpy()
    dropout_mlp(True, steps=3)
    assert np.array_equal(lt.rand(4).numpy(), after_eager)


def test_masks_differ_between_calls_and_manual_seed_reproduces():
    @lt.jit
    def f(x):
        return F.dropout(x, 0.5)

    x = lt.ones(8, 16)
    lt.manual_seed(7)
    first, second = f(x).numpy().copy(), f(x).numpy().copy()
    assert not np.array_equal(first, second)
    assert set(np.unique(first)) <= {0.0, 2.0}
    lt.manual_seed(7)
    assert np.array_equal(f(x).numpy(), first)
    assert np.array_equal(f(x).numpy(), second)
    lt.manual_seed(7)
    assert np.array_equal(F.dropout(x, 0.5).numpy(), first)     # what the plain call draws
    assert len(f.specializations) == 1


def draws(x, g):
    """Every random factory, one unused draw (it still advances the stream) and a user generator."""
    a = lt.rand(3) + lt.randn(3) * lt.rand_like(x)
    lt.rand(5)
    b = lt.randint(0, 10, (3,)) + lt.randperm(3)
    c = lt.bernoulli(lt.full((3,), 0.5)) + lt.bernoulli(x * 0.5) + lt.normal(1.0, 2.0, (3,))
    d = lt.randn(3, generator=g) + lt.randn_like(x)
    return a, b, c, d


def test_random_factories_match_eager():
    jitted = lt.jit(draws)
    for fn in (draws, jitted):
        lt.manual_seed(11)
        g = lt.Generator().manual_seed(12)
        x = lt.ones(3)
        got = [[t.numpy().copy() for t in fn(x, g)] for _ in range(3)]
        got.append(lt.rand(2).numpy())          # where each stream is afterwards
        got.append(lt.rand(2, generator=g).numpy())
        if fn is draws:
            expected = got
    for e, j in zip(expected, got):
        for a, b in zip(e, j):
            assert np.array_equal(a, b)
    assert not np.array_equal(expected[0][0], expected[1][0])
    assert len(jitted.specializations) == 1


def test_in_place_random_fill_of_a_captured_tensor():
    noise = lt.zeros(3)

    @lt.jit
    def f(x):
        noise.uniform_(-1.0, 1.0)
        return x + noise

    lt.manual_seed(3)
    outs = [f(lt.ones(3)).numpy().copy() for _ in range(3)]
    lt.manual_seed(3)
    expected = [lt.zeros(3).uniform_(-1.0, 1.0).numpy() + 1 for _ in range(3)]
    assert close(outs, expected) and close(noise.numpy() + 1, expected[-1])
    assert not np.array_equal(outs[0], outs[1])


def test_a_trace_that_does_not_run_leaves_the_stream_alone():
    f = lt.jit(draws)
    g = lt.Generator().manual_seed(1)
    lt.manual_seed(2)
    f.specialization_for(lt.ones(3), g)       # traced for a report: nothing is drawn
    after = lt.rand(2).numpy(), lt.rand(2, generator=g).numpy()
    lt.manual_seed(2)
    assert np.array_equal(after[0], lt.rand(2).numpy())
    assert np.array_equal(after[1], lt.rand(2, generator=lt.Generator().manual_seed(1)).numpy())


def test_host_random_init_inside_is_an_error():
    w = lt.zeros(4, 3)

    @lt.jit
    def f():
        nn.init.orthogonal_(w)
        return w * 2

    with pytest.raises(RuntimeError, match="random numbers drawn by host code"):
        f()


# ---------------------------------------------------------------------------------------------
# schedulers stepped inside the jitted step

SCHEDULERS = {
    "StepLR": (lambda p: optim.SGD(p, lr=0.1), lambda o: optim.lr_scheduler.StepLR(o, step_size=4, gamma=0.5)),
    "CosineAnnealingLR": (lambda p: optim.Adam(p, lr=0.05),
                          lambda o: optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.001)),
    "OneCycleLR-SGD": (lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
                       lambda o: optim.lr_scheduler.OneCycleLR(o, max_lr=0.2, total_steps=40)),
    "OneCycleLR-Adam": (lambda p: optim.Adam(p, lr=0.01),
                        lambda o: optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=40)),
    "SequentialLR": (lambda p: optim.SGD(p, lr=0.1),
                     lambda o: optim.lr_scheduler.SequentialLR(o, [
                         optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=5),
                         optim.lr_scheduler.ExponentialLR(o, gamma=0.9)], milestones=[5])),
}
STEPS = 30


def scheduled_run(name, use_jit, hand_lr=None):
    """A tiny regression (test_optim's shapes) whose step also steps the scheduler. One plain step
    first, so that optimizer state exists and the gradients are None before every call: one trace."""
    make_opt, make_sched = SCHEDULERS[name]
    lt.manual_seed(0)
    w, b = lt.randn(4, 3, requires_grad=True), lt.randn(3, requires_grad=True)
    x, y = lt.randn(8, 4), lt.randn(8, 3)
    opt = make_opt([w, b])
    sched = make_sched(opt)

    def step():
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        sched.step()
        return loss

    step()
    run = lt.jit(step) if use_jit else step
    losses, lrs = [], []
    for i in range(STEPS):
        if hand_lr is not None and i == STEPS // 2:
            opt.param_groups[0]["lr"] = hand_lr
        losses.append(run().item())
        lrs.append(sched.get_last_lr())
    return losses, lrs, [w, b], opt, run


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_scheduler_stepped_inside_matches_eager_with_one_trace(name):
    eager, lrs1, p1, o1, _ = scheduled_run(name, False)
    jitted, lrs2, p2, o2, run = scheduled_run(name, True)
    assert len(run.specializations) == 1 and run.recompile_reasons == []
    assert lrs1 == lrs2 and len(set(map(tuple, lrs1))) > 5
    assert close(eager, jitted), max(abs(a - b) for a, b in zip(eager, jitted))
    for a, b in zip(p1, p2):
        assert close(a.detach().numpy(), b.detach().numpy())
    assert o1.param_groups[0]["lr"] == o2.param_groups[0]["lr"]
    assert o1.param_groups[0].get("betas") == o2.param_groups[0].get("betas")
    assert o1.param_groups[0].get("momentum") == o2.param_groups[0].get("momentum")


def test_lr_changed_by_hand_between_calls_is_used_without_a_retrace():
    eager, lrs1, p1, _, _ = scheduled_run("StepLR", False, hand_lr=0.3)
    jitted, lrs2, p2, _, run = scheduled_run("StepLR", True, hand_lr=0.3)
    assert lrs1 == lrs2 and 0.3 in [lr for lrs in lrs1 for lr in lrs]
    assert close(eager, jitted)
    for a, b in zip(p1, p2):
        assert close(a.detach().numpy(), b.detach().numpy())
    assert len(run.specializations) == 1


def test_momentum_set_to_zero_retraces():
    _, _, _, opt, run = scheduled_run("OneCycleLR-SGD", True)
    for group in opt.param_groups:
        group["momentum"] = 0.0
    run()
    assert len(run.specializations) == 2 and "momentum" in run.recompile_reasons[-1]


def test_reduce_lr_on_plateau_inside_is_an_error():
    w = lt.ones(3, requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt)

    @lt.jit
    def f():
        sched.step(1.0)
        return w * 2

    with pytest.raises(RuntimeError, match="ReduceLROnPlateau"):
        f()
