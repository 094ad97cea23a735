"""Views and indexing: reshape, permute, slicing, advanced indexing, cat/stack/split, ...

All of these are movement primitives (or gathers) in the IR: they never copy data; kernels read
through the composed index map.
"""
from __future__ import annotations

import builtins
import math
from typing import Optional, Sequence

import numpy as np

from compiler import dtypes as dt
from compiler.ir import node as ir
from compiler.ir.ops import Op
from lazytorch import _ops
from lazytorch._storage import _PARTIAL_OVERLAP_ERROR, partial_overlap, view_strides
from lazytorch._tensor import (Number, Size, Tensor, _alias, _dtype_label, _expand_node, _normalize_dim,
                               _normalize_dims, broadcast_shapes, tensor)


def _shape_args(args) -> tuple:
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    return tuple(builtins.int(a) for a in args)


def _infer_shape(shape, numel: int) -> tuple[int, ...]:
    shape = list(shape)
    for i, n in enumerate(shape):
        if n < -1:
            raise RuntimeError(f"invalid shape dimension {n} at index {i} of shape {shape}")
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    known = math.prod(n for n in shape if n != -1)
    if -1 in shape:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape[shape.index(-1)] = numel // known
    if math.prod(shape) != numel or any(n < 0 for n in shape):
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return tuple(shape)


def _view(input: Tensor, steps: tuple, name: str) -> Tensor:
    """A view: shares input's memory (in-place writes to either show in both)."""
    return _alias(input, steps, name)


_VIEW_ERROR = ("view size is not compatible with input tensor's size and stride (at least one dimension spans "
               "across two contiguous subspaces). Use .reshape(...) instead.")


def _reshape(input: Tensor, shape: tuple, name: str, copy_if_needed: bool) -> Tensor:
    if shape != input.shape and input._view:       # (a tensor of its own memory is contiguous: it views)
        old_shape, strides, _ = input._layout()
        if view_strides(old_shape, strides, shape) is None:
            if not copy_if_needed:
                raise RuntimeError(_VIEW_ERROR)
            return input._result(ir.reshape(input._node, shape), [input], "reshape")   # a copy
    return _view(input, ((Op.RESHAPE, shape),) if shape != input.shape else (), name)


def reshape(input, *shape):
    """A view when strides can express it, else a copy (torch's rule)."""
    return _reshape(input, _infer_shape(_shape_args(shape), input.numel()), "view", True)


def view(input, *shape):
    if len(shape) == 1 and isinstance(shape[0], dt.DType):
        raise NotImplementedError("Tensor.view(dtype) is not supported; use .to(dtype)")
    return _reshape(input, _infer_shape(_shape_args(shape), input.numel()), "view", False)


def view_as(input, other):
    return view(input, other.shape)


def reshape_as(input, other):
    return reshape(input, other.shape)


def flatten(input, start_dim: int = 0, end_dim: int = -1):
    if input.dim() == 0:
        return reshape(input, 1)
    s, e = _normalize_dim(start_dim, input.dim()), _normalize_dim(end_dim, input.dim())
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    shape = input.shape[:s] + (math.prod(input.shape[s:e + 1]),) + input.shape[e + 1:]
    return reshape(input, shape)


def unflatten(input, dim: int, sizes):
    d = _normalize_dim(dim, input.dim())
    sizes = tuple(sizes)
    known = math.prod(n for n in sizes if n != -1)
    if (-1 not in sizes and known != input.shape[d]) or (-1 in sizes and (known == 0 or input.shape[d] % known)):
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size of dim {dim} "
                           f"({input.shape[d]}) in the input tensor")
    sizes = _infer_shape(sizes, input.shape[d])
    return reshape(input, input.shape[:d] + sizes + input.shape[d + 1:])


def permute(input, *dims):
    dims = _shape_args(dims)
    if len(dims) != input.dim():
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not match the length "
                           f"of the desired ordering of dimensions i.e. input.dim() = {input.dim()} is not equal to "
                           f"len(dims) = {len(dims)}")
    if len({_normalize_dim(d, input.dim()) for d in dims}) != len(dims):
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    dims = _normalize_dims(dims, input.dim())
    return _view(input, ((Op.PERMUTE, dims),) if dims != tuple(range(input.dim())) else (), "permute")


