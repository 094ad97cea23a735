"""Indices computed at run time are checked by the kernels that use them (issue 9).

torch raises at the op for an out-of-range index. lazytorch knows the values of a computed index
only when a kernel computes it, so the kernel records the first bad value and the realization that
ran it raises torch's error: same type, same text. Nothing is clamped, and no kernel reads or writes
outside a buffer. Each case runs eagerly (the index is computed lazily: `i * 1`) and jitted (traced
with a good index, then called with a bad one: the compiled program checks it).
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import lazytorch as lt  # noqa: E402
import lazytorch.nn.functional as LF  # noqa: E402
import torch.nn.functional as TF  # noqa: E402
from conftest import assert_close  # noqa: E402

X = np.arange(12, dtype=np.float32).reshape(3, 4)
LOGITS = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
WEIGHT = np.linspace(0.5, 2, 4, dtype=np.float32)


def _f(m):
    return LF if m is lt else TF


def _setitem(m, i):
    x = m.zeros(3, 4)
    x[i * 1] = 1.0
    return x


# name -> (op on module m and an index tensor i, a good index, bad indices); the op computes
# with the index first (i * 1), so lazytorch does not know its values at the call
CASES = {
    "getitem": (lambda m, i: m.tensor(X)[i * 1], [0, 2, -1], [[1, 3], [-4, 0]]),
    "getitem_dim1": (lambda m, i: m.tensor(X)[:, i * 1], [0, 3], [[4, 1], [2, -5]]),
    "getitem_two_indices": (lambda m, i: m.tensor(X)[i * 1, (i * 1).flip(0)], [0, 2],
                            [[0, 3], [-4, 1]]),
    "take": (lambda m, i: m.tensor(X).take(i * 2), [1, 5, -6], [[0, 13], [-13, 0]]),
    "gather": (lambda m, i: m.tensor(X).gather(1, (i * 1).reshape(1, -1).expand(3, -1)), [0, 3],
               [[1, 4], [-1, 0]]),
    "gather_dim0": (lambda m, i: m.tensor(X).gather(0, (i * 1).reshape(-1, 1)), [0, 2], [[3, 0]]),
    "index_select": (lambda m, i: m.tensor(X).index_select(0, i * 1), [2, 0], [[0, 3], [-1, 0]]),
    "index_select_dim1": (lambda m, i: m.tensor(X).index_select(1, i * 1), [3, 0], [[4, 0], [-1, 0]]),
    "embedding": (lambda m, i: _f(m).embedding(i * 1, m.tensor(X)), [2, 1], [[3, 0], [0, -1]]),
    "cross_entropy": (lambda m, i: _f(m).cross_entropy(m.tensor(LOGITS), i * 1), [0, 3, 1],
                      [[0, 4, 1], [-1, 0, 0], [0, -100, 5]]),
    "cross_entropy_smoothing_weight": (
        lambda m, i: _f(m).cross_entropy(m.tensor(LOGITS), i * 1, weight=m.tensor(WEIGHT), label_smoothing=0.1),
        [0, 3, 1], [[0, 4, 1]]),
    "cross_entropy_ignore_index": (lambda m, i: _f(m).cross_entropy(m.tensor(LOGITS), i * 1, ignore_index=-1),
                                   [0, -1, 1], [[0, -1, 7]]),
    "nll_loss": (lambda m, i: _f(m).nll_loss(m.tensor(LOGITS), i * 1), [0, 3, 1], [[0, 4, 1], [-2, 0, 0]]),
    "nll_loss_weight_sum": (lambda m, i: _f(m).nll_loss(m.tensor(LOGITS), i * 1, weight=m.tensor(WEIGHT),
                                                       reduction="sum"), [0, 3, 1], [[0, 9, 1]]),
    "one_hot": (lambda m, i: _f(m).one_hot(i * 1, 4), [0, 3, 1], [[0, 4, 1], [0, -1, 1], [7, -5, 0]]),
}


def _torch_error(fn, index):
    with pytest.raises(Exception) as theirs:
        fn(torch, torch.tensor(index))
    return theirs.value


def _same_error(ours, theirs):
    assert type(ours).__name__ == type(theirs).__name__, (ours, theirs)
    assert str(ours).split("\n")[0] == str(theirs).split("\n")[0]


def _bad(name):
    return [pytest.param(name, k, id=f"{name}-{k}") for k in range(len(CASES[name][2]))]


@pytest.mark.parametrize("name,k", [p for name in CASES for p in _bad(name)])
def test_eager_raises_torchs_error_at_the_realization(name, k):
    fn, good, bads = CASES[name]
    theirs = _torch_error(fn, bads[k])
    result = fn(lt, lt.tensor(bads[k]))                # lazy: no error yet
    with pytest.raises(Exception) as ours:
        result.numpy()
    _same_error(ours.value, theirs)
    assert_close(fn(lt, lt.tensor(good)), fn(torch, torch.tensor(good)))    # still computes


class _Known:
    """An index whose `i * k` is the index itself, so lazytorch knows its values at the call."""

    def __init__(self, t):
        self.t = t

    def __mul__(self, other):
        return self.t


@pytest.mark.parametrize("name,k", [p for name in CASES for p in _bad(name)])
def test_known_index_raises_at_the_call(name, k, counters):
    """An index whose values are known is checked when the op is called: torch's error, at once."""
    fn, _, bads = CASES[name]
    with pytest.raises(Exception) as theirs:
        fn(torch, _Known(torch.tensor(bads[k])))
    with pytest.raises(Exception) as ours:
        fn(lt, _Known(lt.tensor(bads[k])))
    _same_error(ours.value, theirs.value)
    assert counters()["kernel_launches"] == 0


