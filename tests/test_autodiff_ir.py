"""Tests for compiler/autodiff.py: every VJP rule against central finite differences.

Graphs are built directly with the IR constructors over float64 buffers. Each check takes the
gradient of a scalar loss, sum(out * c) for a random cotangent c, realizes it through the whole
compiler (fusion, codegen, runtime), and compares it with central differences of the same loss,
also computed by the compiler (the perturbed graphs have the same structure, so they reuse the
compiled schedule).
"""
import math
import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # plain `pytest` (not `python -m pytest`)
    sys.path.insert(0, str(ROOT))

from compiler import dtypes  # noqa: E402
from compiler.autodiff import GRAD_ORIGIN, VJP_RULES, describe, grad  # noqa: E402
from compiler.ir.node import (  # noqa: E402
    binary, buffer, cast, const, cumsum, expand, flip, gather, matmul, pad, permute, reduce,
    reshape, scatter_add, slice_, unary, where,
)
from compiler.ir.ops import Op  # noqa: E402
from compiler.realize import realize  # noqa: E402

F64 = dtypes.float64
EPS = 1e-6
RTOL = 1e-5
ATOL = 1e-6     # for entries near zero: round-off of the differences is ~1e-10 * |loss|


def rng(seed=0):
    return np.random.default_rng(seed)


def value(node):
    realize([node])
    return node.realized


def total(node):
    """SUM over all axes (keepdim form)."""
    return reduce(Op.SUM, node, tuple(range(len(node.shape))))


def one_like(node):
    return const(1.0, node.dtype, node.shape)


def loss_of(build, leaves, cotangent):
    """sum(build(*leaves) * cotangent) as a scalar (all-ones shape) IR node."""
    out = build(*leaves)
    return total(binary(Op.MUL, out, buffer(cotangent)))


def check_grad(build, *arrays, seed=1, atol=ATOL):
    """Compare grad of sum(build(*arrays) * c) with central differences, for every float input.

    Integer inputs (indices, masks) must get None. Returns the realized analytic gradients.
    """
    leaves = [buffer(a) for a in arrays]
    out = build(*leaves)
    assert out.dtype is F64
    cotangent = rng(seed).standard_normal(out.shape)
    loss = total(binary(Op.MUL, out, buffer(cotangent)))
    grads = grad([loss], [one_like(loss)], leaves)
    realize([g for g in grads if g is not None])

    results = []
    for k, (array, g) in enumerate(zip(arrays, grads)):
        if not np.issubdtype(array.dtype, np.floating):
            assert g is None, f"input {k} is not floating but got a gradient"
            results.append(None)
            continue
        assert g is not None, f"no gradient for input {k}"
        assert g.shape == array.shape and g.dtype is F64
        numeric = np.zeros_like(array)
        for idx in np.ndindex(array.shape):
            values = []
            for sign in (1, -1):
                perturbed = [a.copy() for a in arrays]
                perturbed[k][idx] += sign * EPS
                values.append(value(loss_of(build, [buffer(a) for a in perturbed], cotangent)).item())
            numeric[idx] = (values[0] - values[1]) / (2 * EPS)
        np.testing.assert_allclose(g.realized, numeric, rtol=RTOL, atol=atol,
                                   err_msg=f"gradient of input {k}")
        results.append(g.realized)
    return results


def grads_of(out, leaves, cotangent=None):
    """Realized gradients of sum(out * cotangent) (cotangent of ones by default)."""
    ct = one_like(out) if cotangent is None else buffer(cotangent)
    grads = grad([out], [ct], leaves)
    realize([g for g in grads if g is not None])
    return [None if g is None else g.realized for g in grads]


# ---------------------------------------------------------------------------------------------
# the table

def test_every_primitive_has_a_rule():
    assert set(VJP_RULES) == set(Op)


# ---------------------------------------------------------------------------------------------
# unary

X = rng(2).uniform(-2, 2, (2, 3))
POSITIVE = rng(3).uniform(0.3, 2.5, (2, 3))
SMALL = rng(4).uniform(-1.2, 1.2, (2, 3))
AWAY_FROM_ZERO = np.array([[-1.5, -0.4, 0.3], [0.8, -2.0, 1.7]])


