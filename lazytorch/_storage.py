"""Storage and aliasing: PyTorch's view and in-place semantics over immutable IR nodes.

A tensor that no other tensor aliases simply holds its node (`Tensor._node`), and an in-place op
gives it a new node. Once a second tensor shares its memory - a view (`x[1:3]`, `x.t()`,
`x.view(...)`), `.data`, `.detach()`, or a numpy array handed out by `.numpy()` - both belong to a
`Storage`. The storage holds the whole buffer's current value as the node of a hidden *root* tensor,
and every alias is a chain of view steps (reshape, permute, expand, slice, as_strided) applied to it.

An in-place op on an alias is *functionalized*: the alias's new value is written back into the
root through the inverse of its steps (a reshape, a permutation, or a masked strided write built
from pad/reshape/select nodes, so it stays lazy and fuses), and every live alias then reads the new
root. Nothing is copied unless a kernel needs it; an alias of the whole storage (`p.data`) writes
the root directly.

The root is a real `Tensor` (never handed to the user) so that `lazytorch.jit`'s tracer, which
watches every tensor's node, sees reads and writes of the storage like those of any other tensor.

PyTorch's metadata is computed from the steps: `stride()`, `storage_offset()`, `is_contiguous()`,
`_base`, `_version`, `data_ptr()`. Results of computations are always contiguous here (PyTorch
keeps an input's layout for elementwise results; see README "Differences from PyTorch").

Memory shared with numpy (`from_numpy`, `.numpy()`, `np.asarray`) is *exported*: while it is, every
in-place write to the storage is computed at once into that memory, and every op reading the storage
is computed at the op, so a later write through numpy cannot change a result PyTorch had already
computed.
"""
from __future__ import annotations

import itertools
import math
import weakref
from typing import Optional

import numpy as np

from compiler import dtypes as dt
from compiler.ir import node as ir
from compiler.ir.ops import Op

_OVERLAP_ERROR = ("unsupported operation: more than one element of the written-to tensor refers to a single "
                  "memory location. Please clone() the tensor before performing the operation.")

# fake, stable addresses for data_ptr(): distinct storages never overlap (1 TiB apart)
_addresses = itertools.count(1 << 40, 1 << 40)


class Storage:
    """The memory a group of aliasing tensors share (see the module docstring)."""
    __slots__ = ("root", "aliases", "shared", "exports", "permanent", "address", "__weakref__")

    def __init__(self, root):
        self.root = root                                # hidden Tensor holding the whole buffer's node
        self.aliases: list[weakref.ref] = []            # the tensors viewing it
        self.shared: Optional[np.ndarray] = None        # memory numpy arrays alias, once exported
        self.exports: list[weakref.ref] = []            # handed-out arrays that may still be alive
        self.permanent = False                          # from_numpy: shared for the storage's life
        self.address = next(_addresses)

    def live(self) -> list:
        tensors, refs = [], []
        for r in self.aliases:
            t = r()
            if t is not None:
                tensors.append(t)
                refs.append(r)
        self.aliases = refs
        return tensors

    @property
    def exported(self) -> bool:
        """True while numpy may see or write this memory."""
        if self.permanent:
            return True
        exports = self.exports
        if not exports:
            return False
        if exports[-1]() is None:
            exports[:] = [r for r in exports if r() is not None]
        return bool(exports)

    def nbytes(self) -> int:
        return self.root._node.numel * self.root._node.dtype.itemsize


# ---------------------------------------------------------------------------------------------
# view steps: (kind, arg) applied to a node with the IR's movement constructors

def apply_step(node: ir.Node, step) -> ir.Node:
    kind, arg = step
    if kind is Op.RESHAPE:
        return ir.reshape(node, arg)
    if kind is Op.PERMUTE:
        return ir.permute(node, arg)
    if kind is Op.EXPAND:
        return ir.expand(node, arg)
    if kind is Op.SLICE:
        return ir.slice_(node, arg)
    if kind == "as_strided":                         # arg: (size, stride, offset) over the flat storage
        return _take(ir.reshape(node, (node.numel,)), _positions(*arg))
    raise AssertionError(kind)


def derive(root: ir.Node, steps: tuple) -> ir.Node:
    node = root
    for step in steps:
        node = apply_step(node, step)
    return node


