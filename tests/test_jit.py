"""Tests for `lazytorch.jit`: tracing a training step into one program and replaying it.

Jitted and plain runs of the same training loop must agree (within 1e-6) for 100 steps; a replay
must not run the Python body; results are fresh tensors; signatures and guards retrace with a
logged reason; what cannot be traced fails at trace time with a clear message.

Shapes are small and shared between tests: every distinct program is one Numba compile.
"""
import warnings

import numpy as np
import pytest

import lazytorch as lt
import lazytorch.nn as nn
import lazytorch.nn.functional as F
import lazytorch.optim as optim


def close(a, b, tol=1e-6):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.allclose(a, b, rtol=tol, atol=tol)


def seed_data():
    lt.manual_seed(0)
    x = lt.rand(100, 1) * 10
    y = 3 * x + 2 + lt.randn(100, 1) * 0.5
    return x, y


def linreg(use_jit: bool, steps: int = 100):
    """The seed's training loop, unchanged except for the decorator."""
    x, y = seed_data()
    model = nn.Linear(1, 1)
    optimizer = optim.SGD(model.parameters(), lr=0.01)

    def step():
        optimizer.zero_grad()
        y_pred = model(x)
        loss = (y_pred - y).pow(2).mean()
        loss.backward()
        optimizer.step()
        return loss

    if use_jit:
        step = lt.jit(step)
    losses = [step().item() for _ in range(steps)]
    return losses, model, step


def test_seed_linear_regression_matches_eager_for_100_steps():
    eager, m1, _ = linreg(False)
    jitted, m2, step = linreg(True)
    assert close(eager, jitted), max(abs(a - b) / abs(a) for a, b in zip(eager, jitted))
    assert close(m1.weight.detach().numpy(), m2.weight.detach().numpy())
    assert close(m1.bias.detach().numpy(), m2.bias.detach().numpy())
    assert close(m1.weight.grad.numpy(), m2.weight.grad.numpy())
    assert jitted[-1] < jitted[0]
    # the first call sees no gradients, the second sees last step's: two traces, one program
    assert len(step.specializations) == 2
    assert step.specializations[0].program.source == step.specializations[1].program.source


def mlp(use_jit: bool, make_optimizer, steps: int = 100, batchnorm: bool = False, dropout: float = 0.0):
    """A small MLP trained `steps` steps; (losses, model, optimizer, step function)."""
    lt.manual_seed(1)
    layers = [nn.Linear(12, 16), nn.ReLU()] + ([nn.BatchNorm1d(16)] if batchnorm else []) + \
        ([nn.Dropout(dropout)] if dropout else []) + [nn.Linear(16, 4)]
    model = nn.Sequential(*layers)
    optimizer = make_optimizer(model.parameters())
    x = lt.randn(8, 12)
    y = lt.randint(0, 4, (8,))

    def step(x, y):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    if use_jit:
        step = lt.jit(step)
    losses = [step(x, y).item() for _ in range(steps)]
    return losses, model, optimizer, step


