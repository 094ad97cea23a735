"""Views, indexing and joining against PyTorch: reshape/permute/expand/..., cat/stack/split,
`__getitem__` (basic, advanced, boolean masks), `__setitem__`, gather/index_select/masked_fill.

Inputs include non-contiguous views, and each case is checked by value with `assert_close`.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lazytorch as lt  # noqa: E402
from conftest import assert_close, make_array, pair  # noqa: E402

A = make_array((2, 3, 4), "float32", 100)


@pytest.fixture
def x3():
    return pair(A)


# ---------------------------------------------------------------------------------------------
# views

VIEW_CASES = {
    "reshape": lambda t: t.reshape(6, 4),
    "reshape_infer": lambda t: t.reshape(-1, 2),
    "reshape_tuple": lambda t: t.reshape((4, 6)),
    "view": lambda t: t.view(2, 12),
    "view_as": lambda t: t.view_as(t.reshape(4, 6)),
    "flatten": lambda t: t.flatten(),
    "flatten_range": lambda t: t.flatten(1),
    "flatten_start_end": lambda t: t.flatten(0, 1),
    "unflatten": lambda t: t.unflatten(2, (2, 2)),
    "unflatten_infer": lambda t: t.unflatten(-1, (-1, 2)),
    "permute": lambda t: t.permute(2, 0, 1),
    "permute_negative": lambda t: t.permute(-1, -3, -2),
    "transpose": lambda t: t.transpose(0, 2),
    "transpose_negative": lambda t: t.transpose(-1, -2),
    "mT": lambda t: t.mT,
    "t": lambda t: t[0].t(),
    "T_2d": lambda t: t[1].T,
    "squeeze": lambda t: t[:, :1].squeeze(),
    "squeeze_dim": lambda t: t[:, :1].squeeze(1),
    "squeeze_noop": lambda t: t.squeeze(0),
    "squeeze_tuple": lambda t: t[:1, :1].squeeze((0, 1)),
    "unsqueeze": lambda t: t.unsqueeze(1),
    "unsqueeze_negative": lambda t: t.unsqueeze(-1),
    "expand": lambda t: t[:, :1].expand(2, 3, 4),
    "expand_new_dims": lambda t: t[0, 0].expand(3, 2, 4),
    "expand_minus_one": lambda t: t[:, :1].expand(-1, 5, -1),
    "expand_as": lambda t: t[0].expand_as(t),
    "repeat": lambda t: t[0].repeat(2, 1),
    "repeat_more_dims": lambda t: t[0, :2].repeat(2, 1, 3),
    "contiguous": lambda t: t.transpose(0, 1).contiguous(),
    "flip": lambda t: t.flip(0),
    "flip_many": lambda t: t.flip((0, 2)),
    "flip_negative": lambda t: t.flip(-1),
    "narrow": lambda t: t.narrow(2, 1, 2),
    "narrow_negative_start": lambda t: t.narrow(-1, -3, 2),
    "chain": lambda t: t.permute(1, 2, 0).reshape(12, 2)[::3].flip(0).t(),
    "tril": lambda t: t.tril(),
    "triu_offset": lambda t: t.triu(1),
    "tril_negative": lambda t: t[0].tril(-1),
    "movedim_like": lambda t: t.transpose(0, 1).reshape(3, 8),
}


@pytest.mark.parametrize("name", list(VIEW_CASES))
def test_views(name, x3):
    x, tx = x3
    ours, theirs = VIEW_CASES[name](x), VIEW_CASES[name](tx)
    assert_close(ours, theirs)
    assert_close(ours * 2 + 1, theirs * 2 + 1)       # as the input of a kernel too


@pytest.mark.parametrize("name", ["reshape", "permute", "transpose", "flip", "narrow", "expand", "flatten"])
def test_views_of_views(name, x3):
    x, tx = x3
    ours, theirs = x.transpose(0, 2)[::2].flip(1), tx.transpose(0, 2)[::2].flip(1)      # (2, 3, 2)
    fn = {"reshape": lambda t: t.reshape(3, 4), "permute": lambda t: t.permute(1, 2, 0),
          "transpose": lambda t: t.transpose(0, 1), "flip": lambda t: t.flip(2), "narrow": lambda t: t.narrow(1, 1, 2),
          "expand": lambda t: t[:, :1].expand(2, 4, 2), "flatten": lambda t: t.flatten()}[name]
    assert_close(fn(ours), fn(theirs))
    assert_close(fn(ours).sum(0), fn(theirs).sum(0), reduction=True)


def test_functional_forms(x3):
    x, tx = x3
    assert_close(lt.reshape(x, (4, 6)), torch.reshape(tx, (4, 6)))
    assert_close(lt.permute(x, (1, 0, 2)), torch.permute(tx, (1, 0, 2)))
    assert_close(lt.transpose(x, 1, 2), torch.transpose(tx, 1, 2))
    assert_close(lt.flatten(x, 1), torch.flatten(tx, 1))
    assert_close(lt.unsqueeze(x, 0), torch.unsqueeze(tx, 0))
    assert_close(lt.squeeze(x[:1]), torch.squeeze(tx[:1]))
    assert_close(lt.flip(x, [1]), torch.flip(tx, [1]))
    assert_close(lt.flip(x, dims=(0, 2)), torch.flip(tx, dims=(0, 2)))
    assert_close(lt.narrow(x, 1, 0, 2), torch.narrow(tx, 1, 0, 2))
    assert_close(lt.t(x[0]), torch.t(tx[0]))
    assert_close(lt.tril(x[0], 1), torch.tril(tx[0], 1))
    assert_close(lt.triu(x[0]), torch.triu(tx[0]))
    assert_close(lt.roll(x, 1, 2), torch.roll(tx, 1, 2))


def test_views_of_integer_and_bool_tensors():
    i, ti = pair(make_array((3, 4), "int64", 101))
    b, tb = pair(make_array((3, 4), "bool", 102))
    for fn in (lambda t: t.t(), lambda t: t.reshape(2, 6), lambda t: t[::2, 1:], lambda t: t.flip(1),
               lambda t: t.unsqueeze(0).expand(2, 3, 4), lambda t: t.tril(), lambda t: t.repeat(1, 2)):
        assert_close(fn(i), fn(ti))
        assert_close(fn(b), fn(tb))


# ---------------------------------------------------------------------------------------------
# joining and splitting

@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat(dim):
    a, ta = pair(make_array((2, 3), "float32", 103))
    b, tb = pair(make_array((2, 3), "float32", 104))
    assert_close(lt.cat([a, b], dim), torch.cat([ta, tb], dim))
    assert_close(lt.cat((a, b.flip(0), a * 2), dim=dim), torch.cat((ta, tb.flip(0), ta * 2), dim=dim))
    assert_close(lt.concat([a.t(), b.t()], dim), torch.concat([ta.t(), tb.t()], dim))


def test_cat_mixed_dtypes_and_sizes():
    a, ta = pair(make_array((2, 3), "int64", 105))
    b, tb = pair(make_array((1, 3), "float32", 106))
    c, tc = pair(make_array((4, 3), "bool", 107))
    assert_close(lt.cat([a, b]), torch.cat([ta, tb]))
    assert_close(lt.cat([a, c]), torch.cat([ta, tc]))
    assert_close(lt.cat([c, c]), torch.cat([tc, tc]))
    e, te = pair(np.zeros((0,), np.float32))
    assert_close(lt.cat([b, e]), torch.cat([tb, te]))          # legacy: 1-D empty tensors are skipped


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_stack(dim):
    a, ta = pair(make_array((2, 3), "float32", 108))
    b, tb = pair(make_array((2, 3), "float32", 109))
    assert_close(lt.stack([a, b, a], dim), torch.stack([ta, tb, ta], dim))
    i, ti = pair(make_array((2, 3), "int64", 110))
    assert_close(lt.stack([i, i], dim), torch.stack([ti, ti], dim))


@pytest.mark.parametrize("args", [(2,), (2, 1), (2, -1), ([1, 2], 1), ([1, 0, 3], 2), (3,), (1, 0), (5, 2), ([2, 1], -2)])
def test_split(args, x3):
    x, tx = x3
    ours, theirs = x.split(*args), tx.split(*args)
    assert isinstance(ours, tuple) and len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        assert_close(o, t)
    ours = lt.split(x, *args)
    assert len(ours) == len(theirs)


@pytest.mark.parametrize("args", [(2,), (3, 2), (2, 1), (4, 1), (5, 2), (1, 0)])
def test_chunk(args, x3):
    x, tx = x3
    ours, theirs = x.chunk(*args), tx.chunk(*args)
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        assert_close(o, t)
    assert len(lt.chunk(x, *args)) == len(torch.chunk(tx, *args))


def test_unbind_and_iteration(x3):
    x, tx = x3
    for o, t in zip(x.unbind(1), tx.unbind(1)):
        assert_close(o, t)
    for o, t in zip(x, tx):
        assert_close(o, t)


# ---------------------------------------------------------------------------------------------
# __getitem__

BASIC_INDICES = [
    0, -1, 1, (1, 2), (1, 2, 3), (-1, -2, -4), slice(None), slice(1, None), slice(None, None, 2),
    (slice(None), 1), (slice(None), slice(None, None, 2)), (slice(None), slice(None, None, 2), slice(1, 4, 2)),
    (Ellipsis, 1), (0, Ellipsis), (Ellipsis,), (None,), (None, 0), (0, None, slice(None), None), (Ellipsis, None),
    (slice(None), None, Ellipsis, 2), (slice(-2, None), slice(None, -1)), (slice(5, 10),), (slice(1, 1),),
    (slice(None), slice(3, 0)), (1, slice(None, None, 3), -1), (slice(-100, 100),), (0, 0, slice(None, None, 3)),
    (1, Ellipsis, None),
]


@pytest.mark.parametrize("index", BASIC_INDICES, ids=[repr(i) for i in BASIC_INDICES])
def test_basic_getitem(index, x3):
    x, tx = x3
    assert_close(x[index], tx[index])


def test_getitem_on_non_contiguous_and_zero_dim():
    x, tx = pair(make_array((4, 6), "float32", 111))
    v, tv = x.t()[1::2], tx.t()[1::2]            # (3, 4)
    for index in (0, (slice(None), 1), (slice(None, None, 2), slice(1, None)), (Ellipsis, None), (-1, -1)):
        assert_close(v[index], tv[index])
    s, ts = pair(np.array(3.5, np.float32))
    assert_close(s[None], ts[None])
    assert_close(s[...], ts[...])
    assert_close(s[None, None, ...], ts[None, None, ...])


ADVANCED_INDICES = {
    "list": lambda m: ([1, 0, 1],),
    "tensor_1d": lambda m: (m.tensor([1, 0]),),
    "negative": lambda m: (m.tensor([-1, 0, -2]),),
    "tensor_2d": lambda m: (m.tensor([[0, 1], [1, 1]]),),
    "second_axis": lambda m: (slice(None), m.tensor([2, 0, 2])),
    "last_axis": lambda m: (Ellipsis, m.tensor([3, 0])),
    "two_adjacent": lambda m: (m.tensor([0, 1, 1]), m.tensor([2, 0, 1])),
    "two_adjacent_broadcast": lambda m: (m.tensor([[0], [1]]), m.tensor([2, 0, 1])),
    "two_adjacent_after_slice": lambda m: (slice(None), m.tensor([0, 2]), m.tensor([3, 1])),
    "two_non_adjacent": lambda m: (m.tensor([0, 1, 1]), slice(None), m.tensor([2, 0, 3])),
    "non_adjacent_with_int": lambda m: (m.tensor([1, 0]), 1, slice(None)),
    "int_between": lambda m: (m.tensor([1, 0]), slice(None), 2),
    "three": lambda m: (m.tensor([1, 0]), m.tensor([2, 2]), m.tensor([3, 0])),
    "with_none": lambda m: (None, m.tensor([1, 0]), slice(None, None, 2)),
    "with_stepped_slice": lambda m: (slice(None, None, 1), slice(None, None, 2), m.tensor([0, 3])),
    "int32": lambda m: (m.tensor([1, 0], dtype=m.int32),),
    "bool_mask_full": lambda m: (m.tensor(A > 0),),
    "bool_mask_prefix": lambda m: (m.tensor(A[:, :, 0] > 0),),
    "bool_mask_axis": lambda m: (slice(None), m.tensor([True, False, True])),
    "bool_list": lambda m: ([True, False],),
    "bool_mask_with_index": lambda m: (m.tensor([True, False, True]).reshape(3), ) if False else
    (slice(None), m.tensor([True, False, True]), m.tensor([0, 3])),
    "scalar_true": lambda m: (True,),
    "scalar_false": lambda m: (False,),
    "zero_dim_index": lambda m: (m.tensor(1),),
}


@pytest.mark.parametrize("name", list(ADVANCED_INDICES))
def test_advanced_getitem(name, x3):
    x, tx = x3
    index, tindex = ADVANCED_INDICES[name](lt), ADVANCED_INDICES[name](torch)
    assert_close(x[index], tx[tindex])
    assert_close(x.transpose(0, 0)[index] * 1.5, tx[tindex] * 1.5)


def test_advanced_getitem_on_views_and_of_computed_indices():
    x, tx = pair(make_array((5, 4), "float32", 112))
    v, tv = x.t(), tx.t()                           # (4, 5), non-contiguous
    i, ti = pair(np.array([4, 0, 2], np.int64))
    assert_close(v[:, i], tv[:, ti])
    assert_close(v[i - 1], tv[ti - 1])               # the index is itself lazy
    assert_close(x[x[:, 0] > 0], tx[tx[:, 0] > 0])
    assert_close(x[x > 0], tx[tx > 0])
    j, tj = pair(np.array([[0, 1], [3, 2]], np.int64))
    assert_close(x[i][:, j], tx[ti][:, tj])


# ---------------------------------------------------------------------------------------------
# __setitem__

SET_CASES = {
    "int_scalar": (lambda m: 1, 5.0),
    "int_pair": (lambda m: (0, 2), -1.0),
    "slice": (lambda m: slice(1, None), 2.5),
    "stepped": (lambda m: (slice(None), slice(None, None, 2)), 0.0),
    "ellipsis": (lambda m: (Ellipsis, 1), 3.0),
    "everything": (lambda m: slice(None), 7.0),
    "negative": (lambda m: (-1, -1, -1), 9.0),
    "int_value": (lambda m: (0, 0), 4),
    "tensor_row": (lambda m: (0, 1), "row"),
    "tensor_broadcast": (lambda m: (slice(None), 1), "row"),
    "tensor_block": (lambda m: (1, slice(0, 2), slice(1, 3)), "block"),
    "zero_dim_tensor": (lambda m: (Ellipsis, 0), "scalar"),
    "mask": (lambda m: m.tensor(A > 0.5), 0.0),
    "mask_tensor_value": (lambda m: m.tensor(A < 0), "scalar"),
    "mask_prefix": (lambda m: m.tensor(A[:, :, 0] > 0), -2.0),
    "mask_values": (lambda m: m.tensor(A > 0.5), "masked"),
    "list": (lambda m: [1, 0], 8.0),
    "int_tensor": (lambda m: m.tensor([0, 1]), "row"),
    "int_tensors_adjacent": (lambda m: (slice(None), m.tensor([0, 2]), m.tensor([3, 1])), 6.0),
    "int_tensors_non_adjacent": (lambda m: (m.tensor([1, 0, 1]), slice(None), m.tensor([0, 3, 2])), "column"),
    "int_tensor_and_slice": (lambda m: (m.tensor([1]), slice(1, 3)), "row"),
    "value_with_leading_ones": (lambda m: (0, 1), "row_2d"),
}


def _value(kind, module):
    if kind == "row":
        return module.tensor([10.0, 20.0, 30.0, 40.0])
    if kind == "block":
        return module.tensor([[1.0, 2.0], [3.0, 4.0]])
    if kind == "scalar":
        return module.tensor(-5.0)
    if kind == "masked":
        return module.arange(int((A > 0.5).sum()), dtype=module.float32)
    if kind == "column":
        return module.tensor([[1.0], [2.0], [3.0]])
    if kind == "row_2d":
        return module.tensor([[10.0, 20.0, 30.0, 40.0]])
    return kind


@pytest.mark.parametrize("name", list(SET_CASES))
def test_setitem(name):
    index_fn, value = SET_CASES[name]
    x, tx = pair(A)
    alias = x                                          # the same Python object sees the update
    x[index_fn(lt)] = _value(value, lt)
    tx[index_fn(torch)] = _value(value, torch)
    assert_close(x, tx)
    assert alias is x
    assert_close(x.sum(1), tx.sum(1), reduction=True)


def test_setitem_value_shape_mismatch_is_an_error_like_torch():
    x, tx = pair(A)
    for index, value in ((0, [1.0, 2.0]), ((slice(None), 0), [[1.0, 2.0, 3.0]]), ([0, 1], [1.0, 2.0])):
        with pytest.raises(RuntimeError) as ours:
            x[index] = lt.tensor(value)
        with pytest.raises(RuntimeError) as theirs:
            tx[index] = torch.tensor(value)
        assert str(ours.value) == str(theirs.value)
    assert_close(x, tx)                                 # nothing was written


def test_setitem_int_tensor_and_dtype_cast():
    i, ti = pair(make_array((3, 4), "int64", 113))
    i[1] = 2.7                                         # cast to the tensor's dtype, as torch does
    ti[1] = 2.7
    assert_close(i, ti)
    i[:, 0] = lt.tensor([True, False, True])
    ti[:, 0] = torch.tensor([True, False, True])
    assert_close(i, ti)
    b, tb = pair(make_array((3, 4), "bool", 114))
    b[0] = True
    tb[0] = True
    assert_close(b, tb)


def test_setitem_then_compute_then_setitem_again():
    x, tx = pair(make_array((3, 4), "float32", 115))
    for k in range(3):
        x[k, k] = x[k].sum()
        tx[k, k] = tx[k].sum()
        assert_close(x.exp().sum(), tx.exp().sum(), reduction=True)
    assert_close(x, tx, reduction=True)


def test_setitem_on_transposed_view_values():
    x, tx = pair(make_array((3, 4), "float32", 116))
    v, tv = x.t(), tx.t()
    v[0] = 1.0
    tv[0] = 1.0
    assert_close(v, tv)


# ---------------------------------------------------------------------------------------------
# gather, index_select, masked_fill, take

@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gather(dim):
    x, tx = pair(make_array((3, 4), "float32", 117))
    index = np.array([[0, 1, 2, 0], [2, 2, 1, 0]]) if dim == 0 else np.array([[0, 3], [1, 1], [3, 2]])
    i, ti = pair(index.astype(np.int64))
    assert_close(x.gather(dim, i), tx.gather(dim, ti))
    assert_close(lt.gather(x.t().t(), dim, i), torch.gather(tx, dim, ti))
    assert_close(lt.gather(x * 2, dim, i) + 1, torch.gather(tx * 2, dim, ti) + 1)
    small, tsmall = i[:1], ti[:1]                     # an index smaller than the input
    assert_close(x.gather(dim, small), tx.gather(dim, tsmall))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_index_select(dim):
    x, tx = pair(make_array((3, 4), "float32", 118))
    i, ti = pair(np.array([2, 0, 2], np.int64))
    assert_close(x.index_select(dim, i), tx.index_select(dim, ti))
    assert_close(lt.index_select(x.t(), dim, i), torch.index_select(tx.t(), dim, ti))
    j, tj = pair(np.array([1, 0], np.int32))
    assert_close(x.index_select(dim, j), tx.index_select(dim, tj))


def test_masked_fill():
    x, tx = pair(make_array((3, 4), "float32", 119))
    m, tm = pair(make_array((3, 4), "bool", 120))
    assert_close(x.masked_fill(m, -1.0), tx.masked_fill(tm, -1.0))
    assert_close(x.masked_fill(m[0], float("-inf")), tx.masked_fill(tm[0], float("-inf")))
    assert_close(lt.masked_fill(x, m, lt.tensor(2.0)), torch.masked_fill(tx, tm, torch.tensor(2.0)))
    assert_close(x.t().masked_fill(m.t(), 0), tx.t().masked_fill(tm.t(), 0))
    i, ti = pair(make_array((3, 4), "int64", 121))
    assert_close(i.masked_fill(m, 7), ti.masked_fill(tm, 7))
    assert_close(i.masked_fill(m, 2.9), ti.masked_fill(tm, 2.9))
    y, ty = pair(make_array((3, 4), "float32", 122))
    assert y.masked_fill_(m, 0.5) is y
    assert_close(y, ty.masked_fill_(tm, 0.5))
    assert_close(x.masked_fill(x > 0, 0.0), tx.masked_fill(tx > 0, 0.0))


def test_take_and_tril_triu_inplace():
    x, tx = pair(make_array((3, 4), "float32", 123))
    i, ti = pair(np.array([[0, 11], [5, -1]], np.int64))
    assert_close(lt.take(x, i), torch.take(tx, ti))
    assert_close(x.clone().tril_(), tx.clone().tril_())
    assert_close(x.clone().triu_(-1), tx.clone().triu_(-1))
