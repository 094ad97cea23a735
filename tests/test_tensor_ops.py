"""The Tensor API against PyTorch: creation, dtypes, elementwise math with broadcasting and type
promotion, reductions, matmul, realization and printing.

Every test computes the same thing in both libraries from the same numpy data and compares with
`assert_close` (dtype, shape and values). Shapes are few and small: each new kernel costs a Numba
compile.
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lazytorch as lt  # noqa: E402
from conftest import SPECIAL, assert_close, dtype_name, make_array, pair  # noqa: E402

DTYPES = ["float32", "float64", "float16", "int32", "int64", "uint8", "bool"]


def lt_dtype(name):
    return getattr(lt, name)


def torch_dtype(name):
    return getattr(torch, name)


# ---------------------------------------------------------------------------------------------
# creation

@pytest.mark.parametrize("data", [
    [[1.0, 2.0], [3.0, 4.0]], [1, 2, 3], [True, False], 3.5, 3, True, [1, 2.5], [[True, 2], [3, 4]], [],
    [[1.5]], [False, 1.0],
])
def test_tensor_infers_dtype_like_torch(data):
    assert_close(lt.tensor(data), torch.tensor(data))


@pytest.mark.parametrize("dtype", DTYPES)
def test_tensor_from_numpy_array_keeps_dtype(dtype):
    array = make_array((2, 3), dtype)
    assert_close(lt.tensor(array), torch.tensor(array))


@pytest.mark.parametrize("dtype", ["float64", "int32", "bool", "float16", "uint8"])
def test_tensor_dtype_argument(dtype):
    data = [[1.5, 2.0], [0.0, 3.25]]
    assert_close(lt.tensor(data, dtype=lt_dtype(dtype)), torch.tensor(data, dtype=torch_dtype(dtype)))


def test_tensor_requires_grad_and_copies_its_data():
    array = np.ones(3, np.float32)
    t = lt.tensor(array, requires_grad=True)
    assert t.requires_grad and t.is_leaf and t.grad_fn is None
    array[0] = 5.0                       # torch.tensor copies: the tensor must not change
    assert t.detach().tolist() == [1.0, 1.0, 1.0]


def test_from_numpy_shares_memory():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = lt.from_numpy(array)
    assert t.dtype is lt.float32 and t.shape == (2, 3)
    array[0, 1] = 100.0
    assert t[0, 1].item() == 100.0
    assert t.sum().item() == 0 + 100 + 2 + 3 + 4 + 5
    array[1, 2] = -7.0                   # visible again, after the tensor has been computed with
    assert t.tolist() == [[0.0, 100.0, 2.0], [3.0, 4.0, -7.0]]
    assert t.sum().item() == 0 + 100 + 2 + 3 + 4 - 7
    t.numpy()[0, 0] = 9.0                # and the other way round
    assert array[0, 0] == 9.0


def test_from_numpy_rejects_unsupported_dtype():
    with pytest.raises(TypeError) as ours:
        lt.from_numpy(np.zeros(2, object))
    with pytest.raises(TypeError) as theirs:
        torch.from_numpy(np.zeros(2, object))
    prefix = "can't convert np.ndarray of type numpy.object_. The only supported types are: "
    assert str(ours.value).startswith(prefix) and str(theirs.value).startswith(prefix)


@pytest.mark.parametrize("name", ["zeros", "ones", "empty"])
@pytest.mark.parametrize("dtype", [None, "int64", "bool", "float64"])
def test_constant_creation(name, dtype):
    kwargs = {} if dtype is None else {"dtype": lt_dtype(dtype)}
    tkwargs = {} if dtype is None else {"dtype": torch_dtype(dtype)}
    ours, theirs = getattr(lt, name)(2, 3, **kwargs), getattr(torch, name)(2, 3, **tkwargs)
    if name == "empty":                  # values are unspecified: compare dtype and shape only
        assert dtype_name(ours.dtype) == dtype_name(theirs.dtype) and ours.shape == theirs.shape
        return
    assert_close(ours, theirs)
    assert_close(getattr(lt, name)((2, 3), **kwargs), getattr(torch, name)((2, 3), **tkwargs))
    assert_close(getattr(lt, name)([4], **kwargs), getattr(torch, name)([4], **tkwargs))
    assert_close(getattr(lt, name)((), **kwargs), getattr(torch, name)((), **tkwargs))


@pytest.mark.parametrize("value", [2.5, 7, True])
def test_full_infers_dtype_from_value(value):
    assert_close(lt.full((2, 2), value), torch.full((2, 2), value))
    assert_close(lt.full((2,), value, dtype=lt.float64), torch.full((2,), value, dtype=torch.float64))


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_like_forms(dtype):
    x, tx = pair(make_array((2, 3), dtype))
    assert_close(lt.zeros_like(x), torch.zeros_like(tx))
    assert_close(lt.ones_like(x), torch.ones_like(tx))
    assert_close(lt.full_like(x, 1), torch.full_like(tx, 1))
    assert_close(lt.ones_like(x, dtype=lt.float64), torch.ones_like(tx, dtype=torch.float64))
    e, te = lt.empty_like(x), torch.empty_like(tx)
    assert e.shape == te.shape and dtype_name(e.dtype) == dtype_name(te.dtype)


@pytest.mark.parametrize("args,kwargs", [
    ((5,), {}), ((2, 9), {}), ((0, 1, 0.25), {}), ((1, 10, 3), {}), ((5.0,), {}), ((10, 0, -3), {}),
    ((0, 1, 0.1), {}), ((3,), {"dtype": "float64"}), ((-1.5, 2.0, 0.5), {"dtype": "float64"}),
])
def test_arange(args, kwargs):
    ours = lt.arange(*args, **{k: lt_dtype(v) for k, v in kwargs.items()})
    theirs = torch.arange(*args, **{k: torch_dtype(v) for k, v in kwargs.items()})
    assert_close(ours, theirs)


@pytest.mark.parametrize("args", [(0, 1, 5), (-2.0, 3.0, 7), (1, 1, 1), (0, 10, 0), (2, -1, 4)])
def test_linspace(args):
    assert_close(lt.linspace(*args), torch.linspace(*args))


@pytest.mark.parametrize("args", [(3,), (2, 4), (4, 2)])
def test_eye(args):
    assert_close(lt.eye(*args), torch.eye(*args))
    assert_close(lt.eye(*args, dtype=lt.int64), torch.eye(*args, dtype=torch.int64))


def test_random_creation_is_reproducible_with_manual_seed():
    def draw():
        lt.manual_seed(1234)
        return [lt.rand(3, 4), lt.randn(3, 4), lt.randint(0, 10, (3, 4)), lt.randint(5, (2,)),
                lt.zeros(3, 4).normal_(), lt.zeros(3, 4).uniform_(-2, 3), lt.rand(2, dtype=lt.float64)]
    first, second = draw(), draw()
    for a, b in zip(first, second):
        assert a.dtype is b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    rand, randn, randint, randint_high, normal, uniform, rand64 = first
    assert rand.dtype is lt.float32 and randint.dtype is lt.int64 and rand64.dtype is lt.float64
    assert 0 <= rand.numpy().min() and rand.numpy().max() < 1
    assert 0 <= randint.numpy().min() and randint.numpy().max() < 10
    assert 0 <= randint_high.numpy().min() and randint_high.numpy().max() < 5
    assert -2 <= uniform.numpy().min() and uniform.numpy().max() < 3
    assert not np.array_equal(rand.numpy(), lt.rand(3, 4).numpy())     # the stream moves on
    lt.manual_seed(7)
    big = lt.randn(10000)
    assert abs(big.mean().item()) < 0.05 and abs(big.std().item() - 1) < 0.05


def test_random_fills_keep_dtype_and_shape():
    lt.manual_seed(0)
    t = lt.zeros(2, 3, dtype=lt.float64)
    assert t.normal_(2.0, 0.5) is t
    assert t.dtype is lt.float64 and t.shape == (2, 3) and not np.all(t.numpy() == 0)
    g = lt.Generator().manual_seed(3)
    a = lt.rand(4, generator=g)
    g.manual_seed(3)
    np.testing.assert_array_equal(a.numpy(), lt.rand(4, generator=g).numpy())


def test_default_dtype():
    assert lt.get_default_dtype() is lt.float32
    lt.set_default_dtype(lt.float64)
    torch.set_default_dtype(torch.float64)
    try:
        assert lt.get_default_dtype() is lt.float64
        assert_close(lt.tensor([1.5, 2.0]), torch.tensor([1.5, 2.0]))
        assert_close(lt.zeros(2), torch.zeros(2))
        assert_close(lt.arange(0, 1, 0.5), torch.arange(0, 1, 0.5))
        x, tx = pair(np.array([1, 2], np.int64))
        assert_close(x / 2, tx / 2)
        assert_close(x * 1.5, tx * 1.5)
    finally:
        torch.set_default_dtype(torch.float32)
    with pytest.raises(TypeError):
        lt.set_default_dtype(lt.int64)


# ---------------------------------------------------------------------------------------------
# dtype conversion

@pytest.mark.parametrize("src", DTYPES)
@pytest.mark.parametrize("dst", DTYPES)
def test_to_dtype(src, dst):
    array = SPECIAL[1:].copy() * 3 if src.startswith("float") else make_array((2, 4), src)
    if dst in ("uint8", "int32", "int64") and src.startswith("float"):
        array = np.abs(array)            # float -> unsigned of negatives is undefined behaviour in C
    x, tx = pair(array)
    assert_close(x.to(lt_dtype(dst)), tx.to(torch_dtype(dst)))


def test_conversion_methods():
    x, tx = pair(np.array([[1.7, -2.2], [0.0, 3.5]], np.float32))
    for name in ["float", "double", "long", "int", "bool", "half"]:
        assert_close(getattr(x, name)(), getattr(tx, name)())
    assert x.to(lt.float32) is x
    assert_close(x.to(x.double()), tx.to(tx.double()))
    assert_close(x.type(lt.int64), tx.type(torch.int64))
    assert x.type() == tx.type() == "torch.FloatTensor"


# ---------------------------------------------------------------------------------------------
# elementwise: binary operators, broadcasting, promotion

BINARY_OPS = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "truediv": lambda a, b: a / b, "floordiv": lambda a, b: a // b, "mod": lambda a, b: a % b,
    "lt": lambda a, b: a < b, "le": lambda a, b: a <= b, "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b, "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
}


def _binary(name, a, b, module):
    if name in ("maximum", "minimum"):
        return getattr(module, name)(a, b)
    return BINARY_OPS[name](a, b)


@pytest.mark.parametrize("name", list(BINARY_OPS) + ["maximum", "minimum"])
@pytest.mark.parametrize("dtypes", [("float32", "float32"), ("int64", "int64")])
def test_binary_ops_same_dtype(name, dtypes):
    a, ta = pair(make_array((3, 4), dtypes[0], 1))
    b, tb = pair(make_array((3, 4), dtypes[1], 2, nonzero=True))
    assert_close(_binary(name, a, b, lt), _binary(name, ta, tb, torch))


@pytest.mark.parametrize("name", ["add", "truediv", "floordiv", "mod", "maximum", "lt", "eq"])
def test_binary_ops_propagate_nan_and_inf(name):
    a, ta = pair(SPECIAL)
    b, tb = pair(np.roll(SPECIAL, 1))
    assert_close(_binary(name, a, b, lt), _binary(name, ta, tb, torch))


@pytest.mark.parametrize("dtypes", [("int64", "float32"), ("int32", "int64"), ("uint8", "int64"), ("bool", "int32"),
                                    ("float64", "float32"), ("float16", "float32"), ("uint8", "bool"),
                                    ("int32", "float16"), ("bool", "bool")])
@pytest.mark.parametrize("name", ["add", "mul", "truediv"])
def test_binary_type_promotion(name, dtypes):
    a, ta = pair(make_array((3, 4), dtypes[0], 1))
    b, tb = pair(make_array((3, 4), dtypes[1], 2, nonzero=True))
    if name == "truediv" and dtypes[1] == "bool":
        b, tb = pair(np.ones((3, 4), bool))
    assert_close(_binary(name, a, b, lt), _binary(name, ta, tb, torch))


@pytest.mark.parametrize("dtype", ["float32", "int64", "int32", "uint8", "bool"])
@pytest.mark.parametrize("scalar", [2, 2.5, True])
def test_python_scalar_promotion(dtype, scalar):
    a, ta = pair(make_array((3, 4), dtype, 3, nonzero=True))
    for fn in (lambda x: x + scalar, lambda x: scalar * x, lambda x: x / scalar, lambda x: x > scalar):
        assert_close(fn(a), fn(ta))
    for fn in (lambda x: x - scalar, lambda x: scalar - x):
        if dtype == "bool" or scalar is True:      # torch refuses subtraction involving bools
            with pytest.raises(RuntimeError) as ours:
                fn(a)
            with pytest.raises(RuntimeError) as theirs:
                fn(ta)
            assert str(ours.value) == str(theirs.value)
        else:
            assert_close(fn(a), fn(ta))


@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_reflected_scalar_operators(dtype):
    a, ta = pair(make_array((3, 4), dtype, 4, low=1, high=5, nonzero=True))
    for fn in (lambda x: 2 - x, lambda x: 1 / x, lambda x: 7 // x, lambda x: 7 % x, lambda x: 2 ** x,
               lambda x: 1.5 - x, lambda x: 3.0 / x, lambda x: 2.0 ** x, lambda x: x ** 2, lambda x: x ** 3,
               lambda x: x ** 0.5, lambda x: x ** 2.0, lambda x: -x, lambda x: abs(x)):
        assert_close(fn(a), fn(ta))


def test_zero_dim_tensors_promote_like_torch():
    a, ta = pair(make_array((3,), "int32", 5))
    s, ts = pair(np.array(2.5, np.float64))          # 0-d float64 + int32 vector -> float32
    assert_close(a + s, ta + ts)
    i, ti = pair(np.array(3, np.int64))              # 0-d int64 + int32 vector -> int32
    assert_close(a * i, ta * ti)
    f, tf = pair(make_array((3,), "float16", 5))
    assert_close(f + s, tf + ts)                     # 0-d float64 + float16 vector -> float16
    assert_close(s + i, ts + ti)                     # two 0-d tensors: ordinary promotion
    assert lt.result_type(a, 2.5) is lt.float32 and lt.promote_types(lt.int32, lt.uint8) is lt.int32


@pytest.mark.parametrize("shapes", [((3, 4), (4,)), ((3, 1), (1, 4)), ((3, 4), ()), ((2, 1, 4), (3, 1)),
                                    ((), ())])
def test_broadcasting(shapes):
    a, ta = pair(make_array(shapes[0], "float32", 6))
    b, tb = pair(make_array(shapes[1], "float32", 7))
    assert_close(a * b + a, ta * tb + ta)
    assert_close(lt.where(a > b, a, b), torch.where(ta > tb, ta, tb))


@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_integer_floor_division_and_remainder_sign_rules(dtype):
    a = np.array([7, -7, 7, -7, 0, 5, -1, 6], dtype)
    b = np.array([2, 2, -2, -2, 3, -5, 4, -4], dtype)
    (x, tx), (y, ty) = pair(a), pair(b)
    assert_close(x // y, tx // ty)
    assert_close(x % y, tx % ty)
    assert_close(lt.fmod(x, y), torch.fmod(tx, ty))
    assert_close(lt.div(x, y, rounding_mode="trunc"), torch.div(tx, ty, rounding_mode="trunc"))
    assert_close(lt.div(x, y, rounding_mode="floor"), torch.div(tx, ty, rounding_mode="floor"))
    assert_close(x / y, tx / ty)
    assert_close(x // 3, tx // 3)
    assert_close(x % -3, tx % -3)


def test_float_floor_division_and_remainder_sign_rules():
    a = np.array([7.5, -7.5, 7.5, -7.5, 0.0, 5.0, -1.0, 1.0], np.float32)
    b = np.array([2.0, 2.0, -2.0, -2.0, 3.0, -5.0, 0.0, np.inf], np.float32)
    (x, tx), (y, ty) = pair(a), pair(b)
    assert_close(x // y, tx // ty)
    assert_close(x % y, tx % ty)
    assert_close(lt.fmod(x, y), torch.fmod(tx, ty))


def test_pow_variants():
    x, tx = pair(np.array([[0.5, 2.0, 3.0], [1.0, 0.0, 4.0]], np.float32))
    e, te = pair(np.array([[2.0, -1.0, 0.5], [3.0, 2.0, 0.0]], np.float32))
    assert_close(x ** e, tx ** te)
    assert_close(lt.pow(x, 3), torch.pow(tx, 3))
    assert_close(lt.pow(2, x), torch.pow(2, tx))
    i, ti = pair(np.array([[1, 2, 3], [4, 0, -2]], np.int64))
    assert_close(i ** 2, ti ** 2)
    assert_close(i ** 2.0, ti ** 2.0)
    assert_close(i ** 1, ti ** 1)
    assert_close(i.pow(i.abs()), ti.pow(ti.abs()))
    assert_close(2 ** i.abs(), 2 ** ti.abs())


UNARY_FLOAT = ["neg", "abs", "sign", "exp", "log", "log2", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tanh",
               "sigmoid", "relu", "floor", "ceil", "round", "trunc", "reciprocal", "square", "isnan", "isinf",
               "isfinite"]


@pytest.mark.parametrize("name", UNARY_FLOAT)
def test_unary_float_ops_with_special_values(name):
    x, tx = pair(SPECIAL)
    assert_close(getattr(x, name)(), getattr(tx, name)())
    assert_close(getattr(lt, name)(x), getattr(torch, name)(tx))


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "sin", "tanh", "sigmoid", "round", "abs", "neg"])
@pytest.mark.parametrize("dtype", ["float64", "float16"])
def test_unary_other_float_dtypes(name, dtype):
    x, tx = pair(SPECIAL.astype(dtype) / 2)
    assert_close(getattr(x, name)(), getattr(tx, name)())


@pytest.mark.parametrize("name", ["neg", "abs", "sign", "exp", "sqrt", "sigmoid", "relu", "floor", "round",
                                  "isnan", "isinf", "isfinite", "square"])
@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_unary_ops_on_integers(name, dtype):
    x, tx = pair(make_array((3, 4), dtype, 8))
    assert_close(getattr(x, name)(), getattr(tx, name)())


def test_round_half_to_even_and_decimals():
    x, tx = pair(np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1.25, 2.675, -3.14159], np.float32))
    assert_close(x.round(), tx.round())
    assert_close(x.round(decimals=2), tx.round(decimals=2))


@pytest.mark.parametrize("bounds", [(-0.5, 0.5), (None, 0.0), (0.0, None), (1, 2)])
def test_clamp_and_clip(bounds):
    x, tx = pair(SPECIAL)
    assert_close(x.clamp(*bounds), tx.clamp(*bounds))
    assert_close(lt.clip(x, *bounds), torch.clip(tx, *bounds))
    i, ti = pair(make_array((3, 4), "int64", 9))
    if bounds != (-0.5, 0.5):
        assert_close(i.clamp(*bounds), ti.clamp(*bounds))


def test_clamp_with_tensor_bounds():
    x, tx = pair(make_array((3, 4), "float32", 10))
    lo, tlo = pair(make_array((4,), "float32", 11) - 1)
    assert_close(x.clamp(min=lo), tx.clamp(min=tlo))
    assert_close(x.clamp(lo, lo + 1), tx.clamp(tlo, tlo + 1))


def test_maximum_minimum_propagate_nan():
    x, tx = pair(SPECIAL)
    y, ty = pair(np.flip(SPECIAL).copy())
    assert_close(lt.maximum(x, y), torch.maximum(tx, ty))
    assert_close(lt.minimum(x, y), torch.minimum(tx, ty))


def test_where_variants():
    c, tc = pair(make_array((3, 4), "bool", 12))
    x, tx = pair(make_array((3, 4), "float32", 13))
    i, ti = pair(make_array((4,), "int64", 14))
    assert_close(lt.where(c, x, i), torch.where(tc, tx, ti))
    assert_close(lt.where(c, x, 0.0), torch.where(tc, tx, 0.0))
    assert_close(lt.where(c, 1.0, x), torch.where(tc, 1.0, tx))
    assert_close(lt.where(c, i, 5), torch.where(tc, ti, 5))
    assert_close(x.where(c, -x), tx.where(tc, -tx)) if hasattr(x, "where") else None
    assert [p.tolist() for p in lt.where(c)] == [p.tolist() for p in torch.where(tc)]


@pytest.mark.parametrize("dtype", ["bool", "int64", "int32", "uint8"])
def test_bitwise_ops(dtype):
    a, ta = pair(make_array((3, 4), dtype, 15, low=-8, high=8))
    b, tb = pair(make_array((3, 4), dtype, 16, low=-8, high=8))
    assert_close(a & b, ta & tb)
    assert_close(a | b, ta | tb)
    assert_close(a ^ b, ta ^ tb)
    assert_close(~a, ~ta)
    assert_close(a & True if dtype == "bool" else a & 3, ta & True if dtype == "bool" else ta & 3)


def test_logical_ops():
    a, ta = pair(make_array((3, 4), "float32", 17).round())
    b, tb = pair(make_array((3, 4), "int64", 18))
    assert_close(lt.logical_and(a, b), torch.logical_and(ta, tb))
    assert_close(lt.logical_or(a, b), torch.logical_or(ta, tb))
    assert_close(lt.logical_xor(a, b), torch.logical_xor(ta, tb))
    assert_close(lt.logical_not(a), torch.logical_not(ta))


def test_allclose_isclose_equal():
    x, tx = pair(SPECIAL)
    y, ty = pair(SPECIAL + 1e-7)
    assert lt.allclose(x, y) is torch.allclose(tx, ty) is False                  # NaN
    assert lt.allclose(x, y, equal_nan=True) is torch.allclose(tx, ty, equal_nan=True) is False   # 0 vs 1e-7
    assert lt.allclose(x[1:], y[1:], atol=1e-6) is torch.allclose(tx[1:], ty[1:], atol=1e-6) is True
    assert lt.allclose(x, x + 1e-3, equal_nan=True) is torch.allclose(tx, tx + 1e-3, equal_nan=True) is False
    assert_close(lt.isclose(x, y, equal_nan=True), torch.isclose(tx, ty, equal_nan=True))
    assert x.allclose(x + 1e-9, equal_nan=True)
    assert lt.equal(x[1:], x[1:]) and not lt.equal(x, x)      # NaN != NaN


def test_inplace_ops_follow_torch():
    base = make_array((3, 4), "float32", 19)
    x, tx = pair(base)
    y, ty = pair(make_array((4,), "float32", 20, nonzero=True))
    for ours, theirs in ((x.add_(y), tx.add_(ty)), (x.sub_(1.5), tx.sub_(1.5)), (x.mul_(y), tx.mul_(ty)),
                         (x.div_(2), tx.div_(2)), (x.clamp_(-0.5, 0.5), tx.clamp_(-0.5, 0.5)),
                         (x.add_(y, alpha=2), tx.add_(ty, alpha=2))):
        assert ours is x
        assert_close(x, tx)
    x += 1
    tx += 1
    x *= y
    tx *= ty
    assert_close(x, tx)
    assert x.fill_(2.5) is x and x.zero_() is x
    assert_close(x, tx.zero_())
    assert_close(x.fill_(3), tx.fill_(3))
    assert_close(x.copy_(y), tx.copy_(ty))              # broadcast copy
    i, ti = pair(make_array((3, 4), "int64", 21))
    assert_close(i.copy_(x), ti.copy_(tx))              # copy_ casts
    assert_close(i.add_(3), ti.add_(3))
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output type Long"):
        i.add_(1.5)
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output type Long"):
        ti.add_(1.5)


def test_inplace_on_views_do_not_need_to_alias_but_values_match():
    x, tx = pair(make_array((3, 4), "float32", 22))
    v, tv = x.t(), tx.t()
    assert_close(v.mul_(2), tv.mul_(2))


def test_inplace_shape_mismatch_is_an_error():
    x, tx = pair(make_array((4,), "float32", 23))
    y, ty = pair(make_array((3, 4), "float32", 24))
    with pytest.raises(RuntimeError) as ours:
        x.add_(y)
    with pytest.raises(RuntimeError) as theirs:
        tx.add_(ty)
    assert str(ours.value) == str(theirs.value)


# ---------------------------------------------------------------------------------------------
# reductions

REDUCTIONS = ["sum", "mean", "prod", "amax", "amin", "var", "std", "logsumexp"]
DIMS = [None, 0, 1, -1, (0, 1), (-1, 0)]


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("keepdim", [False, True])
def test_float_reductions(name, dim, keepdim):
    x, tx = pair(make_array((3, 4), "float32", 25))
    if dim is None:
        if name == "logsumexp":
            return
        args = {} if name not in ("amax", "amin") else {"dim": ()} if False else {}
        assert_close(getattr(x, name)(**args), getattr(tx, name)(**args), reduction=True)
        return
    if name == "prod" and isinstance(dim, tuple):
        return                                         # torch.prod takes one dim
    assert_close(getattr(x, name)(dim, keepdim=keepdim), getattr(tx, name)(dim, keepdim=keepdim), reduction=True)
    assert_close(getattr(lt, name)(x, dim, keepdim=keepdim), getattr(torch, name)(tx, dim, keepdim=keepdim),
                 reduction=True)


@pytest.mark.parametrize("name", ["sum", "prod", "amax", "amin", "all", "any", "max", "min"])
@pytest.mark.parametrize("dtype", ["int64", "int32", "bool", "uint8"])
def test_integer_reductions(name, dtype):
    x, tx = pair(make_array((3, 4), dtype, 26, low=-3, high=4))
    assert_close(getattr(x, name)(), getattr(tx, name)())
    if name in ("max", "min"):
        assert_close(getattr(x, name)(1).values, getattr(tx, name)(1).values)
        assert_close(getattr(x, name)(1).indices, getattr(tx, name)(1).indices)
    else:
        assert_close(getattr(x, name)(1), getattr(tx, name)(1))
        assert_close(getattr(x, name)(0, keepdim=True), getattr(tx, name)(0, keepdim=True))


def test_reductions_with_nan_and_inf():
    x, tx = pair(SPECIAL)
    for fn in (lambda t: t.sum(1), lambda t: t.amax(1), lambda t: t.amin(0), lambda t: t.mean(),
               lambda t: t.max(), lambda t: t.argmax(1), lambda t: t.argmin(0), lambda t: t.prod(1),
               lambda t: t.logsumexp(1), lambda t: t.softmax(1), lambda t: t.log_softmax(0), lambda t: t.cumsum(1)):
        assert_close(fn(x), fn(tx), reduction=True)
    m, tm = pair(SPECIAL[1:])
    assert_close(m.max(1).values, tm.max(1).values)
    assert_close(m.max(1).indices, tm.max(1).indices)
    inf, tinf = pair(np.array([[np.inf, 1.0], [-np.inf, -np.inf]], np.float32))
    assert_close(inf.logsumexp(1), tinf.logsumexp(1))
    assert_close(inf.softmax(1), tinf.softmax(1))


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_with_dim_return_values_and_indices(name, dim, keepdim):
    array = make_array((3, 4), "float32", 27)
    array[1, 2] = array[1, 0]                          # ties: the first index wins, as in torch
    x, tx = pair(array)
    ours, theirs = getattr(x, name)(dim, keepdim), getattr(tx, name)(dim, keepdim)
    assert_close(ours.values, theirs.values)
    assert_close(ours.indices, theirs.indices)
    values, indices = ours                             # unpacks like a tuple
    assert_close(values, theirs[0])
    assert_close(indices, theirs[1])
    assert_close(getattr(lt, name)(x, dim=dim, keepdim=keepdim)[0], getattr(torch, name)(tx, dim=dim, keepdim=keepdim)[0])
    assert_close(getattr(x, "arg" + name)(dim, keepdim), getattr(tx, "arg" + name)(dim, keepdim))


def test_max_named_tuple_repr_like_torch():
    x, tx = pair(np.array([[1.0, 5.0], [3.0, 2.0]], np.float32))
    assert repr(x.max(1)) == repr(tx.max(1))
    assert repr(x.min(0)) == repr(tx.min(0))
    assert repr(lt.max(x, 1, keepdim=True)) == repr(torch.max(tx, 1, keepdim=True))
    assert type(x.max(1)).__name__ == "max"


def test_argmax_argmin_without_dim():
    x, tx = pair(make_array((3, 4), "float32", 28))
    assert_close(x.argmax(), tx.argmax())
    assert_close(x.argmin(), tx.argmin())
    assert_close(x.argmax(keepdim=True), tx.argmax(keepdim=True))


@pytest.mark.parametrize("correction", [0, 1, 2])
def test_var_std_correction(correction):
    x, tx = pair(make_array((3, 4), "float32", 29))
    assert_close(x.var(1, correction=correction), tx.var(1, correction=correction), reduction=True)
    assert_close(x.std(0, correction=correction), tx.std(0, correction=correction), reduction=True)
    assert_close(x.var(unbiased=False), tx.var(unbiased=False), reduction=True)


def test_all_any():
    x, tx = pair(make_array((3, 4), "bool", 30))
    for fn in (lambda t: t.all(), lambda t: t.any(), lambda t: t.all(1), lambda t: t.any(0, keepdim=True),
               lambda t: (t * 0).any()):
        assert_close(fn(x), fn(tx))
    f, tf = pair(np.array([[0.0, 1.0], [np.nan, 2.0]], np.float32))
    assert_close(f.all(1), tf.all(1))
    assert_close(f.any(0), tf.any(0))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_log_softmax(dim):
    x, tx = pair(make_array((3, 4), "float32", 31) * 10)
    assert_close(x.softmax(dim), tx.softmax(dim), reduction=True)
    assert_close(lt.log_softmax(x, dim), torch.log_softmax(tx, dim), reduction=True)
    i, ti = pair(make_array((3, 4), "int64", 32))
    assert_close(lt.softmax(i, dim, dtype=lt.float64), torch.softmax(ti, dim, dtype=torch.float64), reduction=True)


@pytest.mark.parametrize("dtype", ["float32", "int64", "int32", "bool"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumsum(dtype, dim):
    x, tx = pair(make_array((3, 4), dtype, 33))
    assert_close(x.cumsum(dim), tx.cumsum(dim), reduction=True)
    assert_close(lt.cumsum(x, dim, dtype=lt.float64), torch.cumsum(tx, dim, dtype=torch.float64), reduction=True)


def test_reductions_of_zero_dim_and_three_dim_tensors():
    s, ts = pair(np.array(2.5, np.float32))
    for fn in (lambda t: t.sum(), lambda t: t.mean(), lambda t: t.amax(), lambda t: t.sum(0),
               lambda t: t.max(0).values, lambda t: t.argmax(), lambda t: t.softmax(0), lambda t: t.cumsum(0),
               lambda t: t.prod(), lambda t: t.sum(-1, keepdim=True), lambda t: t.logsumexp(0)):
        assert_close(fn(s), fn(ts), reduction=True)
    x, tx = pair(make_array((2, 3, 4), "float32", 34))
    for fn in (lambda t: t.sum((0, 2)), lambda t: t.mean(1, keepdim=True), lambda t: t.amax((0, 2)),
               lambda t: t.var((-1, -3)), lambda t: t.max(1).indices, lambda t: t.softmax(1)):
        assert_close(fn(x), fn(tx), reduction=True)


# Reductions over leading axes with the kept axes inside: the kernel loops the reduced axes outside
# and accumulates a row of values (compiler.codegen.numba_cpu._column_body). Shapes are the ones
# above, so most of these kernels are shared.
COLUMN_VIEWS = {
    "contiguous": lambda t: t,
    "transposed": lambda t: t.reshape(4, 3).t(),        # reduced axis contiguous: the row loop stays
    "strided": lambda t: t.flip(0)[:, ::2],
    "broadcast": lambda t: t[:1].expand(3, 4) * t,
}


@pytest.mark.parametrize("view", list(COLUMN_VIEWS))
def test_leading_axis_reductions_of_views(view):
    x, tx = pair(make_array((3, 4), "float32", 40))
    ours, theirs = COLUMN_VIEWS[view](x), COLUMN_VIEWS[view](tx)
    for fn in (lambda t: t.sum(0), lambda t: t.amax(0, keepdim=True), lambda t: t.max(0).indices):
        assert_close(fn(ours), fn(theirs), reduction=True)


def test_leading_axis_reductions_match_torch():
    x, tx = pair(make_array((3, 4), "float32", 41))
    for fn in (lambda t: t.sum(0, keepdim=True), lambda t: t.mean(0), lambda t: t.amin(0), lambda t: t.prod(0),
               lambda t: t.argmin(0), lambda t: t.std(0), lambda t: t.logsumexp(0), lambda t: t.softmax(0),
               lambda t: t.sum(0) + t.amax(0) * 2,
               lambda t: (t - t.mean(0, keepdim=True)) / (t.var(0, keepdim=True, unbiased=False) + 1e-5).sqrt()):
        assert_close(fn(x), fn(tx), reduction=True)
    c, tc = pair(make_array((2, 3, 4), "float32", 42))
    for fn in (lambda t: t.sum(0), lambda t: t.sum((0, 2)), lambda t: t.sum((0, 1), keepdim=True),
               lambda t: t.amax(1), lambda t: t.mean(0, keepdim=True), lambda t: t.argmax(0),
               lambda t: t.permute(2, 0, 1).sum(1), lambda t: t[:, ::2].softmax(0)):
        assert_close(fn(c), fn(tc), reduction=True)


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "bool", "float64", "float16"])
def test_leading_axis_reductions_of_other_dtypes(dtype):
    x, tx = pair(make_array((3, 4), dtype, 43, low=-3, high=4))
    fns = [lambda t: t.sum(0), lambda t: t.amax(0), lambda t: t.amin(0, keepdim=True)]
    if dtype != "bool":
        fns += [lambda t: t.prod(0), lambda t: t.argmax(0)]
    if dtype.startswith("float"):
        fns += [lambda t: t.mean(0), lambda t: t.var(0)]
    for fn in fns:
        assert_close(fn(x), fn(tx), reduction=True)
    c, tc = pair(make_array((2, 3, 4), dtype, 44))
    assert_close(c.sum(0), tc.sum(0), reduction=True)


def test_leading_axis_reductions_propagate_nan_and_inf():
    x, tx = pair(SPECIAL)                  # NaN and +-inf in the first column, finite columns beside
    for fn in (lambda t: t.sum(0), lambda t: t.amax(0), lambda t: t.max(0).indices, lambda t: t.mean(0),
               lambda t: t.softmax(0), lambda t: t.logsumexp(0)):
        assert_close(fn(x), fn(tx), reduction=True)


def test_leading_axis_float32_sum_is_accurate():
    """Summed over 4096 rows, float32 stays within a few ulps of the exact sum (torch sums in blocks;
    a plain float32 running sum is off by ~1e-4 here)."""
    array = (np.random.default_rng(45).random((4096, 3)) + 0.1).astype(np.float32)
    exact = array.astype(np.float64).sum(0)
    got = lt.tensor(array).sum(0).numpy().astype(np.float64)
    np.testing.assert_allclose(got, exact, rtol=2e-7)


def test_leading_axis_reductions_in_tiles_and_threads(monkeypatch):
    """Tiny accumulator tiles and a parallel threshold of one element: the tile loop (ragged too),
    the parallel regions of the accumulators and the lead-axis loop all run on small inputs."""
    from collections import OrderedDict
    from importlib import import_module
    from compiler.codegen import numba_cpu
    monkeypatch.setattr(numba_cpu, "ACC_TILE", 5)
    monkeypatch.setattr(numba_cpu, "PARALLEL_MIN_ELEMENTS", 1)
    monkeypatch.setattr(import_module("compiler.realize"), "_schedules", OrderedDict())   # plan again
    c, tc = pair(make_array((2, 3, 4), "float32", 46))
    for fn in (lambda t: t.sum(0), lambda t: t.softmax(1), lambda t: t.reshape(2, 12).amax(0) + t[0, 0, 0]):
        assert_close(fn(c), fn(tc), reduction=True)


def test_sum_dtype_argument_and_integer_promotion():
    i, ti = pair(make_array((3, 4), "int32", 35))
    assert_close(i.sum(), ti.sum())
    assert_close(i.sum(dtype=lt.float64), ti.sum(dtype=torch.float64))
    b, tb = pair(make_array((3, 4), "bool", 36))
    assert_close(b.sum(0), tb.sum(0))
    assert_close(b.float().mean(), tb.float().mean())


def test_mean_of_integers_is_an_error_like_torch():
    i, ti = pair(make_array((3, 4), "int64", 37))
    with pytest.raises(RuntimeError) as ours:
        i.mean()
    with pytest.raises(RuntimeError) as theirs:
        ti.mean()
    assert str(ours.value) == str(theirs.value)


# ---------------------------------------------------------------------------------------------
# matmul

@pytest.mark.parametrize("shapes", [((4,), (4,)), ((3, 4), (4,)), ((4,), (4, 5)), ((3, 4), (4, 5)),
                                    ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 5)),
                                    ((2, 3, 4), (4,)), ((4,), (2, 4, 5))])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_shapes(shapes, dtype, counters):
    a, ta = pair(make_array(shapes[0], dtype, 38))
    b, tb = pair(make_array(shapes[1], dtype, 39))
    result = a @ b
    counters_before = counters()["library_calls"]
    assert_close(result, ta @ tb, reduction=True)
    assert counters()["library_calls"] == counters_before + 1
    assert_close(lt.matmul(a, b), torch.matmul(ta, tb), reduction=True)


def test_mm_bmm_dot_outer_mv(counters):
    a, ta = pair(make_array((3, 4), "float32", 40))
    b, tb = pair(make_array((4, 5), "float32", 41))
    v, tv = pair(make_array((4,), "float32", 42))
    w, tw = pair(make_array((3,), "float32", 43))
    p, tp = pair(make_array((2, 3, 4), "float32", 44))
    q, tq = pair(make_array((2, 4, 5), "float32", 45))
    assert_close(lt.mm(a, b), torch.mm(ta, tb), reduction=True)
    assert_close(a.mm(b), ta.mm(tb), reduction=True)
    assert_close(lt.bmm(p, q), torch.bmm(tp, tq), reduction=True)
    assert_close(lt.dot(v, v), torch.dot(tv, tv), reduction=True)
    assert_close(lt.mv(a, v), torch.mv(ta, tv), reduction=True)
    assert counters()["library_calls"] == 5
    assert_close(lt.outer(w, v), torch.outer(tw, tv))
    assert_close(lt.addmm(w.reshape(3, 1), a, b), torch.addmm(tw.reshape(3, 1), ta, tb), reduction=True)
    i, ti = pair(make_array((3, 4), "int64", 46))
    j, tj = pair(make_array((4, 2), "int64", 47))
    assert_close(i @ j, ti @ tj)


def test_matmul_of_non_contiguous_views(counters):
    a, ta = pair(make_array((4, 3), "float32", 48))
    b, tb = pair(make_array((5, 8), "float32", 49))
    bv, tbv = b.t()[::2], tb.t()[::2]                  # (4, 5), strided both ways
    assert_close(a.t() @ bv, ta.t() @ tbv, reduction=True)
    c, tc = pair(make_array((1, 4), "float32", 50))
    assert_close(c.expand(3, 4) @ bv, tc.expand(3, 4) @ tbv, reduction=True)
    assert_close((a.t() * 2) @ bv, (ta.t() * 2) @ tbv, reduction=True)
    assert_close(a.T.mT, ta.T.mT)


# ---------------------------------------------------------------------------------------------
# realization, conversion to Python, printing

def test_numpy_item_tolist_and_python_conversions():
    x, tx = pair(np.array([[1.5, -2.0], [3.25, 0.0]], np.float32))
    np.testing.assert_array_equal(x.numpy(), tx.numpy())
    assert x.tolist() == tx.tolist()
    assert x[0, 0].item() == tx[0, 0].item() == 1.5
    assert isinstance(x.sum().item(), float)
    i, ti = pair(np.array([3, 4], np.int64))
    assert i[1].item() == 4 and isinstance(i[1].item(), int) and i.tolist() == ti.tolist()
    assert isinstance(i.tolist()[0], int)
    b, tb = pair(np.array([True, False]))
    assert b.tolist() == tb.tolist() and isinstance(b[0].item(), bool)
    assert float(x[1, 0]) == 3.25 and int(x[1, 0]) == 3 and bool(x[0, 0]) is True and bool(x[1, 1]) is False
    assert int(i[0]) == 3 and float(i[0]) == 3.0 and [1, 2, 3, 4, 5][i[0]] == 4
    assert lt.tensor(2.5).tolist() == torch.tensor(2.5).tolist() == 2.5
    assert x.sum().numpy().shape == () and x.realize() is x
    with pytest.raises(RuntimeError) as ours:
        x.item()
    with pytest.raises(RuntimeError) as theirs:
        tx.item()
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(RuntimeError) as ours:
        bool(x)
    with pytest.raises(RuntimeError) as theirs:
        bool(tx)
    assert str(ours.value) == str(theirs.value)


def test_numpy_of_requires_grad_tensor_is_an_error_like_torch():
    x, tx = pair(np.ones(2, np.float32), requires_grad=True)
    with pytest.raises(RuntimeError) as ours:
        x.numpy()
    with pytest.raises(RuntimeError) as theirs:
        tx.numpy()
    assert str(ours.value) == str(theirs.value)
    np.testing.assert_array_equal(x.detach().numpy(), tx.detach().numpy())


def test_format_one_element_tensors():
    x, tx = pair(np.array([3.14159], np.float32))
    for spec in ("{:.2f}", "{:.3e}", "{:8.1f}", "{}"):
        assert spec.format(x.sum()) == spec.format(tx.sum())
        assert spec.format(x[0]) == spec.format(tx[0])
    assert "{:.2f}".format(x) == "3.14"      # torch only formats 0-d tensors; one element is enough here
    assert "{}".format(x) == "{}".format(tx)
    i, ti = pair(np.array(7, np.int64))
    assert "{:d}".format(i) == "{:d}".format(ti) == "7"
    assert f"{i:>4}" == f"{ti:>4}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_repr_matches_torch(dtype):
    array = (make_array((2, 3), dtype, 51) * (3 if dtype != "bool" else 1)).astype(dtype)
    x, tx = pair(array)
    assert repr(x) == repr(tx)
    assert str(x[0]) == str(tx[0])
    assert repr(x[1, 2]) == repr(tx[1, 2])
    assert repr(x.reshape(-1)[:0]) == repr(tx.reshape(-1)[:0])


def test_repr_with_requires_grad_and_grad_fn():
    x, tx = pair(np.array([[1.0, 2.5], [-3.0, 4.0]], np.float32), requires_grad=True)
    assert repr(x) == repr(tx)
    assert repr(x.sum()).split("grad_fn")[0] == repr(tx.sum()).split("grad_fn")[0]
    assert repr((x * 2)) == repr(tx * 2)
    y, ty = pair(np.array([1.0, 2.0], np.float64), requires_grad=True)
    assert repr(y) == repr(ty)
    assert str(x.dtype) == str(tx.dtype) and repr(x.shape) == repr(tx.shape) and str(x.device) == str(tx.device)


def test_print_after_computation(capsys):
    x, tx = pair(make_array((2, 3), "float32", 52))
    print(x.exp() / 3)
    ours = capsys.readouterr().out
    print(tx.exp() / 3)
    assert ours == capsys.readouterr().out


def test_metadata_never_computes(counters):
    x = lt.tensor(make_array((3, 4), "float32", 53))
    y = ((x * 2).exp() + 1).t()
    before = counters()
    assert y.shape == (4, 3) and y.size() == (4, 3) and y.size(0) == 4 and y.size(-1) == 3
    assert y.dim() == 2 and y.ndim == 2 and y.numel() == 12 and y.dtype is lt.float32 and len(y) == 4
    assert str(y.device) == "cpu" and y.is_floating_point() and y.shape.numel() == 12
    rows = list(y)                       # iteration makes row views; it computes nothing
    assert len(rows) == 4 and rows[0].shape == (3,)
    assert counters() == before
    assert y.size() == torch.zeros(4, 3).size() and repr(y.size()) == repr(torch.zeros(4, 3).size())
    with pytest.raises(TypeError) as ours:
        len(lt.tensor(1.0))
    with pytest.raises(TypeError) as theirs:
        len(torch.tensor(1.0))
    assert str(ours.value) == str(theirs.value)


def test_realize_several_tensors_at_once(counters):
    x = lt.tensor(make_array((3, 4), "float32", 54))
    a, b = x.exp(), x.sin()
    lt.realize(a, b)
    launches = counters()["kernel_launches"]
    np.testing.assert_allclose(a.numpy(), np.exp(x.numpy()), rtol=1e-5)
    np.testing.assert_allclose(b.numpy(), np.sin(x.numpy()), rtol=1e-5, atol=1e-6)
    assert counters()["kernel_launches"] == launches      # already computed


# ---------------------------------------------------------------------------------------------
# non-contiguous views and 0-d tensors as inputs everywhere

def _views(t):
    """The same (3, 4) values reached through several non-contiguous views."""
    return {
        "transposed": lambda: t[0].t(),                           # t[0] is (4, 3)
        "stepped": lambda: t[1][:, ::2],                          # (3, 8) -> (3, 4)
        "expanded": lambda: t[2][:1].expand(3, 4),
        "flipped": lambda: t[3].flip(0),
    }


@pytest.mark.parametrize("view", ["transposed", "stepped", "expanded", "flipped"])
def test_non_contiguous_inputs(view):
    arrays = [make_array((4, 3), "float32", 55), make_array((3, 8), "float32", 56),
              make_array((3, 4), "float32", 57), make_array((3, 4), "float32", 58)]
    ours = _views([lt.tensor(a) for a in arrays])[view]()
    theirs = _views([torch.tensor(a) for a in arrays])[view]()
    y, ty = pair(make_array((3, 4), "float32", 59))
    for fn in (lambda a, b: a + b, lambda a, b: (a * b).sum(1), lambda a, b: a.exp().amax(0),
               lambda a, b: a.softmax(1), lambda a, b: a @ b.t(), lambda a, b: a.reshape(-1),
               lambda a, b: a.reshape(2, 6).sum(0), lambda a, b: a[:, 1:3], lambda a, b: a.cumsum(1),
               lambda a, b: lt.cat([a, b]) if isinstance(a, lt.Tensor) else torch.cat([a, b]),
               lambda a, b: a.max(1).indices, lambda a, b: a.contiguous().view(12)):
        assert_close(fn(ours, y), fn(theirs, ty), reduction=True)
    assert ours.tolist() == theirs.tolist()
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_zero_dim_tensors_everywhere():
    s, ts = pair(np.array(1.5, np.float32))
    x, tx = pair(make_array((3, 4), "float32", 60))
    for fn in (lambda a, b: a + b, lambda a, b: a * 2, lambda a, b: a.exp(), lambda a, b: a.reshape(1, 1),
               lambda a, b: a.unsqueeze(0), lambda a, b: a.expand(2, 3), lambda a, b: a[None, ...],
               lambda a, b: a[...], lambda a, b: a.clamp(0, 1), lambda a, b: b.clamp(max=a)):
        assert_close(fn(s, x), fn(ts, tx))
    assert s.item() == 1.5 and s.dim() == 0 and s.shape == () and s.numel() == 1
    assert float(s) == 1.5 and s.tolist() == 1.5


def test_sums_of_cancelling_terms_keep_nan_and_inf():
    """A sum's reassociable add must not let LLVM cancel x - x (NaN for a NaN or infinite x), while
    ordinary sums keep their fast path."""
    values = np.array([1.0, np.nan, 2.0, np.inf, -3.0] * 40, np.float32)
    x = lt.from_numpy(values)
    t = torch.from_numpy(values)
    for got, want in [((x - x).sum(), (t - t).sum()), (((x + 1) - x).sum(), ((t + 1) - t).sum()),
                      ((x - x).mean(), (t - t).mean()), ((x * x).sum(), (t * t).sum())]:
        assert np.isnan(got.item()) == np.isnan(want.item()) and (np.isnan(want.item()) or got.item() == want.item())
    finite = lt.arange(200.0)
    assert ((finite + 1) - finite).sum().item() == 200.0