@pytest.mark.parametrize("op, x", [
    (Op.NEG, X), (Op.EXP, X), (Op.LOG, POSITIVE), (Op.SIN, X), (Op.COS, X), (Op.TAN, SMALL),
    (Op.SQRT, POSITIVE), (Op.ABS, AWAY_FROM_ZERO), (Op.TANH, X), (Op.SIGMOID, X), (Op.ERF, X),
    (Op.LOG1P, POSITIVE - 0.2), (Op.EXPM1, X),
], ids=lambda p: p.name if isinstance(p, Op) else "")
def test_unary(op, x):
    check_grad(lambda a: unary(op, a), x)


@pytest.mark.parametrize("op", [Op.SIGN, Op.FLOOR, Op.CEIL, Op.ROUND, Op.TRUNC])
def test_piecewise_constant_has_zero_gradient(op):
    x = buffer(X)
    # zeros, not None: torch leaves x.grad zeros for x.floor().sum().backward()
    (g,) = grad([unary(op, x)], [one_like(x)], [x])
    assert g.op is Op.CONST and g.arg[1] == 0 and g.shape == x.shape and g.dtype is x.dtype
    # through another path the gradient still flows: d(x * floor(x)) = floor(x) (off integers)
    check_grad(lambda a: binary(Op.MUL, a, unary(op, a)), X + 0.01)


def test_cast_float32_roundtrip():
    x32 = rng(5).uniform(-1, 1, (2, 3)).astype(np.float32)
    x = buffer(x32)
    y = cast(x, F64)
    out = binary(Op.MUL, y, y)
    ct = rng(6).standard_normal((2, 3))
    (g,) = grad([out], [buffer(ct)], [x])
    assert g.dtype is dtypes.float32 and g.shape == (2, 3)
    np.testing.assert_allclose(value(g), (2 * x32.astype(np.float64) * ct).astype(np.float32),
                               rtol=1e-6)


def test_cast_to_and_from_integers_has_no_gradient():
    x = buffer(X)
    as_int = cast(x, dtypes.int64)
    assert grad([cast(as_int, F64)], [one_like(x)], [x]) == [None]
    i = buffer(np.arange(6).reshape(2, 3))
    assert grad([cast(i, F64)], [one_like(x)], [i]) == [None]


def test_detach_blocks_gradient():
    # d/dx (x * detach(x)) = detach(x): only the undetached factor is differentiated
    x = buffer(X)
    out = binary(Op.MUL, x, unary(Op.DETACH, x))
    (g,) = grads_of(out, [x])
    np.testing.assert_allclose(g, X)
    assert grad([unary(Op.DETACH, x)], [one_like(x)], [x]) == [None]


@pytest.mark.parametrize("op", [Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ, Op.NE])
def test_comparisons_have_no_gradient(op):
    a, b = buffer(X), buffer(SMALL)
    out = cast(binary(op, a, b), F64)
    assert grad([out], [one_like(out)], [a, b]) == [None, None]
    # a comparison used as a mask: the gradient flows only through the masked value
    ga, gb = grads_of(binary(Op.MUL, out, a), [a, b])
    np.testing.assert_array_equal(ga, value(out))
    assert gb is None


def test_logical_and_integer_ops_have_no_gradient():
    a, b = buffer(X), buffer(SMALL)
    pa, pb = binary(Op.GT, a, b), binary(Op.LT, a, b)
    for out in (unary(Op.NOT, pa), binary(Op.AND, pa, pb), binary(Op.OR, pa, pb),
                binary(Op.XOR, pa, pb), unary(Op.ISNAN, a)):
        out = cast(out, F64)
        assert grad([out], [one_like(out)], [a, b]) == [None, None]
    fd = binary(Op.FLOORDIV, a, b)
    assert grad([fd], [one_like(fd)], [a, b]) == [None, None]
    for op in (Op.ARGMAX, Op.ARGMIN):
        arg = cast(reduce(op, a, (1,)), F64)
        assert grad([arg], [one_like(arg)], [a]) == [None]


# ---------------------------------------------------------------------------------------------
# binary

