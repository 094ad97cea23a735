"""Sliding windows over the spatial axes: the one mechanism behind conv, pooling, unfold and fold.

A window layout (which input positions each output reads) depends only on shapes, so numpy
computes it once per geometry (cached) as an index table: `index[l, k]` is the flat spatial
position read by tap `k` of window `l`, and `valid[l, k]` says whether it lies inside the input
(outside is padding). Tensors then use only IR primitives:

- `gather_windows`: one GATHER through the table (im2col). Padding taps read position 0 and are
  replaced by the fill value with a `where` on the (constant) validity mask, so no padded copy of
  the input is ever made.
- `scatter_windows`: the transpose, one SCATTER_ADD (col2im), for transposed convolution and fold.

Both are differentiable by the IR autodiff (the VJP of a gather is a scatter-add and vice versa).
Windows as gathers rather than strided slices: each strided slice of a padded view becomes, in the
backward pass, a reshape of a padded view; folded into one kernel that is an index expression of
nested div/mod per tap, which took Numba 10-20 s to compile for a single stride-2 conv. A gather
keeps every kernel's index arithmetic affine, so a conv's forward and backward compile in ~3 s.
"""
from __future__ import annotations

import functools
import math
from typing import Optional, Sequence

import numpy as np

from compiler.ir import node as ir
from lazytorch import _ops
from lazytorch._tensor import Tensor


@functools.lru_cache(maxsize=1024)
def window_positions(n_windows: tuple, size: tuple, kernel: tuple, stride: tuple, pad_before: tuple,
                     dilation: tuple):
    """(index, valid) of windows over a grid of `size`: window `o` (per axis) tap `k` reads
    position o*stride - pad_before + k*dilation. index (L, K) int64, clipped to 0 where invalid;
    valid (L, K) bool, or None when every tap is inside."""
    nd = len(size)
    flat = np.zeros(tuple(n_windows) + tuple(kernel), np.int64)
    valid = np.ones(tuple(n_windows) + tuple(kernel), np.bool_)
    grid_stride = 1
    for d in reversed(range(nd)):
        pos = (np.arange(n_windows[d])[:, None] * stride[d] - pad_before[d]
               + np.arange(kernel[d])[None, :] * dilation[d])
        shape = [1] * (2 * nd)
        shape[d], shape[nd + d] = n_windows[d], kernel[d]
        pos = pos.reshape(shape)
        valid = valid & (pos >= 0) & (pos < size[d])
        flat = flat + pos * grid_stride
        grid_stride *= size[d]
    L, K = math.prod(n_windows), math.prod(kernel)
    flat = np.where(valid, flat, 0).reshape(L, K)
    valid = valid.reshape(L, K)
    return flat, (None if valid.all() else valid)


def output_size(size, kernel, stride, pad_before, pad_after, dilation, ceil_mode: bool = False) -> tuple:
    """Number of windows per axis (torch's formula, ceil_mode included)."""
    out = []
    for n, k, s, pb, pa, d in zip(size, kernel, stride, pad_before, pad_after, dilation):
        span = d * (k - 1) + 1
        total = n + pb + pa - span
        if ceil_mode:
            o = -(-total // s) + 1
            if (o - 1) * s >= n + pb:       # the last window must start inside the input or left pad
                o -= 1
        else:
            o = total // s + 1 if total >= 0 else 0
        out.append(o)
    return tuple(out)


@functools.lru_cache(maxsize=256)
def adaptive_positions(size: tuple, out: tuple):
    """Adaptive pooling windows: output o reads [floor(o*n/out), ceil((o+1)*n/out)) per axis.
    Returns (index (L, K), valid (L, K) or None, count (L,)) with K the largest window."""
    nd = len(size)
    per_axis = []
    for n, m in zip(size, out):
        start = (np.arange(m) * n) // m
        end = -((-(np.arange(m) + 1) * n) // m)
        per_axis.append((start, end, int((end - start).max())))
    kernel = tuple(k for _, _, k in per_axis)
    flat = np.zeros(tuple(out) + kernel, np.int64)
    valid = np.ones(tuple(out) + kernel, np.bool_)
    count = np.ones(tuple(out), np.int64)
    grid_stride = 1
    for d in reversed(range(nd)):
        start, end, k = per_axis[d]
        pos = start[:, None] + np.arange(k)[None, :]
        ok = pos < end[:, None]
        shape = [1] * (2 * nd)
        shape[d], shape[nd + d] = out[d], k
        valid = valid & ok.reshape(shape)
        flat = flat + np.minimum(pos, size[d] - 1).reshape(shape) * grid_stride
        count = count * (end - start).reshape([out[i] if i == d else 1 for i in range(nd)])
        grid_stride *= size[d]
    L, K = math.prod(out), math.prod(kernel)
    valid = valid.reshape(L, K)
    return np.where(valid, flat.reshape(L, K), 0), (None if valid.all() else valid), count.reshape(L)


def _const_tensor(array: np.ndarray) -> Tensor:
    return Tensor._from_node(ir.buffer(array))


def gather_windows(x: Tensor, index: np.ndarray, valid: Optional[np.ndarray], fill: float,
                   channels_last: bool) -> Tensor:
    """Window taps of x (N, C, *spatial) through `index` (A, B) (usually (L, K)).

    channels_last: result (N, A*B, C), the row layout of a conv's im2col matrix;
    otherwise (N, C, A*B), the layout pooling and unfold reduce or reshape."""
    N, C = x.shape[0], x.shape[1]
    S = math.prod(x.shape[2:])
    A, B = index.shape
    if channels_last:
        source = x.reshape(N, C, S).permute(0, 2, 1)
        idx = _const_tensor(index.reshape(1, A * B, 1)).expand(N, A * B, C)
        axis, mask_shape = 1, (1, A * B, 1)
    else:
        source = x.reshape(N, C, S)
        idx = _const_tensor(index.reshape(1, 1, A * B)).expand(N, C, A * B)
        axis, mask_shape = 2, (1, 1, A * B)
    taps = x._result(ir.gather(source._node, idx._node, axis), [x], "im2col")
    if valid is not None:
        taps = _ops.where(_const_tensor(valid.reshape(mask_shape)), taps, fill)
    return taps


def scatter_windows(cols: Tensor, index: np.ndarray, valid: Optional[np.ndarray], out_spatial: Sequence[int]) -> Tensor:
    """col2im: add cols (N, L*K, C) into an (N, C, *out_spatial) grid at `index` (L, K); taps that
    are not `valid` (outside the grid) land in a spare slot that is dropped."""
    N, LK, C = cols.shape
    S = math.prod(out_spatial)
    flat = index if valid is None else np.where(valid, index, S)
    idx = _const_tensor(np.ascontiguousarray(flat.reshape(1, LK, 1))).expand(N, LK, C)
    base = ir.const(0, cols.dtype, (N, S + 1, C), cols._node.device)
    summed = cols._result(ir.scatter_add(base, idx._node, cols._node, 1), [cols], "col2im")
    return summed.narrow(1, 0, S).permute(0, 2, 1).reshape(N, C, *out_spatial)