def write_back(root: ir.Node, steps: tuple, value: ir.Node) -> ir.Node:
    """The root's new node once the view `steps` of it holds `value` (functionalization)."""
    if any(kind is Op.EXPAND or kind == "as_strided" for kind, _ in steps):
        # an expanded view's writes (to distinct memory, checked at the call) land through their
        # positions in the flat storage
        return _unapply(root, ("as_strided", layout(root.shape, steps)), value)
    parents = [root]
    for step in steps[:-1]:
        parents.append(apply_step(parents[-1], step))
    for step, parent in zip(reversed(steps), reversed(parents)):
        value = _unapply(parent, step, value)
    return value


def _unapply(parent: ir.Node, step, value: ir.Node) -> ir.Node:
    """`parent` with its view `step` replaced by `value`."""
    kind, arg = step
    if kind is Op.RESHAPE:
        return ir.reshape(value, parent.shape)
    if kind is Op.PERMUTE:
        return ir.permute(value, tuple(np.argsort(arg)))
    if kind is Op.SLICE:
        if value.numel == 0:
            return parent
        placed = _unslice(value, arg, parent.shape)
        inside = _unslice(ir.const(True, dt.bool_, value.shape, value.device), arg, parent.shape)
        return ir.where(inside, placed, parent)
    if kind == "as_strided":
        flat = ir.reshape(parent, (parent.numel,))
        positions = _positions(*arg).reshape(-1)
        source = np.full(parent.numel, -1, np.int64)
        source[positions] = np.arange(positions.size)        # (an element written twice keeps the last)
        hit = ir.buffer(source >= 0, parent.device)
        taken = _take(ir.reshape(value, (value.numel,)), np.maximum(source, 0))
        return ir.reshape(ir.where(hit, taken, flat), parent.shape)
    raise AssertionError(kind)


def _unslice(node: ir.Node, ranges, full_shape) -> ir.Node:
    """`node` (the shape of `x[ranges]`) placed where those elements sit in a `full_shape` tensor,
    zeros (False) elsewhere: pads, and for a step s a reshape that interleaves s - 1 zeros."""
    for axis, ((start, stop, step), n) in enumerate(zip(ranges, full_shape)):
        m = node.shape[axis]
        shape = node.shape
        if step > 1 and m > 1:
            node = ir.reshape(node, shape[:axis] + (m, 1) + shape[axis + 1:])
            node = ir.pad(node, ((0, 0),) * (axis + 1) + ((0, step - 1),) + ((0, 0),) * (len(shape) - axis - 1))
            m = m * step
            node = ir.reshape(node, shape[:axis] + (m,) + shape[axis + 1:])
            if start + m > n:                  # the zeros after the last element run past the end
                keep = n - start
                node = ir.slice_(node, tuple((0, keep, 1) if a == axis else (0, k, 1)
                                             for a, k in enumerate(node.shape)))
                m = keep
        widths = [(0, 0)] * len(shape)
        widths[axis] = (start, n - start - m)
        node = ir.pad(node, tuple(widths))
    return node


def _positions(size, stride, offset) -> np.ndarray:
    """Flat storage positions of an as_strided view's elements."""
    positions = np.full(tuple(size), offset, np.int64)
    for axis, (n, s) in enumerate(zip(size, stride)):
        shape = [1] * len(size)
        shape[axis] = n
        positions = positions + (np.arange(n, dtype=np.int64) * s).reshape(shape)
    return positions


def _take(flat: ir.Node, positions: np.ndarray) -> ir.Node:
    """flat[positions] (positions known on the host, in range): a gather, shaped like positions."""
    index = ir.buffer(np.ascontiguousarray(positions.reshape(-1), np.int64), flat.device)
    return ir.reshape(ir.gather(flat, index, 0), tuple(positions.shape))


# ---------------------------------------------------------------------------------------------
# PyTorch's metadata for a chain of steps

def contiguous_strides(shape) -> tuple[int, ...]:
    """torch's strides of a fresh tensor (a size-1 axis gets the stride it would have, not 0)."""
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(strides))