@pytest.mark.parametrize("name", list(CASES))
def test_jitted_later_call_with_a_bad_index_raises(name):
    fn, good, bads = CASES[name]
    f = lt.jit(lambda i: fn(lt, i))
    assert_close(f(lt.tensor(good)), fn(torch, torch.tensor(good)))     # traced with good data
    for bad in bads:
        with pytest.raises(Exception) as ours:
            f(lt.tensor(bad))
        _same_error(ours.value, _torch_error(fn, bad))
    assert_close(f(lt.tensor(good)), fn(torch, torch.tensor(good)))     # and it still runs
    assert len(f.specializations) == 1


def test_setitem_with_a_computed_index():
    theirs = _torch_error(_setitem, [0, 3])
    with pytest.raises(Exception) as ours:
        _setitem(lt, lt.tensor([0, 3]))
    _same_error(ours.value, theirs)
    assert_close(_setitem(lt, lt.tensor([2, -1])), _setitem(torch, torch.tensor([2, -1])))


def test_gradient_of_a_bad_gather_raises_and_does_not_block_other_tensors():
    """Only the backward pass reads the index here (the forward value is never computed): its
    scatter-add kernel checks it. The failed gradient stays lazy and raises whenever it is read;
    other realizations are not held up by it."""
    w = lt.tensor(X, requires_grad=True)
    w[lt.tensor([1, 2]) * 2].sum().backward()
    theirs = _torch_error(lambda m, i: m.tensor(X)[i * 2], [1, 2])
    for _ in range(2):
        with pytest.raises(IndexError) as ours:
            w.grad.numpy()
        _same_error(ours.value, theirs)
    v = lt.tensor(X, requires_grad=True)
    v[lt.tensor([1, 2]) * 1].sum().backward()
    expected = np.zeros_like(X)
    expected[1:] = 1
    np.testing.assert_array_equal(v.grad.numpy(), expected)


def test_eager_training_step_with_a_computed_bad_label():
    """Eagerly the error comes at the realization (`optimizer.step()` computes the update): torch's
    error. The parameters' updates read the bad label, so they raise it again when read; every
    other tensor still computes (the failed updates no longer join each realization)."""
    lt.manual_seed(0)
    model = lt.nn.Linear(4, 3)
    opt = lt.optim.SGD(model.parameters(), lr=0.1)
    x = lt.tensor(np.linspace(-1, 1, 32, dtype=np.float32).reshape(8, 4))
    y = lt.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    opt.zero_grad()
    LF.cross_entropy(model(x), y + 1).backward()     # labels 1..3: one is out of range
    with pytest.raises(IndexError, match=r"^Target 3 is out of bounds\.$"):
        opt.step()
    with pytest.raises(IndexError, match=r"^Target 3 is out of bounds\.$"):
        model.weight.detach().numpy()
    assert (x * 2).sum().item() == pytest.approx(0.0, abs=1e-5)


