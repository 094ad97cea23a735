"""View folding: chains of movement ops become one index map, read inside kernels.

A `View` is numpy-like (shape, strides in elements, offset) plus an optional validity mask per
axis, which is how zero padding is expressed without copying. A `ShapeTracker` is a stack of
views: when a reshape cannot be expressed with strides (reshaping a permuted view, say), a new
view is pushed whose flat index is decoded with div/mod into the indices of the view below.
Movement ops thus never copy data; a kernel reads its inputs through the tracker's index map.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from compiler.ir.ops import Op

Shape = tuple[int, ...]


def contiguous_strides(shape: Shape) -> tuple[int, ...]:
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc if n != 1 else 0)
        acc *= n
    return tuple(reversed(strides))


@dataclass(frozen=True)
class View:
    shape: Shape
    strides: tuple[int, ...]
    offset: int = 0
    mask: Optional[tuple[tuple[int, int], ...]] = None   # valid index range per axis, or None

    @staticmethod
    def contiguous(shape: Shape) -> "View":
        return View(tuple(shape), contiguous_strides(shape))

    @property
    def is_contiguous(self) -> bool:
        return self.offset == 0 and self.mask is None and self.strides == contiguous_strides(self.shape)

    def _masks(self) -> tuple[tuple[int, int], ...]:
        return self.mask if self.mask is not None else tuple((0, n) for n in self.shape)

    def _with(self, shape, strides, offset, mask) -> "View":
        # size-1 axes get stride 0, and a mask that covers everything is dropped, so equal views
        # compare equal and kernels that differ only in such details share one compiled function
        strides = tuple(0 if n == 1 else s for n, s in zip(shape, strides))
        if mask is not None:
            # an empty range is always (0, 0): expand and reshape test emptiness by that value (a
            # slice of padding leaves ranges like (1, 1), which expand took for "all valid")
            mask = tuple(m if m[0] < m[1] else (0, 0) for m in mask)
        if mask is not None and all(m == (0, n) for m, n in zip(mask, shape)):
            mask = None
        return View(tuple(shape), strides, offset, mask)

    def permute(self, order) -> "View":
        mask = None if self.mask is None else tuple(self.mask[i] for i in order)
        return self._with([self.shape[i] for i in order], [self.strides[i] for i in order], self.offset, mask)

    def expand(self, shape) -> "View":
        strides = [0 if n != m else s for n, m, s in zip(self.shape, shape, self.strides)]
        mask = None
        if self.mask is not None:
            mask = tuple(m if n == size else ((0, size) if m != (0, 0) else (0, 0))
                         for m, n, size in zip(self.mask, self.shape, shape))
        return self._with(shape, strides, self.offset, mask)

    def slice(self, ranges) -> "View":
        offset, shape, strides, mask = self.offset, [], [], []
        for (start, stop, step), stride, (lo, hi) in zip(ranges, self.strides, self._masks()):
            size = max(0, -(-(stop - start) // step))
            offset += start * stride
            shape.append(size)
            strides.append(stride * step)
            new_lo = min(size, max(0, -(-(lo - start) // step)))
            new_hi = min(size, max(new_lo, -(-(hi - start) // step)))
            mask.append((new_lo, new_hi))
        return self._with(shape, strides, offset, tuple(mask) if self.mask is not None else None)

    def flip(self, axes) -> "View":
        offset, strides, mask = self.offset, list(self.strides), list(self._masks())
        for a in axes:
            n = self.shape[a]
            offset += (n - 1) * strides[a]
            strides[a] = -strides[a]
            lo, hi = mask[a]
            mask[a] = (n - hi, n - lo)
        return self._with(self.shape, strides, offset, tuple(mask) if self.mask is not None else None)

    def pad(self, widths) -> "View":
        offset = self.offset - sum(before * s for (before, _), s in zip(widths, self.strides))
        shape = [n + a + b for n, (a, b) in zip(self.shape, widths)]
        mask = tuple((lo + a, hi + a) for (lo, hi), (a, _) in zip(self._masks(), widths))
        return self._with(shape, self.strides, offset, mask)

    def reshape(self, new_shape) -> Optional["View"]:
        """The same elements seen with `new_shape`, or None when strides cannot express it."""
        if math.prod(new_shape) == 0 or self.shape == tuple(new_shape):
            return View.contiguous(tuple(new_shape)) if math.prod(new_shape) == 0 else self
        squeezed_old = [i for i, n in enumerate(self.shape) if n != 1]
        squeezed_new = [i for i, n in enumerate(new_shape) if n != 1]
        if [self.shape[i] for i in squeezed_old] == [new_shape[i] for i in squeezed_new]:
            # only size-1 axes come or go: keep strides and masks of the others
            strides, mask = [0] * len(new_shape), [(0, 1)] * len(new_shape)
            masks = self._masks()
            for old, new in zip(squeezed_old, squeezed_new):
                strides[new], mask[new] = self.strides[old], masks[old]
            if self.mask is not None and any(masks[i] == (0, 0) for i in range(len(self.shape)) if self.shape[i] == 1):
                return None
            return self._with(new_shape, strides, self.offset, tuple(mask) if self.mask is not None else None)
        if self.mask is not None:
            return None
        strides = _reshape_strides(self.shape, self.strides, tuple(new_shape))
        return None if strides is None else self._with(new_shape, strides, self.offset, None)


def _reshape_strides(shape: Shape, strides, new_shape: Shape) -> Optional[tuple[int, ...]]:
    """numpy's no-copy reshape: group axes with equal products; each old group must be mergeable."""
    old = [(n, s) for n, s in zip(shape, strides) if n != 1]
    new_axes = [j for j, n in enumerate(new_shape) if n != 1]
    result = [0] * len(new_shape)
    oi = nj = 0
    while oi < len(old):
        o_start, n_start = oi, nj
        o_prod, n_prod = old[oi][0], new_shape[new_axes[nj]]
        while o_prod != n_prod:
            if o_prod < n_prod:
                oi += 1
                o_prod *= old[oi][0]
            else:
                nj += 1
                n_prod *= new_shape[new_axes[nj]]
        if any(old[k][1] != old[k + 1][1] * old[k + 1][0] for k in range(o_start, oi)):
            return None
        stride = old[oi][1]
        for k in range(nj, n_start - 1, -1):
            result[new_axes[k]] = stride
            stride *= new_shape[new_axes[k]]
        oi += 1
        nj += 1
    return tuple(result)