def transpose(input, dim0: int, dim1: int):
    if input.dim() == 0:
        return input
    d0, d1 = _normalize_dim(dim0, input.dim()), _normalize_dim(dim1, input.dim())
    order = list(range(input.dim()))
    order[d0], order[d1] = order[d1], order[d0]
    return _view(input, ((Op.PERMUTE, tuple(order)),) if d0 != d1 else (), "transpose")


swapaxes = swapdims = transpose


def t(input):
    if input.dim() > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {input.dim()}D")
    return transpose(input, 0, 1) if input.dim() == 2 else input


def squeeze(input, dim=None):
    if dim is None:
        dims = tuple(i for i, n in enumerate(input.shape) if n == 1)
    else:
        dims = tuple(d for d in _normalize_dims(dim, input.dim()) if input.shape[d] == 1)
    return reshape(input, tuple(n for i, n in enumerate(input.shape) if i not in dims))


def unsqueeze(input, dim: int):
    d = _normalize_dim(dim, input.dim() + 1)
    return reshape(input, input.shape[:d] + (1,) + input.shape[d:])


def expand(input, *sizes):
    sizes = list(_shape_args(sizes))
    if len(sizes) < input.dim():
        raise RuntimeError(f"expand(torch.FloatTensor{{{list(input.shape)}}}, size={sizes}): the number of sizes "
                           f"provided ({len(sizes)}) must be greater or equal to the number of dimensions in the "
                           f"tensor ({input.dim()})")
    lead = len(sizes) - input.dim()
    for i, n in enumerate(input.shape):
        want = sizes[lead + i]
        if want == -1:
            sizes[lead + i] = n
        elif n != 1 and n != want:
            raise RuntimeError(f"The expanded size of the tensor ({want}) must match the existing size ({n}) at "
                               f"non-singleton dimension {lead + i}.  Target sizes: {sizes}.  Tensor sizes: "
                               f"{list(input.shape)}")
    sizes = tuple(sizes)
    steps = ()
    if len(sizes) != input.dim():
        steps += ((Op.RESHAPE, (1,) * (len(sizes) - input.dim()) + tuple(input.shape)),)
    if sizes != (1,) * (len(sizes) - input.dim()) + tuple(input.shape):
        steps += ((Op.EXPAND, sizes),)
    return _view(input, steps, "expand")


def expand_as(input, other):
    return expand(input, other.shape)


def broadcast_to(input, shape):
    return expand(input, shape)


def broadcast_tensors(*tensors):
    shape = broadcast_shapes(*(t.shape for t in tensors))
    return tuple(expand(t, shape) for t in tensors)


def repeat(input, *sizes):
    sizes = _shape_args(sizes)
    if len(sizes) < input.dim():
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor")
    base = reshape(input, (1,) * (len(sizes) - input.dim()) + input.shape)
    # (a, b) repeated (r, s): view as (1, a, 1, b), expand to (r, a, s, b), merge pairs
    interleaved = []
    for n in base.shape:
        interleaved += [1, n]
    expanded_shape = []
    for r, n in zip(sizes, base.shape):
        expanded_shape += [r, n]
    x = expand(reshape(base, interleaved), expanded_shape)
    return reshape(x, tuple(r * n for r, n in zip(sizes, base.shape)))


def tile(input, dims):
    dims = tuple(dims)
    if len(dims) < input.dim():
        dims = (1,) * (input.dim() - len(dims)) + dims
    return repeat(input, dims)


def contiguous(input, memory_format=None):
    """input itself when its layout is contiguous, else a contiguous copy (torch's rule)."""
    if not input._view or input.is_contiguous():
        return input
    return input._result(input._node, [input], "clone")


def flip(input, *args, dims=None):
    if dims is None:                     # flip(x, (0, 1)), x.flip(0, 1) or flip(x, dims=...)
        dims = args[0] if len(args) == 1 else args
    dims = _normalize_dims(dims, input.dim())
    return input._result(ir.flip(input._node, dims), [input], "flip")      # (a copy in torch)


def fliplr(input):
    return flip(input, (1,))


def flipud(input):
    return flip(input, (0,))