A = rng(7).uniform(0.5, 2.0, (2, 3))
B = rng(8).uniform(-1.5, 1.5, (2, 3))


@pytest.mark.parametrize("op, a, b", [
    (Op.ADD, X, B), (Op.SUB, X, B), (Op.MUL, X, B), (Op.DIV, X, A), (Op.DIV, B, -A),
    (Op.POW, A, B), (Op.MAXIMUM, X, B), (Op.MINIMUM, X, B), (Op.ATAN2, X, B), (Op.ATAN2, B, -A),
    (Op.MOD, X * 3, A), (Op.MOD, X * 3, -A),
], ids=lambda p: p.name if isinstance(p, Op) else "")
def test_binary(op, a, b):
    check_grad(lambda x, y: binary(op, x, y), a, b)


def test_same_input_twice_accumulates():
    check_grad(lambda x: binary(Op.ADD, binary(Op.MUL, x, x), unary(Op.SIN, x)), X)
    check_grad(lambda x: binary(Op.DIV, x, x), A)


def test_pow_masks_zero_base_and_zero_exponent():
    # as torch: d/db 0**b = 0 for b >= 0 (not 0 * log 0 = nan); d/da a**0 = 0 (also at a = 0)
    a = buffer(np.array([0.0, 2.0, 0.0, 3.0]))
    b = buffer(np.array([2.0, 3.0, 0.0, 0.0]))
    ga, gb = grads_of(binary(Op.POW, a, b), [a, b])
    np.testing.assert_array_equal(ga, [0.0, 12.0, 0.0, 0.0])
    np.testing.assert_allclose(gb, [0.0, 8 * math.log(2), 0.0, math.log(3)])


def test_pow_with_constant_exponent():
    check_grad(lambda x: binary(Op.POW, x, const(2.0, F64, x.shape)), X)
    check_grad(lambda x: binary(Op.POW, x, const(-1.5, F64, x.shape)), POSITIVE)
    x = buffer(X)
    zeroth = binary(Op.POW, x, const(0.0, F64, x.shape))
    (g,) = grad([zeroth], [one_like(x)], [x])       # zeros, as torch (not None)
    assert g.op is Op.CONST and g.arg[1] == 0 and g.shape == x.shape


def test_maximum_minimum_ties_split_in_half():
    a = buffer(np.array([1.0, 2.0, 3.0, -1.0]))
    b = buffer(np.array([1.0, 0.0, 5.0, -1.0]))
    ct = np.array([2.0, 3.0, 5.0, 7.0])
    ga, gb = grads_of(binary(Op.MAXIMUM, a, b), [a, b], ct)
    np.testing.assert_array_equal(ga, [1.0, 3.0, 0.0, 3.5])
    np.testing.assert_array_equal(gb, [1.0, 0.0, 5.0, 3.5])
    ga, gb = grads_of(binary(Op.MINIMUM, a, b), [a, b], ct)
    np.testing.assert_array_equal(ga, [1.0, 0.0, 5.0, 3.5])
    np.testing.assert_array_equal(gb, [1.0, 3.0, 0.0, 3.5])


def test_broadcasting_via_expand():
    # (3, 1) * (1, 4) -> (3, 4): gradients sum back over the broadcast axes
    def build(x, y):
        return binary(Op.MUL, expand(x, (3, 4)), expand(y, (3, 4)))
    check_grad(build, rng(9).standard_normal((3, 1)), rng(10).standard_normal((1, 4)))
    # a scalar-like (1, 1) bias broadcast over a (2, 3) matrix
    check_grad(lambda x, b: binary(Op.ADD, x, expand(b, (2, 3))), X, np.array([[0.7]]))


def test_where():
    cond = X > 0.2

    def build(c, x, y):
        return where(c, unary(Op.SIN, x), binary(Op.MUL, y, y))
    _, gx, gy = check_grad(build, cond, X, B)
    # exactly zero where the branch was not taken
    assert np.all(gx[~cond] == 0) and np.all(gy[cond] == 0)


# ---------------------------------------------------------------------------------------------
# reductions

R3 = rng(11).standard_normal((2, 3, 4))


