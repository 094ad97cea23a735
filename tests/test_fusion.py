"""Fusion: how many kernels (and BLAS calls) a realization launches, and that the fused kernels
compute what PyTorch computes.

`counters` (conftest) resets `lazytorch.debug.counters()`; inputs are realized before the reset,
so the counts are those of the expression alone.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lazytorch as lt  # noqa: E402
from conftest import assert_close, make_array, pair  # noqa: E402


@pytest.fixture
def data():
    names = {"x": (8, 16), "y": (8, 16), "a": (16, 8), "w": (16, 4), "b": (4,), "v": (16,)}
    return {name: pair(make_array(shape, "float32", 200 + i)) for i, (name, shape) in enumerate(names.items())}


def launches(counters, result):
    """Realize `result` and return (kernel launches, library calls) it took."""
    before = counters()
    result.realize()
    after = counters()
    return after["kernel_launches"] - before["kernel_launches"], after["library_calls"] - before["library_calls"]


# name -> (expression, kernels, BLAS calls). The first five are the ones issue #2 requires.
CASES = {
    "elementwise_chain_into_sum": (lambda m, d: ((d["x"] * 2 + 1).relu() * d["y"]).sum(), 1, 0),
    "exp_then_row_sum": (lambda m, d: d["x"].exp().sum(1), 1, 0),
    "transposed_plus_matrix": (lambda m, d: (d["a"].T + d["x"]).sin(), 1, 0),
    "softmax_rows": (lambda m, d: m.softmax(d["x"], -1), 1, 0),
    "linear_relu": (lambda m, d: m.relu(d["x"] @ d["w"] + d["b"]), 1, 1),
    "log_softmax_rows": (lambda m, d: m.log_softmax(d["x"], 1), 1, 0),
    "softmax_columns": (lambda m, d: m.softmax(d["x"], 0), 1, 0),
    "mean_rows": (lambda m, d: d["x"].mean(1), 1, 0),
    "var_rows": (lambda m, d: d["x"].var(1), 1, 0),
    "layer_norm_like": (lambda m, d: (d["x"] - d["x"].mean(-1, keepdim=True))
                        / (d["x"].var(-1, keepdim=True, unbiased=False) + 1e-5).sqrt(), 1, 0),
    "logsumexp_rows": (lambda m, d: d["x"].logsumexp(1), 1, 0),
    "broadcast_vector": (lambda m, d: (d["x"] * d["v"]).tanh() - d["v"], 1, 0),
    "views_and_slices": (lambda m, d: d["x"][:, ::2].flip(0) * d["y"][:, 1::2], 1, 0),
    # cat of views fuses; so does cat of computed pieces: each piece is computed only where its
    # padded view is valid (padding f(x) is not f(padded x))
    "cat_of_views": (lambda m, d: m.cat([d["x"].t(), d["y"][:, ::2].t()], 0).exp(), 1, 0),
    "cat_of_computed": (lambda m, d: m.cat([d["x"].exp(), d["y"] * 2], 1), 1, 0),
    "cat_of_computed_dim0": (lambda m, d: m.cat([d["x"].exp(), d["y"] * 2], 0), 1, 0),
    "cat_of_three_broadcasting": (lambda m, d: m.cat([d["x"] * d["v"], (d["y"] - d["v"]).sin(),
                                                      d["v"].exp().expand(8, 16)], 0), 1, 0),
    # a reduction kernel materializes its padded pieces: masked in its loops, they would not vectorize
    "cat_of_computed_then_sum": (lambda m, d: m.cat([d["x"].exp(), d["y"] * 2], 1).sum(1), 3, 0),
    "slice_of_cat_of_computed": (lambda m, d: m.cat([d["x"].exp(), d["y"] * 2], 1)[:, 8:24].tanh(), 1, 0),
    "cat_with_a_constant": (lambda m, d: m.cat([d["x"] * 2, m.ones(8, 16)], 1), 1, 0),
    "where_and_compare": (lambda m, d: m.where(d["x"] > d["y"], d["x"], d["y"] * 0.5).sum(0), 1, 0),
    # reductions over the leading axis (columns): the producer stays in the reduction's kernel
    "product_column_sum": (lambda m, d: (d["x"] * d["y"]).sum(0), 1, 0),
    "relu_grad_column_sum": (lambda m, d: (d["y"] * (d["x"] > 0)).sum(0), 1, 0),
    "mean_columns": (lambda m, d: d["x"].mean(0), 1, 0),
    "amax_columns_plus_vector": (lambda m, d: d["x"].amax(0) + d["v"], 1, 0),
    "batch_norm_like_columns": (lambda m, d: (d["x"] - d["x"].mean(0, keepdim=True))
                                / (d["x"].var(0, keepdim=True, unbiased=False) + 1e-5).sqrt(), 1, 0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_counts_and_values(name, data, counters):
    fn, kernels, blas = CASES[name]
    ours = fn(lt, {k: v[0] for k, v in data.items()})
    theirs = fn(torch, {k: v[1] for k, v in data.items()})
    launched, library = launches(counters, ours)
    assert (launched, library) == (kernels, blas), f"{name}: {launched} kernels, {library} BLAS calls"
    assert_close(ours, theirs, reduction=True)


def test_softmax_is_at_most_two_kernels_for_any_2d_input(data, counters):
    x, tx = data["x"]
    for ours, theirs in ((x.t().softmax(-1), tx.t().softmax(-1)), ((x * 3).softmax(1), (tx * 3).softmax(1))):
        assert launches(counters, ours)[0] <= 2
        assert_close(ours, theirs, reduction=True)


def test_shared_subexpression_is_computed_once_per_realization(data, counters):
    x, tx = data["x"]
    e, te = x.exp(), tx.exp()
    a, b = e.sum(1), e.amax(1)
    before = counters()["kernel_launches"]
    lt.realize(a, b)
    assert counters()["kernel_launches"] - before <= 2
    assert_close(a, te.sum(1), reduction=True)
    assert_close(b, te.amax(1), reduction=True)


def test_matmul_reads_transposed_and_sliced_operands_without_a_copy_kernel(data, counters):
    (a, ta), (w, tw) = data["a"], data["w"]
    result, expected = a.t()[:, ::2] @ w[::2, 1:3], ta.t()[:, ::2] @ tw[::2, 1:3]    # (8, 8) @ (8, 2), both strided
    assert launches(counters, result) == (0, 1)
    assert_close(result, expected, reduction=True)


def test_matmul_chain_with_elementwise_between(data, counters):
    (x, tx), (w, tw), (b, tb) = data["x"], data["w"], data["b"]
    hidden, thidden = (x @ w + b).relu(), (tx @ tw + tb).relu()
    out, tout = (hidden @ hidden.t()).sigmoid().sum(), (thidden @ thidden.t()).sigmoid().sum()
    launched, library = launches(counters, out)
    assert library == 2 and launched == 2
    assert_close(out, tout, reduction=True)


def test_linear_bias_gradient_is_one_column_sum_kernel(data, counters):
    """Linear + ReLU backward: the gradient the weight's matmul needs is one kernel; the bias gradient
    is one more (its column sum), and both match torch."""
    (x, tx), (w, tw), (b, tb) = data["x"], data["w"], data["b"]
    w, b = w.detach().requires_grad_(), b.detach().requires_grad_()
    tw, tb = tw.detach().requires_grad_(), tb.detach().requires_grad_()
    ((x @ w + b).relu() ** 2).sum().backward()
    ((tx @ tw + tb).relu() ** 2).sum().backward()
    assert launches(counters, b.grad) == (2, 2)           # forward matmul and the weight's gradient
    assert_close(b.grad, tb.grad, reduction=True)
    assert_close(w.grad, tw.grad, reduction=True)


def test_a_long_chain_is_split_into_capped_kernels_and_stays_correct(counters):
    x, tx = pair(make_array((4, 5), "float32", 210))
    ours, theirs = x, tx
    for _ in range(150):                                    # 300 elementwise ops: several kernels
        ours, theirs = ours * 0.99 + 0.01, theirs * 0.99 + 0.01
    launched, _ = launches(counters, ours)
    assert 2 <= launched <= 10
    assert_close(ours, theirs, rtol=1e-4)


def test_gradient_through_cat_of_computed_pieces(data, counters):
    """cat's backward slices the cotangent; a slice's backward pads it: both stay in the map
    kernels of x.grad and y.grad. The loss is a sum: its reduction kernel reads the two pieces
    materialized (5 kernels; 7 when every padded computed value was materialized)."""
    (x, tx), (y, ty), (v, tv) = data["x"], data["y"], data["v"]
    x, y = x.detach().requires_grad_(), y.detach().requires_grad_()
    tx, ty = tx.detach().requires_grad_(), ty.detach().requires_grad_()

    def loss(m, x, y):
        joined = m.cat([x.exp(), y * v if m is lt else y * tv], 1)      # (8, 32)
        return (joined[:, 8:24].tanh() * joined[:, :16]).sum()

    ours, theirs = loss(lt, x, y), loss(torch, tx, ty)
    ours.backward()
    theirs.backward()
    before = counters()["kernel_launches"]
    lt.realize(ours, x.grad, y.grad)
    assert counters()["kernel_launches"] - before == 5
    assert_close(ours, theirs, reduction=True)
    assert_close(x.grad, tx.grad, reduction=True)
    assert_close(y.grad, ty.grad, reduction=True)
