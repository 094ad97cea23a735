"""Bad calls raise at the call, with PyTorch's exception type and message.

Each case is written once against a module `m` and run with both lazytorch and torch; the two
exceptions must have the same type and text (first line). No case may compute anything: the
error is found from shapes and dtypes when the call is made, not when a value is needed.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lazytorch as lt  # noqa: E402


def _z(m, *shape, dtype=None):
    return m.zeros(*shape, dtype=dtype or m.float32)


CASES = {
    # broadcasting and elementwise
    "broadcast": lambda m: _z(m, 3, 4) + _z(m, 3, 5),
    "broadcast_leading": lambda m: _z(m, 2, 3, 4) * _z(m, 3, 3, 4),
    "broadcast_where": lambda m: m.where(_z(m, 3, dtype=m.bool), _z(m, 4), 0.0),
    "inplace_broadcast": lambda m: _z(m, 3).add_(_z(m, 2, 3)),
    "inplace_int_from_float": lambda m: _z(m, 3, dtype=m.int64).mul_(1.5),
    "inplace_leaf_requires_grad": lambda m: m.zeros(3, requires_grad=True).add_(1),
    "sub_bools": lambda m: _z(m, 3, dtype=m.bool) - _z(m, 3, dtype=m.bool),
    "sub_bool_scalar": lambda m: _z(m, 3) - True,
    "neg_bool": lambda m: -_z(m, 3, dtype=m.bool),
    "int_negative_power": lambda m: _z(m, 3, dtype=m.int64) ** -1,
    "clamp_without_bounds": lambda m: _z(m, 3).clamp(),
    "where_int_condition": lambda m: m.where(_z(m, 3, dtype=m.int64), _z(m, 3), _z(m, 3)),
    "add_string": lambda m: _z(m, 3) + "a",
    # bitwise ops on floats
    "xor_float": lambda m: _z(m, 3) ^ _z(m, 3),
    "and_float_int": lambda m: _z(m, 3) & 1,
    "or_int_float_scalar": lambda m: _z(m, 3, dtype=m.int64) | 1.5,
    "not_float": lambda m: ~_z(m, 3),
    "bitwise_and_float": lambda m: m.bitwise_and(_z(m, 3, dtype=m.float64), _z(m, 3, dtype=m.float64)),
    # matmul
    "mm": lambda m: m.mm(_z(m, 2, 3), _z(m, 4, 5)),
    "matmul_2d": lambda m: _z(m, 2, 3) @ _z(m, 4, 5),
    "matmul_vector_matrix": lambda m: _z(m, 3) @ _z(m, 4, 5),
    "matmul_matrix_vector": lambda m: m.mv(_z(m, 3, 4), _z(m, 3)),
    "matmul_batched": lambda m: _z(m, 2, 3, 4) @ _z(m, 2, 5, 6),
    "matmul_batch_broadcast": lambda m: _z(m, 2, 3, 4) @ _z(m, 3, 4, 6),
    "matmul_dtype": lambda m: _z(m, 3, 4) @ _z(m, 4, 5, dtype=m.float64),
    "matmul_0d": lambda m: m.tensor(1.0) @ _z(m, 3),
    "mm_vector": lambda m: m.mm(_z(m, 3), _z(m, 3, 4)),
    "mm_vector_second": lambda m: m.mm(_z(m, 3, 4), _z(m, 4)),
    "bmm_2d": lambda m: m.bmm(_z(m, 3, 4), _z(m, 4, 5)),
    "bmm_inner": lambda m: m.bmm(_z(m, 2, 3, 4), _z(m, 2, 5, 6)),
    "bmm_batch": lambda m: m.bmm(_z(m, 2, 3, 4), _z(m, 3, 4, 6)),
    "dot_2d": lambda m: m.dot(_z(m, 3, 4), _z(m, 3)),
    "dot_sizes": lambda m: m.dot(_z(m, 3), _z(m, 4)),
    "dot_dtype": lambda m: m.dot(_z(m, 3), _z(m, 3, dtype=m.float64)),
    # indexing
    "index_int": lambda m: _z(m, 3, 4)[:, 4],
    "index_negative_int": lambda m: _z(m, 3, 4)[-4],
    "index_tensor": lambda m: _z(m, 3, 4)[m.tensor([0, 5])],
    "index_tensor_negative": lambda m: _z(m, 3, 4)[:, m.tensor([-5])],
    "index_list": lambda m: _z(m, 3, 4)[[0, 3]],
    "index_too_many": lambda m: _z(m, 3, 4)[0, 0, 0],
    "index_float_tensor": lambda m: _z(m, 3, 4)[m.tensor([1.0])],
    "index_mask_shape": lambda m: _z(m, 3, 4)[_z(m, 2, dtype=m.bool)],
    "index_negative_step": lambda m: _z(m, 3, 4)[::-1],
    "index_zero_step": lambda m: _z(m, 3, 4)[::0],
    "setitem_int": lambda m: _z(m, 3, 4).__setitem__((0, 7), 1.0),
    "setitem_shape": lambda m: _z(m, 3, 4).__setitem__(0, _z(m, 3)),
    "select": lambda m: _z(m, 3, 4).select(1, 4),
    "gather_out_of_range": lambda m: _z(m, 3, 4).gather(1, m.tensor([[5]])),
    "gather_dims": lambda m: _z(m, 3, 4).gather(1, m.tensor([1])),
    "gather_dtype": lambda m: _z(m, 3, 4).gather(1, m.tensor([[1.0]])),
    "index_select_dtype": lambda m: _z(m, 3, 4).index_select(1, m.tensor([1.0])),
    "take": lambda m: m.take(_z(m, 3), m.tensor([5])),
    "index_mask_then_tensor": lambda m: _z(m, 3, 4, 5)[m.ones(3, dtype=m.bool), m.tensor([9])],
    "index_two_tensors": lambda m: _z(m, 3, 4, 5)[m.tensor([0]), :, m.tensor([7])],
    "index_select_2d_index": lambda m: _z(m, 3, 4).index_select(0, _z(m, 2, 2, dtype=m.int64)),
    "index_select_out_of_range": lambda m: _z(m, 3, 4).index_select(0, m.tensor([5])),
    "masked_fill_float_mask": lambda m: _z(m, 3).masked_fill(_z(m, 3), 1.0),
    "masked_fill_vector_value": lambda m: _z(m, 3).masked_fill(_z(m, 3, dtype=m.bool), _z(m, 3)),
    "masked_fill_shape": lambda m: _z(m, 3).masked_fill(_z(m, 4, dtype=m.bool), 1.0),
    # shapes and dims
    "reshape": lambda m: _z(m, 3, 4).reshape(5, 3),
    "reshape_infer": lambda m: _z(m, 3, 4).view(5, -1),
    "reshape_two_inferred": lambda m: _z(m, 3, 4).reshape(-1, -1),
    "reshape_negative": lambda m: _z(m, 3, 4).reshape(-2, 6),
    "sum_dim": lambda m: _z(m, 3, 4).sum(2),
    "sum_dims_repeated": lambda m: _z(m, 3, 4).sum((0, 0)),
    "mean_dim": lambda m: _z(m, 3, 4).mean(-3),
    "softmax_dim": lambda m: _z(m, 3, 4).softmax(-3),
    "max_dim": lambda m: _z(m, 3, 4).max(2),
    "argmax_dim": lambda m: _z(m, 3, 4).argmax(5),
    "cumsum_dim": lambda m: _z(m, 3, 4).cumsum(2),
    "transpose": lambda m: _z(m, 3, 4).transpose(0, 2),
    "unsqueeze": lambda m: _z(m, 3, 4).unsqueeze(3),
    "squeeze": lambda m: _z(m, 3, 4).squeeze(2),
    "flatten_order": lambda m: _z(m, 3, 4, 2).flatten(2, 1),
    "unflatten": lambda m: _z(m, 3, 4).unflatten(1, (2, 3)),
    "permute_length": lambda m: _z(m, 3, 4).permute(0, 1, 2),
    "permute_repeated": lambda m: _z(m, 3, 4).permute(0, 0),
    "flip_repeated": lambda m: _z(m, 3, 4).flip(0, 0),
    "expand": lambda m: _z(m, 3, 4).expand(2, 4),
    "expand_fewer": lambda m: _z(m, 3, 4).expand(4),
    "repeat_fewer": lambda m: _z(m, 3, 4).repeat(2),
    "t_3d": lambda m: _z(m, 2, 3, 4).t(),
    "tril_1d": lambda m: _z(m, 3).tril(),
    "narrow": lambda m: _z(m, 3, 4).narrow(1, 2, 3),
    "chunk_zero": lambda m: _z(m, 3, 4).chunk(0),
    "split_zero": lambda m: _z(m, 3, 4).split(0),
    "split_sizes": lambda m: _z(m, 3, 4).split([1, 1], 0),
    "cat_dims": lambda m: m.cat([_z(m, 3, 4), _z(m, 3, 5, 1)]),
    "cat_sizes": lambda m: m.cat([_z(m, 3, 4), _z(m, 2, 5)]),
    "cat_0d": lambda m: m.cat([m.tensor(1.0), m.tensor(2.0)]),
    "cat_dim": lambda m: m.cat([_z(m, 3, 4), _z(m, 3, 4)], 2),
    "stack_sizes": lambda m: m.stack([_z(m, 2, 3), _z(m, 3, 3)]),
    "stack_empty": lambda m: m.stack([]),
    # reductions of empty tensors
    "max_empty": lambda m: _z(m, 0).max(),
    "argmax_empty": lambda m: _z(m, 0).argmax(),
    "amax_empty_dim": lambda m: _z(m, 0, 3).amax(0),
    "mean_int": lambda m: _z(m, 3, dtype=m.int64).mean(),
    # creation
    "zeros_negative": lambda m: m.zeros(-1, 3),
    "arange_zero_step": lambda m: m.arange(0, 5, 0),
    "arange_step_sign": lambda m: m.arange(0, 5, -1),
    "linspace_negative": lambda m: m.linspace(0, 1, -1),
    "ragged": lambda m: m.tensor([[1, 2], [3]]),
    "tensor_string": lambda m: m.tensor("a"),
    "requires_grad_int": lambda m: m.tensor([1, 2], requires_grad=True),
    "requires_grad_int_method": lambda m: m.tensor([1, 2]).requires_grad_(),
    # conversion to Python
    "item": lambda m: _z(m, 3).item(),
    "bool": lambda m: bool(_z(m, 3)),
    "float": lambda m: float(_z(m, 3)),
    "index": lambda m: [1, 2][m.tensor(1.0)],
    "len_0d": lambda m: len(m.tensor(1.0)),
    "iter_0d": lambda m: iter(m.tensor(1.0)),
    "numpy_requires_grad": lambda m: m.zeros(3, requires_grad=True).numpy(),
}


@pytest.mark.parametrize("name", list(CASES))
def test_error_matches_torch(name, counters):
    with pytest.raises(Exception) as theirs:
        CASES[name](torch)
    with pytest.raises(Exception) as ours:
        CASES[name](lt)
    assert type(ours.value).__name__ == type(theirs.value).__name__, (ours.value, theirs.value)
    assert str(ours.value).split("\n")[0] == str(theirs.value).split("\n")[0]
    if name not in ("item", "bool", "float", "index"):
        assert counters()["kernel_launches"] == 0, "the error must be found at the call, not by computing"


def test_index_range_is_checked_when_the_index_values_are_known():
    """Index tensors with values (data, or computed and realized) are checked at the call."""
    x = lt.zeros(3, 4)
    i = lt.tensor([0, 2]) * 2 + 1                     # computed: [1, 5]
    i.realize()
    with pytest.raises(IndexError, match="index 5 is out of bounds for dimension 0 with size 3"):
        x[i]
    with pytest.raises(IndexError, match="index 5 is out of bounds for dimension 0 with size 4"):
        x[:, i]                                       # torch counts the dim among the indexed ones
    with pytest.raises(RuntimeError, match="index 5 is out of bounds for dimension 1 with size 4"):
        x.gather(1, i.reshape(1, 2))


def test_bad_reshape_message_shows_the_requested_shape():
    with pytest.raises(RuntimeError, match=r"shape '\[5, 3\]' is invalid for input of size 12"):
        lt.arange(12).reshape(5, 3)


def test_errors_leave_tensors_usable():
    x = lt.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    with pytest.raises(RuntimeError):
        x.add_(lt.zeros(2, 3, 4))
    with pytest.raises(RuntimeError):
        x[0] = lt.zeros(3)
    assert x.sum().item() == 66.0