@dataclass(frozen=True)
class ShapeTracker:
    """Views from the buffer (views[0]) up to the shape a kernel sees (views[-1])."""
    views: tuple[View, ...]

    @staticmethod
    def contiguous(shape: Shape) -> "ShapeTracker":
        return ShapeTracker((View.contiguous(tuple(shape)),))

    @property
    def shape(self) -> Shape:
        return self.views[-1].shape

    @property
    def single_view(self) -> Optional[View]:
        return self.views[0] if len(self.views) == 1 else None

    def _top(self, view: View) -> "ShapeTracker":
        return ShapeTracker(self.views[:-1] + (view,))

    def apply(self, op: Op, arg) -> "ShapeTracker":
        """Compose the movement op `op(arg)` (whose input has this tracker's shape) on top."""
        top = self.views[-1]
        if op is Op.PERMUTE:
            return self._top(top.permute(arg))
        if op is Op.EXPAND:
            return self._top(top.expand(arg))
        if op is Op.SLICE:
            return self._top(top.slice(arg))
        if op is Op.FLIP:
            return self._top(top.flip(arg))
        if op is Op.PAD:
            return self._top(top.pad(arg))
        if op is Op.RESHAPE:
            view = top.reshape(arg)
            if view is not None:
                return self._top(view)
            return ShapeTracker(self.views + (View.contiguous(arg),))
        raise ValueError(f"not a movement op: {op}")
