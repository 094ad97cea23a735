"""Scalar helpers the generated kernels call where a primitive is not one Python operator.

Each is `njit(inline='always')`, so inside a kernel it costs nothing over writing it out.
"""
import math

import numba
import numpy as np

_inline = numba.njit(inline="always")


@_inline
def maximum(a, b):
    # torch.maximum propagates NaN from either side; Python's max() would drop it
    return a if (a > b or a != a) else b


@_inline
def minimum(a, b):
    return a if (a < b or a != a) else b


@_inline
def sigmoid(x):
    # split by sign so exp never overflows: the float64 path (float32 has its own fast helper)
    if x >= 0:
        return 1.0 / (1.0 + np.exp(-x))
    e = np.exp(x)
    return e / (1.0 + e)


@_inline
def erf(x):
    return math.erf(x)


@_inline
def sign(x):
    return (x > 0) - (x < 0) if x == x else x


@_inline
def floor_divide(a, b):
    # floor(a / b) for floats as torch.floor_divide; Python's // on floats matches
    return a // b