@pytest.mark.parametrize("axes", [(0,), (1,), (2,), (0, 2), (0, 1, 2)])
@pytest.mark.parametrize("op", [Op.SUM, Op.PROD, Op.MAX, Op.MIN])
def test_reductions(op, axes):
    # distinct values: no ties; prod away from zero
    x = R3 + np.sign(R3) * 0.3 if op is Op.PROD else R3
    check_grad(lambda a: reduce(op, a, axes), x)


def test_reduction_feeding_elementwise():
    # softmax-like: exp(x - max(x)) / sum(exp(x - max(x))) over the last axis
    def build(x):
        shifted = binary(Op.SUB, x, expand(reduce(Op.MAX, x, (1,)), x.shape))
        e = unary(Op.EXP, shifted)
        return binary(Op.DIV, e, expand(reduce(Op.SUM, e, (1,)), x.shape))
    check_grad(build, rng(12).standard_normal((3, 5)))


def test_max_reduce_ties_split_evenly():
    x = buffer(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]))
    ct = np.array([[6.0], [9.0]])
    (g,) = grads_of(reduce(Op.MAX, x, (1,)), [x], ct)
    np.testing.assert_array_equal(g, [[0.0, 3.0, 3.0], [3.0, 3.0, 3.0]])
    y = buffer(np.array([[1.0, 3.0, 1.0], [2.0, 1.0, 2.0]]))
    (g,) = grads_of(reduce(Op.MIN, y, (0, 1)), [y], np.array([[6.0]]))
    np.testing.assert_array_equal(g, [[2.0, 0.0, 2.0], [0.0, 2.0, 0.0]])


# ---------------------------------------------------------------------------------------------
# movement

def test_reshape_and_permute():
    check_grad(lambda x: reshape(x, (4, 6)), R3)
    check_grad(lambda x: permute(x, (2, 0, 1)), R3)
    check_grad(lambda x: binary(Op.MUL, permute(x, (1, 2, 0)), permute(x, (1, 2, 0))), R3)


def test_reshape_of_a_permuted_view():
    # a non-contiguous reshape (symbolic div/mod index maps), differentiated both ways
    def build(x):
        return unary(Op.SIN, reshape(permute(x, (2, 1, 0)), (8, 3)))
    check_grad(build, R3)


def test_expand_inner_and_outer_axes():
    check_grad(lambda x: expand(x, (3, 2, 4)), rng(13).standard_normal((1, 2, 1)))


def test_pad():
    check_grad(lambda x: pad(x, ((1, 2), (0, 3))), X)
    check_grad(lambda x: unary(Op.EXP, pad(unary(Op.SIN, x), ((2, 0), (1, 1)))), X)


def test_negative_pad_crops():
    check_grad(lambda x: pad(x, ((-1, 2), (1, -2))), X)


@pytest.mark.parametrize("ranges", [
    ((1, 2, 1), (0, 3, 1)),                 # plain offset
    ((0, 7, 2), (0, 9, 3)),                 # steps from 0, stop at the end
    ((1, 6, 3), (2, 9, 2)),                 # offset + step, last picked index < stop - 1
    ((2, 7, 4), (3, 4, 1)),                 # one element along axis 1
    ((6, 7, 5), (0, 9, 4)),                 # step larger than what remains
])
def test_slice(ranges):
    x = rng(14).standard_normal((7, 9))
    check_grad(lambda a: slice_(a, ranges), x)


def test_slice_3d_with_steps_on_every_axis():
    x = rng(15).standard_normal((5, 6, 7))
    check_grad(lambda a: unary(Op.TANH, slice_(a, ((1, 5, 2), (0, 5, 3), (2, 7, 2)))), x)


def test_flip():
    check_grad(lambda x: flip(x, (0, 2)), R3)
    check_grad(lambda x: binary(Op.MUL, x, flip(x, (1,))), R3)


# ---------------------------------------------------------------------------------------------
# contraction and indexing

def test_matmul_2d():
    check_grad(matmul, rng(16).standard_normal((3, 4)), rng(17).standard_normal((4, 2)))


def test_matmul_batched():
    check_grad(matmul, rng(18).standard_normal((2, 3, 4)), rng(19).standard_normal((2, 4, 5)))