def roll(input, shifts, dims=None):
    if dims is None:
        return roll(flatten(input), shifts, 0).reshape(input.shape)
    shifts = (shifts,) if isinstance(shifts, builtins.int) else tuple(shifts)
    dims = (dims,) if isinstance(dims, builtins.int) else tuple(dims)
    out = input
    for s, d in zip(shifts, dims):
        d = _normalize_dim(d, input.dim())
        n = input.shape[d]
        if n == 0:
            continue
        s %= n
        if s:
            out = cat([narrow(out, d, n - s, s), narrow(out, d, 0, n - s)], d)
    return out


def as_strided(input, size, stride, storage_offset=None):
    """A view of input's memory with any sizes and strides (positions in the whole storage)."""
    size, stride = tuple(builtins.int(n) for n in size), tuple(builtins.int(s) for s in stride)
    offset = input.storage_offset() if storage_offset is None else builtins.int(storage_offset)
    if len(size) != len(stride):
        raise RuntimeError(f"mismatch in length of strides and shape")
    root = input._storage.root._node if input._storage is not None else input._node
    needed = 0 if 0 in size else offset + builtins.sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if needed > root.numel or builtins.any(s < 0 for s in stride) or offset < 0:
        item = input.element_size()
        raise RuntimeError(f"setStorage: sizes {list(size)}, strides {list(stride)}, storage offset {offset}, and "
                           f"itemsize {item} requiring a storage size of {needed * item} are out of bounds for "
                           f"storage of size {root.numel * item}")
    return _view(input, (("as_strided", (size, stride, offset)),), "as_strided")


def diagonal(input, offset: int = 0, dim1: int = 0, dim2: int = 1):
    """The diagonal as a view (torch: the last axis of the result)."""
    d1, d2 = _normalize_dim(dim1, input.dim()), _normalize_dim(dim2, input.dim())
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    shape, strides, start = input._layout()
    if offset >= 0:
        n = builtins.max(0, builtins.min(shape[d1], shape[d2] - offset))
        start += offset * strides[d2] if n else 0
    else:
        n = builtins.max(0, builtins.min(shape[d1] + offset, shape[d2]))
        start -= offset * strides[d1] if n else 0
    keep = [a for a in range(input.dim()) if a not in (d1, d2)]
    size = tuple(shape[a] for a in keep) + (n,)
    stride = tuple(strides[a] for a in keep) + (strides[d1] + strides[d2],)
    return as_strided(input, size, stride, start)


def movedim(input, source, destination):
    src = (source,) if isinstance(source, builtins.int) else tuple(source)
    dst = (destination,) if isinstance(destination, builtins.int) else tuple(destination)
    src, dst = [_normalize_dim(d, input.dim()) for d in src], [_normalize_dim(d, input.dim()) for d in dst]
    order = [None] * input.dim()
    for a, b in zip(src, dst):
        order[b] = a
    rest = iter(a for a in range(input.dim()) if a not in src)
    order = tuple(a if a is not None else next(rest) for a in order)
    return permute(input, order)


moveaxis = movedim


def _slice(input: Tensor, ranges) -> Tensor:
    ranges = tuple(tuple(r) for r in ranges)
    whole = all(r == (0, n, 1) for r, n in zip(ranges, input.shape))
    return _view(input, () if whole else ((Op.SLICE, ranges),), "slice")


def narrow(input, dim: int, start: int, length: int):
    d = _normalize_dim(dim, input.dim())
    n = input.shape[d]
    if start < 0:
        start += n
    if not (0 <= start <= n and 0 <= length and start + length <= n):
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
    ranges = [(0, m, 1) for m in input.shape]
    ranges[d] = (start, start + length, 1)
    return _slice(input, ranges)


def select(input, dim: int, index: int):
    d = _normalize_dim(dim, input.dim())
    n = input.shape[d]
    if not -n <= index < n:
        raise IndexError(f"select(): index {index} out of range for tensor of size {list(input.shape)} at "
                         f"dimension {d}")
    return squeeze(narrow(input, d, index % n, 1), d)


def _pad_node(node: ir.Node, widths) -> ir.Node:
    return ir.pad(node, tuple(widths))


