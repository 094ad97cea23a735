"""Finite-difference gradient checks, in float64, of every differentiable op of the Tensor API.

`lazytorch.autograd.gradcheck` compares the whole analytical Jacobian (one VJP per output element)
with central differences; every probe of one check builds the same graph up to data, so a check
compiles its kernels once (about two) and all further probes are cache hits. Inputs are small and
come in a few shapes; data is chosen away from kinks (abs, clamp, floor, remainder) and from ties
(max, maximum), where a derivative is not defined.
"""
import math

import numpy as np
import pytest

pytest.importorskip("torch")        # (these checks need no oracle; the suite's convention)

import lazytorch as lt  # noqa: E402
from lazytorch.autograd import GradcheckError, gradcheck, gradgradcheck  # noqa: E402


def leaf(shape=(2, 3), seed=0, kind="any"):
    """A float64 leaf that requires grad. kind: any (normal), pos (in [0.5, 2.5)), away (|x| >= 0.3)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape)
    if kind == "pos":
        a = np.abs(a) % 2 + 0.5
    elif kind == "away":
        a = np.sign(a) * (np.abs(a) % 1.5 + 0.3)
    return lt.tensor(a, requires_grad=True)


def check(fn, *inputs, **tolerances):
    assert gradcheck(fn, inputs, **tolerances)


# ---------------------------------------------------------------------------------------------
# the helper itself

def test_gradcheck_accepts_a_correct_gradient_and_rejects_a_wrong_one():
    x = leaf()
    assert gradcheck(lambda a: (a * a).sum(), (x,))
    # a detached factor makes a wrong gradient: d/da (a * a.detach()) is a analytically, but the
    # probes move the detached copy too, so numerically it is 2a
    with pytest.raises(GradcheckError, match="Jacobian mismatch for output 0 with respect to input 0"):
        gradcheck(lambda a: a * a.detach(), (x,))
    assert not gradcheck(lambda a: a * a.detach(), (x,), raise_exception=False)
    assert not gradcheck(lambda a: a * a.detach(), (x,), raise_exception=False, fast_mode=True)
    assert lt.autograd.gradcheck is gradcheck


def test_gradcheck_several_inputs_and_outputs_and_non_tensor_arguments():
    a, b = leaf(seed=1), leaf((3,), seed=2)
    fixed = lt.tensor(np.arange(3.0))             # a tensor input that does not require grad
    check(lambda a, b, c, k: (a * b + c, (a - b).sum() * k), a, b, fixed, 2.0)
    check(lambda a, b, c, k: (a * b + c, (a - b).sum() * k), a, b, fixed, 2.0, fast_mode=True)


def test_gradcheck_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="at least one input tensor to require gradient"):
        gradcheck(lambda a: a * 2, (lt.tensor([1.0]),))


def test_gradcheck_compiles_once_per_check(counters):
    x = leaf((2, 2), seed=3)
    check(lambda a: (a * 3.5).sin(), x)
    # 8 numerical and 4 analytical probes, one plan (none if an earlier test planned the same graph)
    assert counters()["graph_compiles"] <= 1


# ---------------------------------------------------------------------------------------------
# elementwise

UNARY = {
    "neg": "any", "exp": "any", "log": "pos", "sin": "any", "cos": "any", "tan": "any", "sqrt": "pos",
    "tanh": "any", "sigmoid": "any", "erf": "any", "log1p": "pos", "expm1": "any", "log2": "pos",
    "log10": "pos", "exp2": "any", "rsqrt": "pos", "reciprocal": "away", "square": "any", "abs": "away",
    "relu": "away", "frac": "away", "sign": "away", "floor": "away", "ceil": "away", "round": "away",
    "trunc": "away", "negative": "any", "absolute": "away",
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(name):
    check(getattr(lt, name), leaf(kind=UNARY[name]))


@pytest.mark.parametrize("fn", [
    lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b,
    lambda a, b: lt.add(a, b, alpha=2.5), lambda a, b: lt.sub(a, b, alpha=-1.5), lambda a, b: lt.maximum(a, b),
    lambda a, b: lt.minimum(a, b), lambda a, b: lt.atan2(a, b), lambda a, b: lt.lerp(a, b, 0.3),
    lambda a, b: lt.addcmul(a, a, b, value=0.5), lambda a, b: lt.addcdiv(a, a, b, value=2.0),
], ids=["add", "sub", "mul", "div", "add_alpha", "sub_alpha", "maximum", "minimum", "atan2", "lerp", "addcmul",
        "addcdiv"])
def test_binary_broadcasting(fn):
    # (2, 3) with (3,): the gradient of the row operand sums over the broadcast axis
    check(fn, leaf(seed=1, kind="away"), leaf((3,), seed=2, kind="away"))


@pytest.mark.parametrize("fn", [
    lambda a: a + 2, lambda a: 2 - a, lambda a: a * 3, lambda a: 1.5 / a, lambda a: a / 4, lambda a: a ** 3,
    lambda a: a ** -1.5, lambda a: 2 ** a, lambda a: a ** 0.5, lambda a: a ** 2, lambda a: a ** 1,
], ids=["add", "rsub", "mul", "rdiv", "div", "pow3", "pow_neg", "rpow", "pow_half", "pow2", "pow1"])
def test_scalar_operands(fn):
    check(fn, leaf(kind="pos"))


def test_pow_of_two_tensors_and_lerp_with_tensor_weight():
    check(lambda a, b: a ** b, leaf(kind="pos"), leaf((3,), seed=1))
    check(lambda a, b, w: lt.lerp(a, b, w), leaf(seed=2), leaf(seed=3), leaf((3,), seed=4))


@pytest.mark.parametrize("fn", [
    lambda a: a.clamp(-0.5, 0.5), lambda a: a.clamp(min=0.2), lambda a: a.clamp(max=-0.2), lambda a: a.clip(-1, 1),
    lambda a: lt.clamp_min(a, 0.1), lambda a: lt.clamp_max(a, 0.1), lambda a: lt.remainder(a, 2.5),
    lambda a: lt.fmod(a, 2.5), lambda a: a % 0.8,
], ids=["clamp", "clamp_min", "clamp_max", "clip", "clamp_min_fn", "clamp_max_fn", "remainder", "fmod", "mod"])
def test_piecewise(fn):
    x = lt.tensor([[-1.3, -0.7, -0.35], [0.3, 0.65, 1.9]], dtype=lt.float64, requires_grad=True)
    check(fn, x)


def test_clamp_with_tensor_bounds():
    x = lt.tensor([[-1.3, -0.7, -0.35], [0.3, 0.65, 1.9]], dtype=lt.float64, requires_grad=True)
    lo = lt.tensor([-1.0, -0.5, 0.0], dtype=lt.float64, requires_grad=True)
    check(lambda a, b: a.clamp(min=b, max=b + 1), x, lo)


def test_where_and_masked_fill():
    cond = lt.tensor([[True, False, True], [False, False, True]])
    check(lambda a, b: lt.where(cond, a, b), leaf(seed=1), leaf((3,), seed=2))
    check(lambda a: lt.where(cond, a, 0.5), leaf(seed=3))
    check(lambda a: a.masked_fill(cond, -2.0), leaf(seed=4))
    check(lambda a, v: a.masked_fill(cond[0], v), leaf(seed=5), leaf((), seed=6))


# ---------------------------------------------------------------------------------------------
# reductions

@pytest.mark.parametrize("fn", [
    lambda a: a.sum(), lambda a: a.sum(1), lambda a: a.sum(0, keepdim=True), lambda a: a.mean(), lambda a: a.mean(-1),
    lambda a: a.prod(), lambda a: a.prod(1), lambda a: a.amax(1), lambda a: a.amin(0), lambda a: a.max(),
    lambda a: a.min(), lambda a: a.max(1).values, lambda a: a.min(0, keepdim=True).values, lambda a: a.var(),
    lambda a: a.var(1), lambda a: a.var(0, unbiased=False), lambda a: a.std(), lambda a: a.std(1, keepdim=True),
    lambda a: lt.var(a, 1, correction=0), lambda a: a.logsumexp(1), lambda a: a.logsumexp((0, 1)),
    lambda a: a.softmax(1), lambda a: a.softmax(0), lambda a: a.log_softmax(1), lambda a: a.log_softmax(0),
    lambda a: a.cumsum(1), lambda a: a.cumsum(0), lambda a: a.norm(), lambda a: a.norm(dim=1),
    lambda a: a.norm(p=1), lambda a: a.norm(p=3, dim=0), lambda a: a.norm(p=math.inf),
    lambda a: lt.dist(a, lt.ones(3, dtype=lt.float64)), lambda a: lt.var_mean(a, 1)[0] + lt.std_mean(a, 0)[1].sum(),
], ids=["sum", "sum_dim", "sum_keepdim", "mean", "mean_dim", "prod", "prod_dim", "amax", "amin", "max", "min",
        "max_dim", "min_dim_keepdim", "var", "var_dim", "var_biased", "std", "std_keepdim", "var_correction",
        "logsumexp", "logsumexp_all", "softmax", "softmax_0", "log_softmax", "log_softmax_0", "cumsum",
        "cumsum_0", "norm", "norm_dim", "norm_1", "norm_3", "norm_inf", "dist", "var_mean_std_mean"])
def test_reductions(fn):
    check(fn, leaf(kind="away"))


@pytest.mark.parametrize("fn", [lambda a: a.prod(), lambda a: a.prod(1), lambda a: a.prod(0, keepdim=True)],
                         ids=["all", "dim", "dim_keepdim"])
def test_prod_with_zeros_first_and_second_order(fn):
    # a product is multilinear: differentiable at zeros too (slices with 0, 1 and 2 zeros)
    x = lt.tensor([[1.5, -2.0, 3.0], [0.0, -2.0, 3.0], [0.0, 0.7, 0.0]], dtype=lt.float64, requires_grad=True)
    check(fn, x)
    assert gradgradcheck(fn, (x,))


# ---------------------------------------------------------------------------------------------
# views, joins, indexing

@pytest.mark.parametrize("fn", [
    lambda a: a.reshape(3, 2), lambda a: a.view(-1), lambda a: a.permute(1, 0), lambda a: a.transpose(0, 1),
    lambda a: a.t(), lambda a: a.T, lambda a: a.mT, lambda a: a.reshape(2, 1, 3).expand(2, 4, 3),
    lambda a: a[:1].expand(3, 3), lambda a: a.expand_as(lt.zeros(2, 2, 3)), lambda a: a.reshape(1, 2, 3).squeeze(0),
    lambda a: a.unsqueeze(1), lambda a: a.flatten(), lambda a: a.unflatten(1, (3, 1)), lambda a: a.flip(0, 1),
    lambda a: a.fliplr(), lambda a: a.roll(1, 1), lambda a: a.roll(-1), lambda a: a.narrow(1, 1, 2),
    lambda a: a.select(1, 2), lambda a: a[1], lambda a: a[:, ::2], lambda a: a[1:, 1:],
    lambda a: a[..., None, 1:3], lambda a: a.reshape(6)[1::3], lambda a: a.repeat(2, 2), lambda a: a.tile((2,)),
    lambda a: a.contiguous(), lambda a: a.clone(), lambda a: a.broadcast_to((2, 2, 3)),
], ids=["reshape", "view", "permute", "transpose", "t", "T", "mT", "expand", "expand_rows", "expand_as", "squeeze",
        "unsqueeze", "flatten", "unflatten", "flip", "fliplr", "roll", "roll_flat", "narrow", "select", "int_index",
        "step_slice", "slice", "ellipsis_none", "flat_step", "repeat", "tile", "contiguous", "clone",
        "broadcast_to"])
def test_views(fn):
    check(fn, leaf())


@pytest.mark.parametrize("fn", [
    lambda a, b: lt.cat([a, b], 0), lambda a, b: lt.cat([a, b, a], 1), lambda a, b: lt.stack([a, b]),
    lambda a, b: lt.stack([a, b], 2), lambda a, b: lt.hstack([a, b]), lambda a, b: lt.vstack([a, b]),
], ids=["cat0", "cat1", "stack", "stack_last", "hstack", "vstack"])
def test_joins(fn):
    check(fn, leaf(seed=1), leaf(seed=2))


@pytest.mark.parametrize("fn", [
    lambda a: a.split(2, 1), lambda a: a.split([1, 2], 1), lambda a: a.chunk(2, 0), lambda a: a.unbind(1),
    lambda a: lt.split(a, 1)[1] * 2,
], ids=["split", "split_sizes", "chunk", "unbind", "one_piece"])
def test_splits(fn):
    check(fn, leaf())


IDX = lt.tensor([2, 0, 2, 1])


@pytest.mark.parametrize("fn", [
    lambda a: a[IDX], lambda a: a[:, IDX], lambda a: a[IDX, IDX], lambda a: a[lt.tensor([[0, 1], [1, 0]])],
    lambda a: a[a.detach() > 0], lambda a: a[:, lt.tensor([True, False, True])], lambda a: a[lt.tensor([-1, 0])],
    lambda a: a.index_select(0, IDX), lambda a: lt.index_select(a, 1, IDX[:2]), lambda a: a.take(IDX),
    lambda a: a.gather(0, lt.tensor([[1, 0, 1], [0, 0, 1], [1, 1, 1]])),
    lambda a: a.gather(1, lt.tensor([[2, 2], [0, 1]])), lambda a: a.tril(), lambda a: a.triu(1),
    lambda a: lt.tril(a, -1),
], ids=["int_tensor", "int_tensor_dim1", "two_int_tensors", "2d_index", "bool_mask", "bool_mask_dim1",
        "negative_index", "index_select", "index_select_dim1", "take", "gather_repeats", "gather_dim1", "tril",
        "triu", "tril_neg"])
def test_indexing(fn):
    # a[IDX] repeats row 2 (two reads of one element add up) and gather repeats positions
    check(fn, leaf((3, 3)))


def test_setitem_routes_gradient_to_the_value_and_to_the_rest():
    def assign(a, v, w):
        out = a * 1
        out[0, 1:] = v
        out[1] = w.sum()
        out[a.detach() > 1.0] = 0.0
        return out
    check(assign, leaf(seed=1), leaf((2,), seed=2), leaf((2,), seed=3))


# ---------------------------------------------------------------------------------------------
# products

@pytest.mark.parametrize("shapes,fn", [
    (((3,), (3,)), lambda a, b: a @ b), (((2, 3), (3,)), lambda a, b: a @ b), (((3,), (3, 2)), lambda a, b: a @ b),
    (((2, 3), (3, 2)), lambda a, b: a @ b), (((2, 2, 3), (3, 2)), lambda a, b: a @ b),
    (((2, 1, 2, 3), (2, 3, 2)), lambda a, b: a @ b), (((2, 2, 3), (3,)), lambda a, b: lt.matmul(a, b)),
    (((2, 3), (3, 2)), lambda a, b: lt.mm(a, b)), (((2, 2, 3), (2, 3, 2)), lambda a, b: lt.bmm(a, b)),
    (((3,), (3,)), lambda a, b: lt.dot(a, b)), (((2, 3), (3,)), lambda a, b: lt.mv(a, b)),
    (((3,), (2,)), lambda a, b: lt.outer(a, b)), (((3,), (3,)), lambda a, b: lt.inner(a, b)),
    (((2, 3), (3, 2)), lambda a, b: lt.addmm(a[:, :2], a, b, beta=0.5, alpha=2.0)),
    (((2, 3), (3, 2)), lambda a, b: lt.einsum("ij,jk->ik", a, b)),
], ids=["1d_1d", "2d_1d", "1d_2d", "2d_2d", "batched_2d", "broadcast_batches", "batched_1d", "mm", "bmm", "dot",
        "mv", "outer", "inner", "addmm", "einsum"])
def test_products(shapes, fn):
    check(fn, *(leaf(s, seed=i) for i, s in enumerate(shapes)))


# ---------------------------------------------------------------------------------------------
# second order: gradcheck of the gradient graph

@pytest.mark.parametrize("fn", [
    lambda a: (a.exp() * a.sin()).sum(1), lambda a: a.softmax(1), lambda a: (a ** 3).prod(1),
    lambda a: a.tanh().norm(), lambda a: (a @ a.t()).log_softmax(0), lambda a: a.sigmoid().var(1),
], ids=["exp_sin", "softmax", "pow_prod", "tanh_norm", "matmul_log_softmax", "sigmoid_var"])
def test_gradgradcheck(fn):
    assert gradgradcheck(fn, (leaf(kind="away"),))