def test_matmul_of_views():
    # operands that are transposed views of the leaves
    def build(a, b):
        return matmul(permute(a, (1, 0)), permute(b, (1, 0)))
    check_grad(build, rng(20).standard_normal((4, 3)), rng(21).standard_normal((2, 4)))


def test_gather():
    index = np.array([[0, 2, 2, 1], [1, 1, 0, 0]])           # repeats: gradients add up
    check_grad(lambda s, i: gather(s, i, 1), X, index)
    index0 = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 0]])
    check_grad(lambda s, i: gather(s, i, 0), X, index0)


def test_gather_of_computed_source():
    index = np.array([[0, 2], [1, 1]])
    check_grad(lambda s, i: unary(Op.SIN, gather(unary(Op.EXP, s), i, 1)), X, index)


def test_scatter_add():
    index = np.array([[0, 2, 2, 1], [3, 3, 0, 1]])
    source = rng(22).standard_normal((2, 4))
    base = rng(23).standard_normal((2, 5))
    check_grad(lambda b, i, s: scatter_add(b, i, s, 1), base, index, source)
    # a nonlinearity after the scatter makes the cotangent depend on the position
    check_grad(lambda b, i, s: unary(Op.SIN, scatter_add(b, i, s, 1)), base, index, source)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_cumsum(axis):
    check_grad(lambda x: cumsum(x, axis), R3)
    check_grad(lambda x: unary(Op.SIN, cumsum(unary(Op.EXP, x), axis)), R3)


# ---------------------------------------------------------------------------------------------
# the transform itself

def test_int_leaf_and_off_path_nodes_get_none():
    x = buffer(X)
    z = buffer(B)
    i = buffer(np.arange(6).reshape(2, 3))
    unrelated = unary(Op.SIN, z)                     # exists, but no path to the output
    out = binary(Op.ADD, unary(Op.EXP, x), cast(i, F64))
    gx, gz, gu, gi = grad([out], [one_like(out)], [x, z, unrelated, i])
    assert gz is None and gu is None and gi is None
    np.testing.assert_allclose(value(gx), np.exp(X))


def test_output_that_is_the_wrt_node():
    x = buffer(X)
    ct = buffer(B)
    assert grad([x], [ct], [x]) == [ct]


def test_intermediate_wrt_node():
    # gradient with respect to an inner node: d sum(exp(y)) / dy with y = sin(x)
    x = buffer(X)
    y = unary(Op.SIN, x)
    out = unary(Op.EXP, y)
    gy, gx = grad([out], [one_like(out)], [y, x])
    np.testing.assert_allclose(value(gy), np.exp(np.sin(X)))
    np.testing.assert_allclose(value(gx), np.exp(np.sin(X)) * np.cos(X))


def test_several_outputs_and_cotangents():
    x = buffer(X)
    out1, out2 = unary(Op.SIN, x), binary(Op.MUL, x, x)
    c1, c2 = rng(24).standard_normal((2, 3)), rng(25).standard_normal((2, 3))
    (g,) = grad([out1, out2, out1], [buffer(c1), buffer(c2), buffer(c2)], [x])
    np.testing.assert_allclose(value(g), np.cos(X) * (c1 + c2) + 2 * X * c2)


def test_differentiates_through_realized_nodes():
    x = buffer(X)
    y = unary(Op.EXP, x)
    realize([y])                                  # y is now a value, but keeps its input
    out = binary(Op.MUL, y, y)
    (g,) = grads_of(out, [x])
    np.testing.assert_allclose(g, 2 * np.exp(2 * X))


def test_float32_gradient():
    x32 = rng(26).uniform(-1, 1, (4, 5)).astype(np.float32)
    x = buffer(x32)
    out = unary(Op.TANH, binary(Op.MUL, x, x))
    (g,) = grad([out], [one_like(out)], [x])
    assert g.dtype is dtypes.float32
    x64 = x32.astype(np.float64)
    np.testing.assert_allclose(value(g), (1 - np.tanh(x64 ** 2) ** 2) * 2 * x64, rtol=1e-5, atol=1e-6)


