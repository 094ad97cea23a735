"""Python numbers are kernel arguments, not literals: a loop whose scalars change compiles nothing
after its first iteration (no kernel, no schedule), and computes what PyTorch computes.

Also: simplifications must not lose gradients (`x ** 0.0`, `floor`, ...: torch gives zeros, not
None), compared with torch.autograd in float64.

The loops use values that never coincide with each other or with the constants the graph holds
anyway (equal values are one node, which is a different graph: see docs/ARCHITECTURE.md).
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lazytorch as lt  # noqa: E402
from compiler.realize import plan  # noqa: E402
from conftest import assert_close, make_array, pair  # noqa: E402


def kernel_source(t) -> str:
    """The generated source of the one kernel that computes `t` (planned, not run)."""
    (step,) = plan([t._node])[0].steps
    return step.source


def compiles(counters):
    c = counters()
    return c["kernel_compiles"], c["graph_compiles"]


def run_loop(counters, body, values):
    """Run `body(scalars)` for each tuple of `values`; returns the compile counts after the first."""
    body(*values[0])
    before = compiles(counters)
    for v in values[1:]:
        body(*v)
    after = compiles(counters)
    return after[0] - before[0], after[1] - before[1]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_elementwise_chain(counters, dtype):
    x, tx = pair(make_array((6, 7), dtype, 1))

    def body(a, b, c):
        got = (x * a + b).sigmoid() * c - a
        assert_close(got, (tx * a + b).sigmoid() * c - a)

    assert run_loop(counters, body, [(0.3 + 0.11 * i, -1.7 + 0.37 * i, 2.9 + 0.05 * i) for i in range(4)]) == (0, 0)


def test_float32_scalar_keeps_float32_math(counters):
    """A float32 constant is read as np.float32 in the kernel: float32 math rounds like torch's
    (promoted to float64, x * (1/3) rounds differently for about a quarter of these values)."""
    x, tx = pair(make_array((64,), "float32", 2))
    third = 1 / 3
    got = x * third
    assert got.dtype == lt.float32
    np.testing.assert_array_equal(got.numpy(), (tx * third).numpy())
    promoted = (make_array((64,), "float32", 2).astype(np.float64) * third).astype(np.float32)
    assert not np.array_equal(promoted, (tx * third).numpy())      # (the check can fail)


def test_reduction_with_scalar(counters):
    x, tx = pair(make_array((5, 33), "float32", 3))

    def body(s, t):
        assert_close(((x - s) ** 2 * t).sum(1), ((tx - s) ** 2 * t).sum(1), reduction=True)
        assert_close((x * s).mean() + t, (tx * s).mean() + t, reduction=True)

    assert run_loop(counters, body, [(0.25 * i - 0.6, 1.3 + 0.21 * i) for i in range(4)]) == (0, 0)


def test_int_scalars(counters):
    x, tx = pair(make_array((4, 9), "int64", 4))

    def body(k, m):
        assert_close(x * k + m, tx * k + m)
        assert_close((x - k).abs().sum(), (tx - k).abs().sum())

    assert run_loop(counters, body, [(3 + i, -7 - 2 * i) for i in range(4)]) == (0, 0)


def test_nan_and_inf_scalars(counters):
    x, tx = pair(make_array((10,), "float32", 5))

    def body(a):
        assert_close(x * a + 1.5, tx * a + 1.5)
        assert_close(lt.maximum(x, x * 0 + a), torch.maximum(tx, tx * 0 + a))

    # (x * 0 + a: the constants 0 and 1.5 never equal a)
    assert run_loop(counters, body, [(2.5,), (math.nan,), (math.inf,), (-math.inf,), (-3.25,)]) == (0, 0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_manual_sgd_with_decaying_lr(counters, dtype):
    xs = make_array((32, 4), dtype, 6)
    ys = make_array((32, 1), dtype, 7)
    w0 = make_array((4, 1), dtype, 8)
    x, tx = pair(xs)
    y, ty = pair(ys)
    w = lt.tensor(w0, requires_grad=True)
    tw = torch.tensor(w0, requires_grad=True)
    lrs = [0.1 * 0.93 ** i for i in range(6)]

    def body(lr):
        for m, weight, inp, target in ((lt, w, x, y), (torch, tw, tx, ty)):
            loss = ((inp @ weight - target) ** 2).mean()
            loss.backward()
            with m.no_grad():
                weight -= lr * weight.grad
            weight.grad = None
        assert_close(w, tw, reduction=True)

    assert run_loop(counters, body, [(lr,) for lr in lrs]) == (0, 0)
    assert_close(w, tw, reduction=True)


def test_new_scalar_reuses_the_cached_kernel_source():
    """The generated source names the scalars (c0, c1, ...) and holds no value."""
    x = lt.tensor(make_array((8,), "float32", 9))
    sources = [kernel_source(x * a + 0.75) for a in (1.25, 2.5)]
    assert sources[0] == sources[1]
    assert "c0 = in1[0]" in sources[0] and "1.25" not in sources[0]


def test_equal_values_compile_no_new_kernel(counters):
    """Two scalars equal on one iteration are one node (a new graph), but not a new kernel."""
    x, tx = pair(make_array((16,), "float32", 10))
    assert_close(x * 0.5 + 0.25, tx * 0.5 + 0.25)
    before = counters()["kernel_compiles"]
    assert_close(x * 0.375 + 0.375, tx * 0.375 + 0.375)
    assert counters()["kernel_compiles"] == before


def test_pow_exponent_stays_a_literal(counters):
    """x ** 3.0 is specialized (multiplies, not a pow call): the exponent is part of the structure."""
    x, tx = pair(make_array((16,), "float64", 11))
    assert_close(x ** 3.0, tx ** 3.0)
    assert_close(x ** 1.5, tx.abs() ** 1.5 * 0 + tx ** 1.5)
    assert "** 3.0" in kernel_source(x ** 3.0)


def test_jit_step_with_a_new_lr_compiles_nothing(counters):
    """A jitted step: an optimizer's lr is a program input (no trace); a Python float argument
    traces again, but the program is the same, so nothing compiles."""
    w = lt.nn.Parameter(lt.tensor(make_array((4, 1), "float32", 12)))
    opt = lt.optim.SGD([w], lr=0.05)
    x, y = lt.tensor(make_array((8, 4), "float32", 13)), lt.tensor(make_array((8, 1), "float32", 14))

    @lt.jit
    def step(scale):
        opt.zero_grad()
        loss = ((x @ w - y) ** 2).mean() * scale
        loss.backward()
        opt.step()
        return loss

    tw = torch.tensor(w.detach().numpy().copy(), requires_grad=True)
    topt = torch.optim.SGD([tw], lr=0.05)
    tx, ty = torch.tensor(x.numpy()), torch.tensor(y.numpy())

    def torch_step(scale):
        topt.zero_grad()
        (((tx @ tw - ty) ** 2).mean() * scale).backward()
        topt.step()

    for _ in range(2):          # (the second call traces again: the gradient exists now)
        step(1.0)
        torch_step(1.0)
    specializations = len(step.specializations)
    before = compiles(counters)
    for i, scale in enumerate([1.0, 1.0, 1.0, 0.875, 1.125]):
        opt.param_groups[0]["lr"] = topt.param_groups[0]["lr"] = 0.04 - 0.01 * i
        step(scale)
        torch_step(scale)
    assert_close(w.detach(), tw.detach(), reduction=True)
    assert len(step.specializations) == specializations + 2       # one per new scale, not per lr
    assert compiles(counters) == before


# ---------------------------------------------------------------------------------------------
# gradients through simplified expressions: float64, against torch.autograd

VALUES = [0.0, -1.5, 2.0, 3.0, math.nan, math.inf, -0.0, 0.5]

GRADIENT_CASES = {
    "pow_0.0": lambda m, x: x ** 0.0,
    "pow_int_0": lambda m, x: x ** 0,
    "torch_pow_0": lambda m, x: m.pow(x, 0.0),
    "pow_1": lambda m, x: x ** 1,
    "pow_2": lambda m, x: x ** 2,
    "pow_3": lambda m, x: x ** 3,
    "pow_0.5": lambda m, x: x ** 0.5,
    "pow_-1": lambda m, x: x ** -1,
    "pow_-2.0": lambda m, x: x ** -2.0,
    "mul_0": lambda m, x: x * 0,
    "mul_1": lambda m, x: x * 1,
    "add_0": lambda m, x: x + 0,
    "div_1": lambda m, x: x / 1,
    "zero_times_inf": lambda m, x: (x * 0) * math.inf,
    "floor": lambda m, x: x.floor(),
    "ceil": lambda m, x: x.ceil(),
    "round": lambda m, x: x.round(),
    "trunc": lambda m, x: x.trunc(),
    "sign": lambda m, x: x.sign(),
    "floor_times_inf": lambda m, x: x.floor() * math.inf,
    "scalar_pow_x": lambda m, x: 0.0 ** x,
}


@pytest.mark.parametrize("name", list(GRADIENT_CASES))
def test_simplification_gradients(name):
    f = GRADIENT_CASES[name]
    x = lt.tensor(VALUES, dtype=lt.float64, requires_grad=True)
    tx = torch.tensor(VALUES, dtype=torch.float64, requires_grad=True)
    f(lt, x).sum().backward()
    f(torch, tx).sum().backward()
    assert x.grad is not None
    assert_close(x.grad, tx.grad)


def test_pow_zero_gradient_via_autograd_grad():
    x = lt.tensor([1.0, 0.0, -2.0], dtype=lt.float64, requires_grad=True)
    (g,) = lt.autograd.grad((x ** 0.0).sum(), [x])
    tx = torch.tensor([1.0, 0.0, -2.0], dtype=torch.float64, requires_grad=True)
    (tg,) = torch.autograd.grad((tx ** 0.0).sum(), [tx])
    assert_close(g, tg)


def test_jit_returns_a_zero_gradient_constant():
    """floor's gradient is a constant node: a jitted program computes it as an output of its
    own shape (the same constant is also a scalar argument of the kernel that writes it)."""
    w0 = make_array((3, 4), "float64", 15)
    xs = make_array((2, 3), "float64", 16)
    w = lt.tensor(w0, requires_grad=True)
    tw = torch.tensor(w0, requires_grad=True)

    @lt.jit
    def step(x):
        w.grad = None
        (x @ w).floor().sum().backward()
        return w.grad * 0.5 + 1.25

    for _ in range(2):
        got = step(lt.tensor(xs))
        tw.grad = None
        (torch.tensor(xs) @ tw).floor().sum().backward()
        assert_close(got, tw.grad * 0.5 + 1.25)

    @lt.jit
    def direct():
        w.grad = None
        w.floor().sum().backward()
        return w.grad                 # the zero constant itself is the output

    for _ in range(2):
        assert_close(direct(), torch.zeros_like(tw))


CHILD = """
import json, sys
import lazytorch as lt
a, b = float(sys.argv[1]), float(sys.argv[2])
x = lt.tensor([[1.0, 2.0], [3.0, 4.0]])
w = lt.tensor([[0.5], [-0.25]], requires_grad=True)