def layout(root_shape, steps) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """(shape, strides, storage offset) of the view `steps` of a contiguous `root_shape` tensor."""
    shape, strides, offset = tuple(root_shape), contiguous_strides(root_shape), 0
    for kind, arg in steps:
        if kind is Op.RESHAPE:
            strides = view_strides(shape, strides, arg)
            shape = tuple(arg)
        elif kind is Op.PERMUTE:
            shape, strides = tuple(shape[i] for i in arg), tuple(strides[i] for i in arg)
        elif kind is Op.EXPAND:
            strides = tuple(0 if a != b else s for a, b, s in zip(shape, arg, strides))
            shape = tuple(arg)
        elif kind is Op.SLICE:
            offset += sum(start * s for (start, _, _), s in zip(arg, strides))
            shape = tuple(max(0, -(-(stop - start) // step)) for start, stop, step in arg)
            strides = tuple(s * step for (_, _, step), s in zip(arg, strides))
        else:                                  # as_strided: absolute
            shape, strides, offset = tuple(arg[0]), tuple(arg[1]), arg[2]
    return shape, strides, offset


def view_strides(shape, strides, new_shape) -> Optional[tuple[int, ...]]:
    """The strides of `new_shape` viewing a (shape, strides) tensor without copying, or None when
    no strides can (torch's rule: each run of new axes must lie within one contiguous run of old
    axes)."""
    new_shape = tuple(new_shape)
    if math.prod(shape) == 0 or math.prod(shape) == 1 and math.prod(new_shape) == 1:
        return contiguous_strides(new_shape)
    if not shape:
        return None
    out = [0] * len(new_shape)
    view_d = len(new_shape) - 1
    base_stride = strides[-1]
    old_numel = new_numel = 1
    for d in range(len(shape) - 1, -1, -1):
        old_numel *= shape[d]
        # a chunk of old axes ends where the next axis out is not laid out right after this one
        if d == 0 or (shape[d - 1] != 1 and strides[d - 1] != old_numel * base_stride):
            while view_d >= 0 and (new_numel < old_numel or new_shape[view_d] == 1):
                out[view_d] = new_numel * base_stride
                new_numel *= new_shape[view_d]
                view_d -= 1
            if new_numel != old_numel:
                return None
            if d > 0:
                base_stride = strides[d - 1]
                old_numel = new_numel = 1
    if view_d != -1:
        return None
    return tuple(out)


def is_contiguous(shape, strides) -> bool:
    expected = 1
    for n, s in zip(reversed(shape), reversed(strides)):
        if n == 0:
            return True
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


def writes_overlap(root_shape, steps) -> bool:
    """True when a view reaches one memory location through several of its elements (a zero stride
    on an axis longer than 1, as after `expand`): torch refuses in-place writes to those."""
    if not any(kind is Op.EXPAND or kind == "as_strided" for kind, _ in steps):
        return False
    shape, strides, _ = layout(root_shape, steps)
    return any(s == 0 and n > 1 for n, s in zip(shape, strides))


_PARTIAL_OVERLAP_ERROR = ("unsupported operation: some elements of the input tensor and the written-to tensor refer "
                          "to a single memory location. Please clone() the tensor before performing the operation.")


def _dense_span(shape, strides, offset) -> Optional[tuple[int, int]]:
    """[first, end) of the memory a view covers when it covers it densely (a contiguous block,
    whatever the axis order), else None (torch calls the overlap of such views too hard to tell)."""
    axes = sorted((s, n) for n, s in zip(shape, strides) if n != 1)
    expected = 1
    for s, n in axes:
        if s != expected:
            return None
        expected *= n
    return offset, offset + math.prod(shape)


def partial_overlap(root_shape, written, read) -> bool:
    """torch's check before an in-place op reads another alias of the memory it writes: the two
    views cover some but not the same elements (the result would depend on the order of the loop)."""
    a, b = layout(root_shape, written), layout(root_shape, read)
    if a == b or math.prod(a[0]) == 0 or math.prod(b[0]) == 0:
        return False
    span_a, span_b = _dense_span(*a), _dense_span(*b)
    if span_a is None or span_b is None:
        return False
    if span_a == span_b:
        return a[1] != b[1]
    return span_a[0] < span_b[1] and span_b[0] < span_a[1]