def test_provenance():
    x, y = buffer(X), buffer(B)
    out = binary(Op.MUL, x, unary(Op.SIN, y))
    gx, gy = grad([out], [one_like(out)], [x, y])
    assert describe(gx) == "grad of MUL input 0 (rule: mul)"
    forward, rule = GRAD_ORIGIN[gy]
    assert forward.op is Op.SIN and rule == "sin"
    assert describe(gy) == "grad of SIN input 0 (rule: sin)"
    cos = gy.inputs[1]
    assert cos.op is Op.COS and describe(cos) == "part of the grad of SIN (rule: sin)"
    assert describe(out) is None and describe(x) is None
    # a node with several users: the sum is described as an accumulation
    (gz,) = grad([binary(Op.MUL, x, x)], [one_like(x)], [x])
    assert describe(gz).startswith("grad of BUFFER output, summed over its users")


# ---------------------------------------------------------------------------------------------
# higher order

def test_second_order_cube():
    # d/dx sum(d/dx sum(x**3)) = 6x
    x = buffer(X)
    cube = binary(Op.POW, x, const(3.0, F64, x.shape))
    loss = total(cube)
    (g1,) = grad([loss], [one_like(loss)], [x])
    loss2 = total(g1)
    (g2,) = grad([loss2], [one_like(loss2)], [x])
    realize([g1, g2])
    np.testing.assert_allclose(g1.realized, 3 * X ** 2)
    np.testing.assert_allclose(g2.realized, 6 * X)


def first_grad(f):
    """x -> d sum(f(x)) / dx, as an IR builder (so check_grad tests Hessian-vector products)."""
    def build(*leaves):
        out = f(*leaves)
        loss = total(out)
        return grad([loss], [one_like(loss)], leaves)[0]
    return build


@pytest.mark.parametrize("name, f, x", [
    ("tanh", lambda x: unary(Op.TANH, x), X),
    ("sin*exp", lambda x: binary(Op.MUL, unary(Op.SIN, x), unary(Op.EXP, x)), X),
    ("div", lambda x: binary(Op.DIV, unary(Op.COS, x), binary(Op.ADD, x, const(3.0, F64, x.shape))), X),
    ("sigmoid", lambda x: unary(Op.SIGMOID, binary(Op.MUL, x, x)), X),
    ("softmax-ish", lambda x: unary(Op.LOG, reduce(Op.SUM, unary(Op.EXP, x), (1,))), X),
    ("sqrt", lambda x: unary(Op.SQRT, x), POSITIVE),
    ("erf", lambda x: unary(Op.ERF, x), X),
], ids=lambda p: p if isinstance(p, str) else "")
def test_second_order(name, f, x):
    check_grad(first_grad(f), x)


def test_second_order_matmul_and_pow():
    def f(a, b):
        return unary(Op.TANH, matmul(a, binary(Op.POW, b, const(2.0, F64, b.shape))))
    build = first_grad(f)
    a, b = rng(27).standard_normal((2, 3)), rng(28).uniform(0.5, 1.5, (3, 4))
    check_grad(lambda x, y: build(x, y), a, b)


# ---------------------------------------------------------------------------------------------
# composites: the gradient graphs exercise row kernels, views of computed values, library calls

def log_softmax_nll(x, target):
    shifted = binary(Op.SUB, x, expand(reduce(Op.MAX, x, (1,)), x.shape))
    lse = unary(Op.LOG, reduce(Op.SUM, unary(Op.EXP, shifted), (1,)))
    return unary(Op.NEG, gather(binary(Op.SUB, shifted, expand(lse, x.shape)), target, 1))


def layer_norm(x, weight):
    n = const(float(x.shape[1]), F64, (x.shape[0], 1))
    centered = binary(Op.SUB, x, expand(binary(Op.DIV, reduce(Op.SUM, x, (1,)), n), x.shape))
    var = binary(Op.DIV, reduce(Op.SUM, binary(Op.MUL, centered, centered), (1,)), n)
    std = unary(Op.SQRT, binary(Op.ADD, var, const(1e-5, F64, var.shape)))
    return binary(Op.MUL, binary(Op.DIV, centered, expand(std, x.shape)), expand(weight, x.shape))