def cat(tensors, dim: int = 0):
    tensors = [t for t in tensors]
    if not tensors:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    # legacy: 1-D empty tensors are skipped, as torch does
    nonempty = [t for t in tensors if not (t.dim() == 1 and t.shape[0] == 0)] or tensors[:1]
    ref = nonempty[0]
    if ref.dim() == 0:
        raise RuntimeError("zero-dimensional tensor (at position 0) cannot be concatenated")
    d = _normalize_dim(dim, ref.dim())
    for i, t in enumerate(nonempty):
        if t.dim() != ref.dim():
            raise RuntimeError(f"Tensors must have same number of dimensions: got {ref.dim()} and {t.dim()}")
        for axis in range(ref.dim()):
            if axis != d and t.shape[axis] != ref.shape[axis]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. Expected size "
                                   f"{ref.shape[axis]} but got size {t.shape[axis]} for tensor number {i} in the list.")
    dtype = _ops.result_type(*nonempty)
    total = builtins.sum(t.shape[d] for t in nonempty)
    # concatenation = sum of zero-padded pieces: every piece stays a view, and it all fuses
    node, offset = None, 0
    for t in nonempty:
        widths = [(0, 0)] * ref.dim()
        widths[d] = (offset, total - offset - t.shape[d])
        offset += t.shape[d]
        piece = _pad_node(ir.cast(t._node, dtype), widths)
        node = piece if node is None else ir.binary(Op.OR if dtype is dt.bool_ else Op.ADD, node, piece)
    return ref._result(node, nonempty, "cat")


concat = concatenate = cat


def stack(tensors, dim: int = 0):
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(tensors[0].shape)} at "
                               f"entry 0 and {list(t.shape)} at entry {i}")
    d = _normalize_dim(dim, tensors[0].dim() + 1)
    return cat([unsqueeze(t, d) for t in tensors], d)


def hstack(tensors):
    return cat(tensors, 0 if tensors[0].dim() == 1 else 1)


def vstack(tensors):
    return cat([t.reshape(1, -1) if t.dim() == 1 else t for t in tensors], 0)


def split(input, split_size_or_sections, dim: int = 0):
    d = _normalize_dim(dim, input.dim())
    n = input.shape[d]
    if isinstance(split_size_or_sections, builtins.int):
        size = split_size_or_sections
        if size < 0:
            raise RuntimeError(f"split expects split_size be non-negative, but got split_size={size}")
        if size == 0 and n:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension size of {n}")
        sizes = [builtins.min(size, n - s) for s in range(0, n, size)] if size else [0]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size at "
                               f"dimension {d}), but got split_sizes={sizes}")
    out, start = [], 0
    for s in sizes:
        out.append(narrow(input, d, start, s))
        start += s
    return tuple(out)


def chunk(input, chunks: int, dim: int = 0):
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    d = _normalize_dim(dim, input.dim())
    size = -(-input.shape[d] // chunks)
    return split(input, size, d)


def unbind(input, dim: int = 0):
    d = _normalize_dim(dim, input.dim())
    return tuple(select(input, d, i) for i in range(input.shape[d]))


def tril(input, diagonal: int = 0):
    return _triangle(input, diagonal, lower=True)


def triu(input, diagonal: int = 0):
    return _triangle(input, diagonal, lower=False)


def _triangle(input, diagonal, lower):
    if input.dim() < 2:
        raise RuntimeError(f"{'tril' if lower else 'triu'}: input tensor must have at least 2 dimensions")
    rows, cols = input.shape[-2:]
    i = np.arange(rows)[:, None]
    j = np.arange(cols)[None, :]
    keep = (j - i <= diagonal) if lower else (j - i >= diagonal)
    return _ops.where(tensor(keep), input, _ops.zeros_like_bool(input) if input.dtype is dt.bool_ else 0)


def masked_fill(input, mask, value):
    if not isinstance(mask, Tensor) or mask.dtype is not dt.bool_:
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype "
                           f"{_CPP_TYPE_NAMES[mask.dtype.name] if isinstance(mask, Tensor) else type(mask).__name__}")
    broadcast_shapes(mask.shape, input.shape)
    if isinstance(value, Tensor):
        if value.dim() != 0:
            raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                               f"{value.dim()} dimension(s).")
        value = _ops._to(value, input.dtype)
    else:
        value = input.dtype.np_dtype.type(value).item()
    # out of place, input and mask broadcast together (masked_fill_ then rejects a bigger result)
    return _ops._to(_ops.where(mask, value, input), input.dtype)


