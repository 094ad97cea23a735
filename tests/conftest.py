"""Shared helpers for the tests that use PyTorch as the oracle.

`assert_close(lazy, expected)` is the one comparison every such test uses: same dtype, same shape,
and values equal (ints and bools exactly; floats within a tolerance that depends on the dtype and
on whether the result is a reduction; NaN in the same places, infinities equal).
`pair(array)` gives a lazytorch tensor and a torch tensor made from the same numpy data.
"""
from __future__ import annotations

import numpy as np
import pytest

import lazytorch as lt

# (rtol, atol) per dtype for elementwise results; reductions use REDUCTION_TOL. The small atol
# covers values that are zero in exact arithmetic (sin(pi), x - x*1) where rtol means nothing.
ELEMENTWISE_TOL = {"float32": (1e-5, 1e-6), "float64": (1e-10, 1e-12), "float16": (1e-3, 1e-3)}
REDUCTION_TOL = {"float32": (1e-4, 1e-5), "float64": (1e-9, 1e-11), "float16": (1e-2, 1e-2)}


def dtype_name(dtype) -> str:
    """'float32' for torch.float32 and lazytorch.float32 alike."""
    return str(dtype).removeprefix("torch.")


def to_numpy(value) -> np.ndarray:
    if isinstance(value, lt.Tensor):
        return np.asarray(value.detach().numpy())
    return value.detach().numpy()


def assert_close(lazy, expected, *, reduction: bool = False, rtol=None, atol=None) -> None:
    """Assert that the lazytorch tensor `lazy` equals the torch tensor `expected`."""
    assert isinstance(lazy, lt.Tensor), f"expected a lazytorch.Tensor, got {type(lazy).__name__}"
    assert dtype_name(lazy.dtype) == dtype_name(expected.dtype), f"dtype {lazy.dtype} != {expected.dtype}"
    assert tuple(lazy.shape) == tuple(expected.shape), f"shape {tuple(lazy.shape)} != {tuple(expected.shape)}"
    got, want = to_numpy(lazy), to_numpy(expected)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype, want.shape, want.dtype)
    name = dtype_name(expected.dtype)
    if not name.startswith("float"):
        np.testing.assert_array_equal(got, want)
        return
    default_rtol, default_atol = (REDUCTION_TOL if reduction else ELEMENTWISE_TOL)[name]
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), equal_nan=True,
                               rtol=default_rtol if rtol is None else rtol,
                               atol=default_atol if atol is None else atol)


def make_array(shape, dtype: str = "float32", seed: int = 0, *, low: int = -5, high: int = 6,
               nonzero: bool = False) -> np.ndarray:
    """Deterministic test data: normal floats, integers in [low, high), random bools."""
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("float"):
        array = rng.standard_normal(shape).astype(dtype)
        if nonzero:
            array[np.abs(array) < 0.1] = 0.5
        return array
    if dtype == "uint8":
        low = max(low, 0)
    array = rng.integers(low, high, shape).astype(dtype)
    if nonzero:
        array[array == 0] = 1
    return array


def pair(array, requires_grad: bool = False):
    """(lazytorch tensor, torch tensor) holding copies of the same numpy data."""
    import torch
    array = np.asarray(array)
    return (lt.tensor(array.copy(), requires_grad=requires_grad),
            torch.tensor(array.copy(), requires_grad=requires_grad))


# Special float values: every elementwise op must propagate them exactly as torch does.
SPECIAL = np.array([[np.nan, np.inf, -np.inf, 0.0],
                    [-0.0, 1.5, -2.5, 0.5],
                    [3.7, -1e-3, 88.0, -100.0]], np.float32)


@pytest.fixture
def counters():
    """Reset the compiler counters and return a function reading them."""
    lt.debug.reset_counters()
    return lt.debug.counters


@pytest.fixture(autouse=True)
def _restore_global_state():
    """Tests may change the default dtype or the seed; every test starts from the defaults."""
    default = lt.get_default_dtype()
    yield
    lt.set_default_dtype(default)
