"""The graph-building hot path: its fast paths and caches give exactly what the general path gives.

`_elementwise` builds most ops without promotion or broadcasting, nodes are interned in a table of
weak references keyed by structure, and broadcast shapes and grad_fn names are cached. Most checks
here read metadata only (dtype, shape, node identity), so they compile no kernels.
"""
import gc

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import compiler  # noqa: E402
import lazytorch as lt  # noqa: E402
from compiler import dtypes  # noqa: E402
from compiler.ir import node as ir  # noqa: E402
from compiler.ir.ops import Op  # noqa: E402
from conftest import assert_close  # noqa: E402
from lazytorch import _tensor  # noqa: E402

DTYPES = ["float32", "float64", "float16", "int64", "int32", "uint8", "bool"]


def _zeros(shape, dtype):
    return lt.zeros(shape, dtype=getattr(lt, dtype)), torch.zeros(shape, dtype=getattr(torch, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_result_types_match_torch(dtype):
    # a (2, 3) tensor with every kind of other operand, on either side: same-shape tensors, 0-d
    # tensors and broadcast rows of every dtype, and Python scalars
    a, ta = _zeros((2, 3), dtype)
    others = [_zeros(shape, other) for other in DTYPES for shape in [(2, 3), (), (3,)]]
    others += [(s, s) for s in (True, 2, 2.5)]
    ops = [lambda x, y: x + y, lambda x, y: x * y, lambda x, y: x / y, lambda x, y: x < y, lambda x, y: x == y]
    for other, t_other in others:
        for op in ops:
            for ours, theirs in ((op(a, other), op(ta, t_other)), (op(other, a), op(t_other, ta))):
                assert str(ours.dtype) == str(theirs.dtype), (dtype, other, op)
                assert tuple(ours.shape) == tuple(theirs.shape)
    for op in (lt.exp, lt.sqrt, lt.tanh, lt.sigmoid):
        assert str(op(a).dtype) == str(getattr(torch, op.__name__)(ta).dtype)


def test_plain_elementwise_values_keep_operand_order():
    x, tx = (t(np.linspace(0.5, 2.0, 6, dtype=np.float32).reshape(2, 3)) for t in (lt.tensor, torch.tensor))
    y, ty = x * 3, tx * 3
    expression = lambda x, y: (1.5 - x) / (x + 4.0) * (y - x) - 0.25 * x + 2 ** x / y   # noqa: E731
    assert_close(expression(x, y), expression(tx, ty))


def test_fast_path_records_grad_like_the_general_path():
    x = lt.ones(3, requires_grad=True)
    y = x * 2
    assert y.requires_grad and y.grad_fn.name() == "MulBackward0"
    assert (1 - x).grad_fn.name() == "SubBackward0" and lt.exp(x).grad_fn.name() == "ExpBackward0"
    assert (x / x).grad_fn.name() == "DivBackward0"      # (the cached names are per op)
    with lt.no_grad():
        z = x * 2
    assert not z.requires_grad and z.node.op is Op.DETACH
    assert not (x > 0).requires_grad
    n = lt.ones(3, dtype=lt.int64)
    assert not (n * 2).requires_grad and (n * 2).dtype is lt.int64 and (n / 2).dtype is lt.float32


def test_nodes_are_interned_by_structure():
    f32 = dtypes.float32
    x, y = ir.buffer(np.zeros(3, np.float32)), ir.buffer(np.zeros(3, np.float32))
    assert ir.binary(Op.ADD, x, y) is ir.binary(Op.ADD, x, y)
    assert ir.binary(Op.ADD, x, y) is not ir.binary(Op.ADD, y, x)
    assert ir.binary(Op.ADD, x, y) is not ir.binary(Op.MUL, x, y)
    assert ir.const(1.0, f32, (3,)) is ir.const(1.0, f32, (3,))
    assert ir.const(1.0, f32, (3,)) is not ir.const(1.0, dtypes.float64, (3,))
    assert ir.const(1.0, f32, (3,)) is not ir.const(1.0, f32, (1, 3))
    assert ir.const(0.0, f32, (3,)) is not ir.const(-0.0, f32, (3,))
    assert ir.const(1.0, f32, (3,), "cuda") is not ir.const(1.0, f32, (3,))


def test_interned_entries_leave_the_table_with_their_nodes():
    x = ir.buffer(np.zeros(3, np.float32))
    gc.collect()
    before = len(ir._interned)
    node = ir.unary(Op.NEG, ir.unary(Op.EXP, x))
    assert len(ir._interned) == before + 2
    del node
    assert len(ir._interned) == before
    # inputs that died and were replaced never make a stale node come back
    for _ in range(200):
        fresh = ir.buffer(np.zeros(3, np.float32))
        assert ir.unary(Op.NEG, fresh).inputs[0] is fresh


def test_a_realized_node_is_not_reused_for_a_new_expression():
    x = ir.buffer(np.arange(3, dtype=np.float32))
    first = ir.unary(Op.NEG, x)
    compiler.realize([first])
    second = ir.unary(Op.NEG, x)
    assert second is not first and ir.unary(Op.NEG, x) is second
    compiler.realize([second, second, first])        # (each node once; realized ones skipped)
    np.testing.assert_array_equal(second.realized, -np.arange(3, dtype=np.float32))
    detached = ir.unary(Op.DETACH, ir.binary(Op.ADD, x, x))
    compiler.realize([detached])                     # a realized DETACH forgets its inputs...
    assert detached.inputs == ()
    rebuilt = ir.unary(Op.DETACH, ir.binary(Op.ADD, x, x))
    assert rebuilt is not detached and rebuilt.inputs    # ...and leaves the table


def test_broadcast_shapes_cache_answers_every_query_correctly():
    cases = [((3, 1), (1, 4)), ((1, 4), (3, 1)), ((2, 1, 4), (3, 1)), ((), (5,)), ((5,), ()), ((5,), (5,), (1,)),
             ((2, 3), (2, 3), (2, 3)), ((1,), (0,))]
    for shapes in cases:
        want = tuple(torch.broadcast_shapes(*shapes))
        for _ in range(2):                           # the second time from the cache
            assert lt.broadcast_shapes(*shapes) == want
            assert lt.broadcast_shapes(*map(list, shapes)) == want
            assert lt.broadcast_shapes(*map(lt.Size, shapes)) == want
    for _ in range(2):                               # errors are raised every time
        with pytest.raises(RuntimeError, match=r"size of tensor a \(2\) must match the size of tensor b \(3\)"):
            lt.broadcast_shapes((2,), (3,))


def test_weak_identity_set():
    items = _tensor._WeakIdentitySet()
    a, b = lt.ones(2), lt.ones(2)
    items.add(a)
    items.add(a)
    items.add(b)
    assert a in items and b in items and lt.ones(2) not in items
    assert [t is a for t in items] == [True, False]
    items.discard(a)
    items.discard(a)
    assert a not in items and list(items) == [b]
    del b
    gc.collect()
    assert list(items) == [] and not items._refs