OPTIMIZERS = {
    "sgd-momentum": lambda p: optim.SGD(p, lr=0.05, momentum=0.9),
    "adam": lambda p: optim.Adam(p, lr=0.01),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_mlp_matches_eager_for_100_steps(name):
    eager, m1, o1, _ = mlp(False, OPTIMIZERS[name])
    jitted, m2, o2, _ = mlp(True, OPTIMIZERS[name])
    assert close(eager, jitted, 1e-5), max(abs(a - b) for a, b in zip(eager, jitted))
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert close(p1.detach().numpy(), p2.detach().numpy(), 1e-5)
    # optimizer state was written back at every replay
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        for key, v1 in o1.state[p1].items():
            v2 = o2.state[p2][key]
            assert close(v1.numpy(), v2.numpy(), 1e-5), key


def test_batchnorm_running_stats_are_captured():
    make = OPTIMIZERS["sgd-momentum"]
    eager, m1, _, _ = mlp(False, make, steps=20, batchnorm=True)
    jitted, m2, _, _ = mlp(True, make, steps=20, batchnorm=True)
    assert close(eager, jitted, 1e-5)
    bn1, bn2 = m1[2], m2[2]
    assert close(bn1.running_mean.numpy(), bn2.running_mean.numpy(), 1e-5)
    assert close(bn1.running_var.numpy(), bn2.running_var.numpy(), 1e-5)
    assert int(bn2.num_batches_tracked.item()) == 20


# ---------------------------------------------------------------------------------------------
# replay semantics

def test_replay_does_not_run_the_python_body():
    calls = []
    w = lt.ones(3)

    @lt.jit
    def f(x):
        calls.append(1)
        return x * w + 1

    x = lt.tensor([1.0, 2.0, 3.0])
    for _ in range(5):
        out = f(x)
    assert len(calls) == 1
    assert out.tolist() == [2.0, 3.0, 4.0]
    assert f(lt.tensor([0.0, 0.0, 1.0])).tolist() == [1.0, 1.0, 2.0]
    assert len(calls) == 1                       # same signature: still no Python


def test_results_are_never_overwritten():
    w = lt.zeros(2)

    @lt.jit
    def f():
        w.add_(1)
        return w * 10

    first = f()
    second = f()
    assert first.tolist() == [10.0, 10.0]
    assert second.tolist() == [20.0, 20.0]
    assert w.tolist() == [2.0, 2.0]
    assert first is not second


def test_updates_args_in_place_and_nested_structures():
    @lt.jit
    def f(batch, scale, mode):
        a, b = batch["a"], batch["b"]
        a.mul_(scale)
        out = a + b if mode == "sum" else a - b
        return {"out": out, "pair": (out * 2, [b])}

    a, b = lt.tensor([1.0, 2.0]), lt.tensor([3.0, 4.0])
    r = f({"a": a, "b": b}, 2.0, "sum")
    assert a.tolist() == [2.0, 4.0]
    assert r["out"].tolist() == [5.0, 8.0]
    assert r["pair"][0].tolist() == [10.0, 16.0] and r["pair"][1][0].tolist() == [3.0, 4.0]
    r = f({"a": a, "b": b}, 2.0, "sum")               # replay: a updated again
    assert a.tolist() == [4.0, 8.0] and r["out"].tolist() == [7.0, 12.0]
    assert len(f.specializations) == 1
    r = f({"a": a, "b": b}, 2.0, "diff")              # a static string: new specialization
    assert r["out"].tolist() == [5.0, 12.0]
    assert len(f.specializations) == 2


def test_signature_change_retraces_and_logs(capfd, monkeypatch):
    monkeypatch.setenv("LAZYTORCH_LOG", "recompiles")

    @lt.jit
    def f(x):
        return x.sum(0)

    f(lt.ones(2, 3))
    f(lt.ones(2, 3))
    assert len(f.specializations) == 1
    assert f(lt.ones(4, 3)).tolist() == [4.0, 4.0, 4.0]
    assert f(lt.ones(2, 3, dtype=lt.float64)).dtype is lt.float64
    err = capfd.readouterr().err
    assert "recompiling" in err and "float32[2, 3] on cpu -> tensor float32[4, 3]" in err
    assert "-> tensor float64[2, 3]" in err
    assert len(f.specializations) == 3


def test_recompile_limit_warns_once_and_runs_uncompiled():
    calls = []

    @lt.jit(max_specializations=2)
    def f(x, k):
        calls.append(k)
        return x * k

    x = lt.ones(2)
    f(x, 1)
    f(x, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert f(x, 3).tolist() == [3.0, 3.0]
        assert f(x, 4).tolist() == [4.0, 4.0]
    assert sum("max_specializations" in str(w.message) for w in caught) == 1
    assert calls == [1, 2, 3, 4]
    assert f(x, 1).tolist() == [1.0, 1.0] and calls == [1, 2, 3, 4]    # compiled ones still replay


def test_captured_tensor_mutated_outside_is_seen():
    w = lt.tensor([1.0, 2.0])

    @lt.jit
    def f(x):
        return x * w

    x = lt.ones(2)
    assert f(x).tolist() == [1.0, 2.0]
    w.mul_(3)                                   # lazily, outside the function
    assert f(x).tolist() == [3.0, 6.0]
    w.fill_(5)
    assert f(x).tolist() == [5.0, 5.0]
    assert len(f.specializations) == 1


GLOBAL_W = lt.tensor([1.0, 2.0])
GLOBAL_K = 2.0


def _uses_globals(x):
    return x * GLOBAL_W * GLOBAL_K


def test_rebinding_a_global_retraces(capfd, monkeypatch):
    global GLOBAL_W, GLOBAL_K
    monkeypatch.setenv("LAZYTORCH_LOG", "recompiles")
    f = lt.jit(_uses_globals)
    x = lt.ones(2)
    assert f(x).tolist() == [2.0, 4.0]
    old = GLOBAL_W
    try:
        GLOBAL_W = lt.tensor([3.0, 3.0, 3.0])[:2]
        assert f(x).tolist() == [6.0, 6.0]
        GLOBAL_K = 10.0
        assert f(x).tolist() == [30.0, 30.0]
    finally:
        GLOBAL_W, GLOBAL_K = old, 2.0
    err = capfd.readouterr().err
    assert "global 'GLOBAL_W'" in err and "global 'GLOBAL_K'" in err


def test_grad_mode_is_part_of_the_signature():
    w = lt.ones(2, requires_grad=True)

    @lt.jit
    def f(x):
        return (x * w).sum()

    x = lt.ones(2)
    assert f(x).item() == 2.0
    with lt.no_grad():
        assert f(x).item() == 2.0
    assert len(f.specializations) == 2


# ---------------------------------------------------------------------------------------------
# modules and methods

def test_jit_module_and_train_eval_guard():
    lt.manual_seed(2)
    model = nn.Sequential(nn.Linear(12, 16), nn.Dropout(0.0), nn.Linear(16, 4))
    fast = lt.jit(model)
    x = lt.randn(8, 12)
    with lt.no_grad():
        expected = model(x).numpy().copy()
        assert close(fast(x).numpy(), expected)
        model.eval()
        assert close(fast(x).numpy(), expected)
    assert len(fast.specializations) == 2          # train/eval flags are guarded
    assert list(fast.parameters())                 # still looks like the module


def test_jit_method():
    class Trainer:
        def __init__(self):
            lt.manual_seed(3)
            self.model = nn.Linear(12, 4)
            self.opt = optim.SGD(self.model.parameters(), lr=0.1)

        @lt.jit
        def step(self, x, y):
            self.opt.zero_grad()
            loss = F.mse_loss(self.model(x), y)
            loss.backward()
            self.opt.step()
            return loss

    t = Trainer()
    x, y = lt.randn(8, 12), lt.randn(8, 4)
    losses = [t.step(x, y).item() for _ in range(10)]
    assert losses[-1] < losses[0]
    t2 = Trainer()                                  # another instance: its own specialization
    assert close(t2.step(x, y).item(), losses[0])


def test_scheduler_outside_the_function():
    def run(use_jit):
        lt.manual_seed(4)
        model = nn.Linear(12, 4)
        opt = optim.SGD(model.parameters(), lr=0.1)
        sched = optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
        x, y = lt.randn(8, 12), lt.randn(8, 4)

        def step():
            opt.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            return loss

        fn = lt.jit(step) if use_jit else step
        out = []
        for _ in range(9):
            out.append(fn().item())
            sched.step()
        return out, fn

    eager, _ = run(False)
    jitted, fn = run(True)
    assert close(eager, jitted)
    # the lr is read at every call: only the first call's missing gradients trace again
    assert len(fn.recompile_reasons) == 1 and "gradients" in fn.recompile_reasons[0]


# ---------------------------------------------------------------------------------------------
# what cannot be traced

@pytest.mark.parametrize("read, words", [
    (lambda t: t.item(), "`.item()`"),
    (lambda t: t.numpy(), "`.numpy()`"),
    (lambda t: t.tolist(), "`.tolist()`"),
    (lambda t: 1 if t > 0 else 0, "`bool(tensor)`"),
    (lambda t: print(t), "printing a tensor"),
])
def test_reading_values_inside_is_an_error(read, words):
    @lt.jit
    def f(x):
        s = x.sum()
        read(s)
        return s

    with pytest.raises(RuntimeError) as info:
        f(lt.ones(3))
    message = str(info.value)
    assert words in message and "lazytorch.jit" in message and "test_jit.py" in message
    assert "outside the jitted function" in message


def test_random_numbers_drawn_by_host_code_inside_are_an_error():
    # (the random factories work inside: tests/test_jit_random_sched.py)
    w = lt.zeros(4, 3)

    @lt.jit
    def f(x):
        lt.nn.init.trunc_normal_(w)
        return x + w

    with pytest.raises(RuntimeError, match="random numbers drawn by host code"):
        f(lt.ones(3))


def test_failed_trace_leaves_state_untouched():
    w = lt.tensor([1.0, 2.0])

    @lt.jit
    def f():
        w.add_(1)
        w.sum().item()

    with pytest.raises(RuntimeError):
        f()
    assert w.tolist() == [1.0, 2.0]
    assert (w + 1).tolist() == [2.0, 3.0]          # eager use afterwards works


def test_nested_jit_calls_inline():
    @lt.jit
    def inner(x):
        return x * 2

    @lt.jit
    def outer(x):
        return inner(x) + 1

    assert outer(lt.ones(2)).tolist() == [3.0, 3.0]
    assert outer(lt.ones(2)).tolist() == [3.0, 3.0]
    assert len(inner.specializations) == 0 and len(outer.specializations) == 1


def test_one_native_call_per_step(counters):
    _, _, step = linreg(True, steps=3)
    lt.debug.reset_counters()
    step()
    c = lt.debug.counters()
    assert c["kernel_compiles"] == 0 and c["graph_compiles"] == 0 and c["kernel_launches"] == 0
    spec = step.specializations[0]
    assert spec.fast_source is not None and "_driver(" in spec.fast_source
    assert spec.program.source.count("@numba.cfunc") == 1


def test_driver_in_segments_matches_eager(monkeypatch):
    """A large program is cut into several native functions run one after the other over the same
    arrays (intermediates cross segments in the scratch buffer)."""
    from compiler.runtime import driver
    monkeypatch.setattr(driver, "SEGMENT_LINES", 6)
    eager, m1, _ = linreg(False, steps=10)
    jitted, m2, step = linreg(True, steps=10)
    assert step.specializations[0].program.source.count("@numba.cfunc") >= 3
    assert close(eager, jitted) and close(m1.weight.detach().numpy(), m2.weight.detach().numpy())


@pytest.mark.parametrize("worker_fails", [False, True])
def test_segments_compiled_by_a_worker_process(monkeypatch, tmp_path, worker_fails):
    """A compile worker (another process) compiles a share of the segments and sends back object
    code; if it fails, its share is compiled here. Either way the program is right."""
    from compiler.runtime import driver, native, native_source, workers
    if not native.supported():
        pytest.skip("compile workers send object code, which is loaded on Linux only")
    monkeypatch.setenv("LAZYTORCH_CACHE_DIR", str(tmp_path))        # nothing cached: really compile
    monkeypatch.setenv("LAZYTORCH_COMPILE_WORKERS", "1")
    monkeypatch.setattr(driver, "SEGMENT_LINES", 6)
    monkeypatch.setattr(workers, "MIN_LINES", 0)
    monkeypatch.setattr(native_source, "_loaded", {})                 # forget drivers loaded before
    shared = []
    run = workers._Worker.run

    def watched(self, job, share, results):
        shared.append(len(share))
        if not worker_fails:
            run(self, job, share, results)

    monkeypatch.setattr(workers._Worker, "run", watched)
    eager, _, _ = linreg(False, steps=5)
    jitted, _, _ = linreg(True, steps=5)
    assert shared and shared[0] >= 1
    assert close(eager, jitted)


def test_driver_that_fails_to_compile_falls_back_to_kernels(monkeypatch, capfd, tmp_path):
    from compiler.runtime import driver, native_source
    generate = driver.Program._generate
    monkeypatch.setenv("LAZYTORCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native_source, "_loaded", {})

    def broken(self):
        name, source = generate(self)
        segment, text = self._functions[-1]
        self._functions[-1] = (segment, text + "    undefined_name_in_driver + 1\n")
        return name, source

    monkeypatch.setattr(driver.Program, "_generate", broken)

    @lt.jit
    def f(x):
        return (x * 3).sum()

    assert f(lt.ones(4)).item() == 12.0
    assert f(lt.ones(4) * 2).item() == 24.0
    assert "failed to compile" in capfd.readouterr().err


def test_leaf_made_from_an_argument_follows_the_argument():
    """`x.detach().requires_grad_()` inside the body is a new leaf whose value is the argument's at
    every call (not the value it had when traced)."""
    @lt.jit
    def grad_of_square(x):
        x = x.detach().requires_grad_()
        (x * x).sum().backward()
        return x.grad

    for values in ([1.0, 2.0], [3.0, 4.0], [5.0, -6.0]):
        assert grad_of_square(lt.tensor(values)).tolist() == [2 * v for v in values]
    assert len(grad_of_square.specializations) == 1