# the C++ names torch's masked_fill error uses for a mask's dtype
_CPP_TYPE_NAMES = {"float32": "float", "float64": "double", "float16": "c10::Half", "int64": "long int",
                   "int32": "int", "int16": "short int", "int8": "signed char", "uint8": "unsigned char"}


def gather(input, dim: int, index, *, sparse_grad=False):
    d = _normalize_dim(dim, input.dim())
    if index.dtype not in (dt.int64, dt.int32):
        raise RuntimeError("gather(): Expected dtype int32/int64 for index")
    if index.dim() != input.dim():
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    for axis in range(input.dim()):
        if axis != d and index.shape[axis] > input.shape[axis]:
            raise RuntimeError(f"Size does not match at dimension {axis} expected index {list(index.shape)} to be "
                               f"smaller than self {list(input.shape)} apart from dimension {d}")
    n = input.shape[d]
    index = checked_index(index, n, False, RuntimeError,
                          f"index {{index}} is out of bounds for dimension {d} with size {n}")
    source = input._node
    if index.shape != input.shape:
        ranges = [(0, index.shape[a], 1) if a != d else (0, input.shape[a], 1) for a in range(input.dim())]
        source = ir.slice_(source, tuple(ranges))
    return input._result(ir.gather(source, index._node, d), [input], "gather")


def checked_index(index: Tensor, size: int, wrap: bool, error: type, message: str,
                  low_message: Optional[str] = None, now: bool = True) -> Tensor:
    """`index` as int64, checked to be in [0, size) ([-size, size) if `wrap`: negatives count from
    the end and come out wrapped). Values known now (data, or computed and realized) are checked at
    the call (`now`); the kernels check every value as they compute it, so an index computed lazily,
    or bound to a jitted program at a later call, raises the same error at the realization that
    computes it: `error(message)` with `{index}` the first bad value (`low_message` for a value
    below the range, if the op words that case differently)."""
    bounds = ir.Bounds(size, wrap, error.__name__, message, low_message)
    if now:
        _raise_first_bad([_known_values(index._node)], [bounds])
    return Tensor._from_node(ir.check(_ops._to(index, dt.int64)._node, bounds))


def _known_values(node: ir.Node) -> Optional[np.ndarray]:
    """The values of `node` if they are known without computing anything (a realized node, or a
    view of one), else None."""
    if node.realized is not None:
        return node.realized
    if node.op not in (Op.RESHAPE, Op.PERMUTE, Op.FLIP, Op.EXPAND, Op.CAST):
        return None
    values = _known_values(node.inputs[0])
    if values is None:
        return None
    if node.op is Op.RESHAPE:
        return values.reshape(node.arg)
    if node.op is Op.PERMUTE:
        return values.transpose(node.arg)
    if node.op is Op.FLIP:
        return np.flip(values, node.arg)
    if node.op is Op.EXPAND:
        return np.broadcast_to(values, node.arg)
    return values.astype(node.dtype.np_dtype) if node.dtype is dt.int64 else None


def _raise_first_bad(values: list, bounds: list, shape=None) -> None:
    """Raise the error of the first bad index, in the order torch finds it: element by element (of
    the index tensors broadcast to `shape`), each element's tensors in order. Unknown values (None)
    are left to the kernels."""
    known = [(v, b) for v, b in zip(values, bounds) if v is not None]
    if not known or any(v.size == 0 for v, _ in known):
        return
    if all(v.min() >= (-b.size if b.wrap else 0) and v.max() < b.size for v, b in known):
        return              # (the common case: two vectorized passes, no temporaries)
    shape = np.broadcast_shapes(*(v.shape for v, _ in known)) if shape is None else shape
    bad = np.stack([(np.broadcast_to(v, shape) >= b.size) | (np.broadcast_to(v, shape) < (-b.size if b.wrap else 0))
                    for v, b in known], -1).reshape(-1, len(known))
    if bad.any():
        element, k = divmod(int(np.argmax(bad.reshape(-1))), len(known))
        value, b = known[k]
        raise b.exception(int(np.broadcast_to(value, shape).reshape(-1)[element]))