@lt.jit
def step():
    w.grad = None
    loss = ((x @ w - b) ** 2).mean()
    loss.backward()
    with lt.no_grad():
        w.sub_(a * w.grad)
    return loss

losses = [step().item() for _ in range(2)]
eager = (x * a + b).sum(0).tolist()
print(json.dumps({"losses": losses, "eager": eager, "counters": lt.debug.counters()}))
"""


def test_new_process_with_new_values_compiles_nothing(tmp_path):
    """The disk cache is keyed by source, which holds no value: another process with other
    scalars loads every kernel and driver the first one compiled."""
    import json, os, subprocess, sys
    from pathlib import Path
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, LAZYTORCH_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    env.pop("LAZYTORCH_CACHE", None)
    env.pop("LAZYTORCH_NATIVE", None)        # (without native code every process compiles its drivers)
    results = []
    for a, b in ((0.1, 1.5), (0.0625, -2.25)):
        out = subprocess.run([sys.executable, str(script), str(a), str(b)], capture_output=True, text=True,
                             env=env, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert results[0]["counters"]["kernel_compiles"] >= 2
    assert results[1]["counters"]["kernel_compiles"] == 0
    assert results[1]["eager"] == [4 * 0.0625 - 4.5, 6 * 0.0625 - 4.5]
    tx = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    tw = torch.tensor([[0.5], [-0.25]], requires_grad=True)
    for got in results[1]["losses"]:
        tw.grad = None
        loss = ((tx @ tw + 2.25) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            tw -= 0.0625 * tw.grad
        assert abs(got - loss.item()) <= 1e-5 * abs(loss.item())


def test_a_constant_assigned_in_place_is_read_as_a_buffer():
    """`g.zero_()` makes g's node a constant that the next realization computes (asked for) and
    then reads as a buffer in the same schedule: not as a scalar argument."""
    for m in (lt, torch):
        g = m.ones(4, 5) * 3
        g.zero_()
        got = (g.abs() + 0.25).sum()
        assert float(got) == 5.0
        g.fill_(1.5)
        assert float((g * 2).sum()) == 60.0