def test_jitted_training_step_with_a_bad_label_changes_nothing():
    """A later batch with a label out of range raises torch's error at that call; the step installs
    nothing (parameters, gradients and optimizer state keep their values) and later steps run."""
    lt.manual_seed(0)
    model = lt.nn.Linear(4, 3)
    opt = lt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    @lt.jit
    def step(x, y):
        opt.zero_grad()
        loss = LF.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    x = lt.tensor(np.linspace(-1, 1, 32, dtype=np.float32).reshape(8, 4))
    y = lt.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    step(x, y)
    step(x, y)
    before = [p.detach().numpy().copy() for p in model.parameters()]
    momentum = [opt.state[p]["momentum_buffer"].numpy().copy() for p in model.parameters()]
    for bad, text in (([0, 1, 2, 3, 1, 2, 0, 1], "Target 3 is out of bounds."),
                      ([0, 1, -1, 0, 1, 2, 0, 1], "Target -1 is out of bounds.")):
        with pytest.raises(IndexError, match=text):
            step(x, lt.tensor(bad))
        for p, b, m in zip(model.parameters(), before, momentum):
            np.testing.assert_array_equal(p.detach().numpy(), b)
            np.testing.assert_array_equal(opt.state[p]["momentum_buffer"].numpy(), m)
    loss = step(x, y).item()
    assert np.isfinite(loss)
    assert not np.array_equal(model.weight.detach().numpy(), before[0])


def test_large_parallel_gather_is_checked(counters):
    """A kernel big enough to run its loops on threads (Numba's dispatcher) checks too."""
    w = np.arange(2048 * 64, dtype=np.float32).reshape(2048, 64)
    ids = np.arange(2048)[::-1].copy()
    ok = LF.embedding(lt.tensor(ids) * 1, lt.tensor(w))
    np.testing.assert_array_equal(ok.numpy(), w[ids])
    with pytest.raises(IndexError, match="index out of range in self"):
        LF.embedding(lt.tensor(ids) + 1, lt.tensor(w)).numpy()


@pytest.mark.parametrize("name", ["getitem_two_indices", "take", "gather", "embedding", "cross_entropy", "one_hot"])
def test_checks_fuse_into_the_kernels_that_use_the_index(name, counters):
    """The check is computed where the index is used: no kernel of its own, no more launches than
    with an index whose values are known (cross-entropy: still one log-softmax + NLL row kernel)."""
    from compiler.ir.ops import Op
    from compiler.realize import plan
    fn, good, _ = CASES[name]
    computed = fn(lt, lt.tensor(good))
    schedule, order = plan([computed.node])
    assert all(order[step.output].op is not Op.CHECK for step in schedule.steps)
    computed.numpy()
    launches = counters()["kernel_launches"]
    lt.debug.reset_counters()
    fn(lt, _Known(lt.tensor(good))).numpy()
    assert counters()["kernel_launches"] == launches


# ---------------------------------------------------------------------------------------------
# random indices, in and out of range: torch's values, or torch's exception type

FUZZ_OPS = {
    "getitem": lambda m, i: m.tensor(X)[i * 1],
    "getitem_dim1": lambda m, i: m.tensor(X)[:, i * 1],
    "take": lambda m, i: m.tensor(X).take(i * 1),
    "gather": lambda m, i: m.tensor(X).gather(1, (i * 1).reshape(1, -1).expand(3, -1)),
    "index_select_dim1": lambda m, i: m.tensor(X).index_select(1, i * 1),
    "embedding": lambda m, i: _f(m).embedding(i * 1, m.tensor(X)),
    "cross_entropy": lambda m, i: _f(m).cross_entropy(m.tensor(LOGITS), (i * 1)[:3]),
    "one_hot": lambda m, i: _f(m).one_hot(i * 1, 4),
    "gather_backward": lambda m, i: _grad_of_gather(m, i),
}


def _grad_of_gather(m, i):
    w = m.tensor(X, requires_grad=True)
    (w[i * 1] * 2).sum().backward()
    return w.grad


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(FUZZ_OPS)), st.lists(st.integers(-14, 14), min_size=4, max_size=4))
def test_random_indices_match_torch_or_raise_the_same_error(name, index):
    fn = FUZZ_OPS[name]
    try:
        expected = fn(torch, torch.tensor(index))
    except (IndexError, RuntimeError) as e:
        with pytest.raises(type(e)):
            fn(lt, lt.tensor(index)).detach().numpy()
        return
    assert_close(fn(lt, lt.tensor(index)), expected.detach(), reduction=name == "cross_entropy")