def index_select(input, dim: int, index):
    d = _normalize_dim(dim, input.dim())
    if index.dim() > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    if index.dtype not in (dt.int64, dt.int32):
        raise RuntimeError("index_select(): Expected dtype int32 or int64 for index")
    n = input.shape[d]
    if d == 1 and input.dim() > 1:      # torch's CPU kernel for dim 1 words it so (torch 2.13)
        error, message = RuntimeError, f"INDICES element is out of DATA bounds, id={{index}} axis_dim={n}"
    else:
        error, message = IndexError, "index out of range in self"
    return _take_along(input, d, checked_index(index.reshape(-1), n, False, error, message))


def _take_along(input: Tensor, d: int, index: Tensor) -> Tensor:
    """input with axis d replaced by the positions `index` (any shape, int64, values in range: see
    `checked_index`): result shape input.shape[:d] + index.shape + input.shape[d+1:]."""
    n = input.shape[d]
    flat_index = index.reshape(-1)
    pre, post = input.shape[:d], input.shape[d + 1:]
    source = input.reshape(math.prod(pre), n, math.prod(post))
    k = flat_index.shape[0]
    idx = expand(flat_index.reshape(1, k, 1), (source.shape[0], k, source.shape[2]))
    gathered = source._result(ir.gather(source._node, idx._node, 1), [source], "index")
    return gathered.reshape(pre + tuple(index.shape) + post)


def take(input, index):
    n = input.numel()
    index = checked_index(index, n, True, IndexError,
                          f"out of range: tried to access index {{index}} on a tensor of {n} elements.")
    return _take_along(input.reshape(-1), 0, index)


# ---------------------------------------------------------------------------------------------
# __getitem__ / __setitem__

def _is_advanced(item) -> bool:
    return isinstance(item, (Tensor, list, np.ndarray)) and not isinstance(item, builtins.bool)