def conv1d(x, w):
    """y[i] = sum_k xpad[i + k] w[k] for a (5,) signal and a (3,) kernel: pad + shifted slices."""
    padded = pad(x, ((1, 1),))
    terms = [binary(Op.MUL, slice_(padded, ((k, k + 5, 1),)), expand(slice_(w, ((k, k + 1, 1),)), (5,)))
             for k in range(3)]
    return binary(Op.ADD, binary(Op.ADD, terms[0], terms[1]), terms[2])


def max_pool_2x2(x):
    windows = permute(reshape(x, (3, 2, 4, 2)), (0, 2, 1, 3))
    return reduce(Op.MAX, reshape(windows, (3, 4, 4)), (2,))


def test_log_softmax_nll():
    check_grad(log_softmax_nll, rng(30).standard_normal((4, 5)), np.array([[1], [0], [4], [2]]))
    check_grad(first_grad(lambda x: log_softmax_nll(x, buffer(np.array([[1], [0], [4], [2]])))),
               rng(30).standard_normal((4, 5)))


def test_layer_norm():
    check_grad(layer_norm, rng(31).standard_normal((3, 6)), rng(32).standard_normal((1, 6)))
    check_grad(first_grad(layer_norm), rng(31).standard_normal((3, 6)), rng(32).standard_normal((1, 6)))


def test_conv1d_and_pool():
    check_grad(conv1d, rng(33).standard_normal(5), rng(34).standard_normal(3))
    check_grad(max_pool_2x2, rng(35).standard_normal((6, 8)))


def test_views_of_computed_values():
    r = rng(36)
    check_grad(lambda a, b: unary(Op.SIN, pad(matmul(a, b), ((1, 0), (2, 1)))),
               r.standard_normal((3, 4)), r.standard_normal((4, 2)))
    check_grad(lambda x: slice_(cumsum(reduce(Op.SUM, x, (1,)), 0), ((1, 6, 2), (0, 1, 1))),
               r.standard_normal((6, 3)))
    check_grad(lambda x: flip(slice_(flip(unary(Op.EXP, x), (0, 1)), ((1, 5, 2), (0, 3, 2))), (1,)),
               r.standard_normal((5, 3)))
    check_grad(lambda s, i: gather(permute(s, (1, 0)), i, 0),
               r.standard_normal((3, 4)), np.array([[0, 2, 1], [3, 3, 0]]))
    check_grad(lambda b, i, s: scatter_add(expand(b, (3, 4)), i, unary(Op.EXP, s), 1),
               r.standard_normal((1, 4)), np.array([[0, 3], [1, 1], [2, 0]]), r.standard_normal((3, 2)))


# ---------------------------------------------------------------------------------------------
# against torch.autograd

def test_mlp_against_torch():
    torch = pytest.importorskip("torch")
    r = rng(29)
    xs, w1, b1 = r.standard_normal((5, 4)), r.standard_normal((4, 6)), r.standard_normal((1, 6))
    w2, b2 = r.standard_normal((6, 3)), r.standard_normal((1, 3))

    def forward(x, w1, b1, w2, b2):
        h = unary(Op.TANH, binary(Op.ADD, matmul(x, w1), expand(b1, (5, 6))))
        y = binary(Op.ADD, matmul(h, w2), expand(b2, (5, 3)))
        return total(binary(Op.MUL, y, y))

    leaves = [buffer(a) for a in (xs, w1, b1, w2, b2)]
    loss = forward(*leaves)
    grads = grad([loss], [one_like(loss)], leaves)
    realize([loss] + grads)

    tensors = [torch.tensor(a, requires_grad=True) for a in (xs, w1, b1, w2, b2)]
    x, tw1, tb1, tw2, tb2 = tensors
    y = torch.tanh(x @ tw1 + tb1) @ tw2 + tb2
    expected = (y * y).sum()
    expected.backward()
    np.testing.assert_allclose(loss.realized.item(), expected.item(), rtol=1e-12)
    for ours, t in zip(grads, tensors):
        np.testing.assert_allclose(ours.realized, t.grad.numpy(), rtol=1e-10, atol=1e-12)