def _expand_ellipsis(items, ndim):
    count = builtins.sum(1 for it in items if it is not None and it is not Ellipsis and
                         not (isinstance(it, Tensor) and it.dtype is dt.bool_) and not isinstance(it, builtins.bool))
    count += builtins.sum(it.dim() for it in items if isinstance(it, Tensor) and it.dtype is dt.bool_)
    if builtins.sum(1 for it in items if it is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if count > ndim:
        raise IndexError(f"too many indices for tensor of dimension {ndim}")
    if Ellipsis in [it for it in items if not isinstance(it, Tensor)]:
        pos = [i for i, it in enumerate(items) if it is Ellipsis and not isinstance(it, Tensor)][0]
        return items[:pos] + [builtins.slice(None)] * (ndim - count) + items[pos + 1:]
    return items + [builtins.slice(None)] * (ndim - count)


def getitem(input: Tensor, index):
    items = list(index) if isinstance(index, tuple) else [index]
    items = [tensor(it) if isinstance(it, (list, np.ndarray)) else it for it in items]
    items = _expand_ellipsis(items, input.dim())
    # 1) basic indexing: ints, slices, None; remember where advanced indices go
    ranges, out_shape, dim = [], [], 0
    advanced = []        # (output axis, index tensor)
    x = input
    for it in items:
        if it is None:
            out_shape.append(("new", None))
        elif isinstance(it, builtins.bool) or (isinstance(it, Tensor) and it.dtype is dt.bool_):
            mask = it if isinstance(it, Tensor) else tensor(it)
            if mask.dim() == 0:
                out_shape.append(("mask0", mask))
                continue
            for k in range(mask.dim()):
                if mask.shape[k] != input.shape[dim + k]:
                    raise IndexError(f"The shape of the mask {list(mask.shape)} at index {k} does not match the shape "
                                     f"of the indexed tensor {list(input.shape)} at index {dim + k}")
            positions = nonzero_tuple(mask)
            for k, p in enumerate(positions):
                ranges.append((0, input.shape[dim], 1))
                out_shape.append(("adv", p))
                dim += 1
        elif isinstance(it, Tensor):
            if it.dtype.is_floating_point:
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            ranges.append((0, input.shape[dim], 1))
            out_shape.append(("adv", it))
            dim += 1
        elif isinstance(it, builtins.slice):
            n = input.shape[dim]
            if it.step is not None and builtins.int(it.step) == 0:
                raise ValueError("slice step cannot be zero")
            if it.step is not None and builtins.int(it.step) < 0:
                raise ValueError("step must be greater than zero")
            start, stop, step = it.indices(n)
            stop = builtins.max(stop, start)
            ranges.append((start, stop, step))
            out_shape.append(("keep", None))
            dim += 1
        else:
            i = builtins.int(it)
            n = input.shape[dim]
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for dimension {dim} with size {n}")
            i %= n
            ranges.append((i, i + 1, 1))
            out_shape.append(("drop", None))
            dim += 1
    x = _slice(x, ranges)
    # 2) drop int-indexed axes, insert None axes
    shape, axis_map, src = [], [], 0
    for kind, payload in out_shape:
        if kind == "new" or kind == "mask0":
            shape.append(1)
            axis_map.append((kind, payload))
        elif kind == "drop":
            src += 1
        else:
            shape.append(x.shape[src])
            axis_map.append((kind, payload))
            src += 1
    if tuple(shape) != tuple(x.shape):      # (torch names the view after the int index or None)
        dropped = builtins.any(kind == "drop" for kind, _ in out_shape)
        x = _reshape(x, tuple(shape), "select" if dropped else "unsqueeze", True)
    adv = [(i, p) for i, (kind, p) in enumerate(axis_map) if kind == "adv"]
    masks0 = [(i, p) for i, (kind, p) in enumerate(axis_map) if kind == "mask0"]
    for i, m in masks0:          # x[True] adds a unit axis; x[False] selects nothing
        if not builtins.bool(m.item()):
            x = narrow(x, i, 0, 0)
    if not adv:
        return x
    return _advanced_index(x, adv)


def nonzero_tuple(mask: Tensor):
    return nonzero_positions(mask)


def nonzero_positions(mask: Tensor):
    return _ops.nonzero(mask, as_tuple=True)


def _advanced_index(x: Tensor, adv) -> Tensor:
    axes = [i for i, _ in adv]
    indices = [p for _, p in adv]
    index_shape = broadcast_shapes(*(p.shape for p in indices))
    # torch names the index's position among the indexed dims, not the tensor's dim
    bounds = [(x.shape[axis], f"index {{index}} is out of bounds for dimension {k} with size {x.shape[axis]}")
              for k, axis in enumerate(axes)]
    _raise_first_bad([_known_values(p._node) for p in indices],
                     [ir.Bounds(n, True, "IndexError", message) for n, message in bounds], index_shape)
    adjacent = axes == list(range(axes[0], axes[0] + len(axes)))
    # move the indexed axes together (to the front when they are not adjacent, as numpy/torch do)
    first = axes[0] if adjacent else 0
    rest = [a for a in range(x.dim()) if a not in axes]
    order = rest[:first] + axes + rest[first:]
    x = permute(x, order)
    sizes = [x.shape[first + k] for k in range(len(axes))]
    # one linear index into the merged indexed axes
    linear = None
    for k, p in enumerate(indices):
        p = checked_index(p, bounds[k][0], True, IndexError, bounds[k][1], now=False)
        p = expand(p, index_shape) if p.shape != index_shape else p
        stride = math.prod(sizes[k + 1:])
        term = _ops.mul(p, stride) if stride != 1 else p
        linear = term if linear is None else _ops.add(linear, term)
    merged = reshape(x, x.shape[:first] + (math.prod(sizes),) + x.shape[first + len(axes):])
    return _take_along(merged, first, linear)


def check_overlap(written: Tensor, operands) -> None:
    """torch refuses an in-place write whose other operand is memory it partly writes."""
    storage = written._storage
    if storage is None:
        return
    for o in operands:
        if isinstance(o, Tensor) and o._storage is storage and o is not written and \
                partial_overlap(storage.root._node.shape, written._view, o._view):
            raise RuntimeError(_PARTIAL_OVERLAP_ERROR)


def setitem(input: Tensor, index, value) -> None:
    """input[index] = value, as an in-place update of input's node (a lazy select)."""
    items = list(index) if isinstance(index, tuple) else [index]
    value_t = value if isinstance(value, Tensor) else Tensor._from_node(ir.const(value, input.dtype, (), input._node.device))
    value_t = _ops._to(value_t, input.dtype)
    if len(items) == 1 and isinstance(items[0], Tensor) and items[0].dtype is dt.bool_ and value_t.numel() == 1:
        # x[mask] = scalar stays lazy in the mask too
        mask = items[0]
        if mask.shape != input.shape[:mask.dim()]:
            getitem(input, mask)          # raises torch's mask-shape error
        mask = expand(mask.reshape(mask.shape + (1,) * (input.dim() - mask.dim())), input.shape)
        input._assign(masked_fill(input, mask, value_t.reshape(())), "index_put")
        return
    region = getitem(input, index)        # checks the index as torch does, and gives the shape written
    check_overlap(region if region._storage is input._storage else input, (value,))
    while value_t.dim() and value_t.shape[0] == 1:      # torch drops leading unit axes of the value
        value_t = value_t.reshape(value_t.shape[1:])
    if builtins.any(_is_advanced(it) for it in items):
        try:
            if broadcast_shapes(value_t.shape, region.shape) != region.shape:
                raise RuntimeError
        except RuntimeError:
            raise RuntimeError(f"shape mismatch: value tensor of shape {list(value_t.shape)} cannot be broadcast "
                               f"to indexing result of shape {list(region.shape)}") from None
    # mark where each element of the selected region lives, and write value broadcast into it;
    # index tensors are data, so the marker needs their values (x[mask] = values is data-dependent)
    index = tuple(it._value() if isinstance(it, Tensor) else it for it in items)
    if any(isinstance(it, Tensor) and it.dtype is not dt.bool_ for it in items):
        getitem(input, index)             # computed index values: checked now, worded as torch does
    marker = _index_map(input.shape, index)
    value_full = expand(value_t, region.shape) if value_t.shape != region.shape else value_t
    placed = _take_along(value_full.reshape(-1), 0, tensor(np.where(marker >= 0, marker, 0)))
    input._assign(_ops.where(tensor(marker >= 0), placed, input), "copy_slices")


def index_put(input: Tensor, indices, values, accumulate: bool = False) -> Tensor:
    """input with values written (or, with accumulate, added: repeated positions add up) at
    input[indices]; out of place."""
    out = input.clone()
    return index_put_(out, indices, values, accumulate)


def index_put_(input: Tensor, indices, values, accumulate: bool = False) -> Tensor:
    indices = tuple(indices)
    if not accumulate:
        setitem(input, indices, values)
        return input
    index = tuple(it._value() if isinstance(it, Tensor) else it for it in indices)
    try:
        positions = np.arange(input.numel(), dtype=np.int64).reshape(tuple(input.shape))[index]
    except IndexError as e:
        raise IndexError(str(e).replace("axis", "dimension")) from None
    value = values if isinstance(values, Tensor) else tensor(values, dtype=input.dtype)
    value = _ops._to(value, input.dtype)
    try:
        value = expand(value, positions.shape) if tuple(value.shape) != positions.shape else value
    except RuntimeError:
        raise RuntimeError(f"shape mismatch: value tensor of shape {list(value.shape)} cannot be broadcast to "
                           f"indexing result of shape {list(positions.shape)}") from None
    flat = input.reshape(-1)
    node = ir.scatter_add(flat._node, tensor(positions.reshape(-1))._node, value.reshape(-1)._node, 0)
    added = input._result(node, [input, value], "index_put").reshape(tuple(input.shape))
    input._assign(added, "index_put_")
    return input


def _index_map(shape, index) -> np.ndarray:
    """For every element of a tensor of `shape`: its position in x[index] flattened, or -1
    (numpy indexing, which is torch's; a position written twice keeps the last element)."""
    positions = np.full(shape, -1, np.int64)
    selected_shape = np.shape(positions[index])
    positions[index] = np.arange(math.prod(selected_shape)).reshape(selected_shape)
    return positions
