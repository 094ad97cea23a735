"""Tests for compiler/codegen/fastmath.py.

Every helper is exercised the way generated code uses it: inlined into an
``@njit`` loop over a float32 array (so the vectorized code is what gets
checked), compared with numpy's float64 result on the same float32 inputs.
"""

import functools
import math
import pathlib
import re
import sys
import time

import numba
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # plain `pytest` (not `python -m pytest`)
    sys.path.insert(0, str(ROOT))

from compiler.codegen.fastmath import FAST_F32, FASTMATH_FLAGS, exp_f32  # noqa: E402

F32 = np.float32
TINY = float(np.finfo(np.float32).tiny)  # smallest normal; below it denormals may flush
REL_TOL = 2e-6

# Kernels are checked both with the intended flags and with no fastmath at
# all (the helpers inherit the caller's flags when inlined).
FLAG_SETS = {"fastmath_flags": set(FASTMATH_FLAGS), "ieee": False}


@functools.lru_cache(maxsize=None)
def kernel(name, flags="fastmath_flags"):
    fn = FAST_F32[name]

    @numba.njit(fastmath=FLAG_SETS[flags])
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = fn(x[i])

    return apply


def run(name, x, flags="fastmath_flags"):
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty_like(x)
    kernel(name, flags)(x, out)
    return out


_erf64 = np.frompyfunc(math.erf, 1, 1)

REFERENCE = {
    "exp": np.exp,
    "expm1": np.expm1,
    "log": np.log,
    "log1p": np.log1p,
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "erf": lambda x: _erf64(x).astype(np.float64),
}


def reference(name, x):
    with np.errstate(all="ignore"):
        return REFERENCE[name](x.astype(np.float64))


# -- inputs -----------------------------------------------------------------
def _signed_logspace(rng, lo, hi, n):
    mag = 10.0 ** rng.uniform(lo, hi, n)
    return mag * rng.choice([-1.0, 1.0], n)


def inputs(name):
    rng = np.random.default_rng(1234)
    u = rng.uniform
    if name == "log":
        parts = [
            10.0 ** u(-38, 30, 50_000),  # wide positive range up to 1e30
            10.0 ** u(30, 38.5, 5_000),  # up to FLT_MAX
            10.0 ** u(-45, -38, 10_000),  # subnormal inputs
            u(0, 2, 50_000),
            u(0.999, 1.001, 20_000),  # result near 0: relative error matters
        ]
    elif name == "log1p":
        parts = [
            _signed_logspace(rng, -30, -1, 50_000),  # tiny, both signs
            u(-1, 1, 50_000),
            10.0 ** u(-1, 30, 20_000),
            -(10.0 ** u(-45, -38, 5_000)),
        ]
    else:
        big = 100.0 if name in ("exp", "expm1", "sigmoid", "tanh") else 20.0
        parts = [
            _signed_logspace(rng, -30, -4, 20_000),  # tiny, relative error matters
            u(-1e-3, 1e-3, 20_000),
            u(-1, 1, 50_000),
            u(-20, 20, 50_000),
            u(-big, big, 50_000),
            _signed_logspace(rng, -45, -38, 5_000),  # subnormal inputs
        ]
    x = np.concatenate(parts).astype(np.float32)
    if name in ("exp", "expm1"):
        # dense sampling around overflow / underflow thresholds
        x = np.concatenate([x, u(80, 95, 20_000), u(-110, -80, 20_000)]).astype(np.float32)
    return x


def errors(name, x, out):
    """(max relative error over normal results, max absolute error)."""
    ref = reference(name, x)
    finite = np.isfinite(ref) & (np.abs(ref) <= np.finfo(np.float32).max)
    normal = finite & (np.abs(ref) >= TINY)
    with np.errstate(invalid="ignore"):  # inf - inf outside `finite`
        diff = np.abs(out.astype(np.float64) - ref)
    rel = (diff[normal] / np.abs(ref[normal])).max()
    return rel, diff[finite].max()


# -- accuracy ---------------------------------------------------------------
@pytest.mark.parametrize("flags", sorted(FLAG_SETS))
@pytest.mark.parametrize("name", sorted(FAST_F32))
def test_accuracy(name, flags):
    x = inputs(name)
    out = run(name, x, flags)
    ref = reference(name, x)
    with np.errstate(over="ignore"):
        ref32 = ref.astype(np.float32)  # overflows to inf, as float32 math would

    # NaN / +-inf exactly where numpy (rounded to float32) has them.
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref32))
    np.testing.assert_array_equal(np.isposinf(out), np.isposinf(ref32))
    np.testing.assert_array_equal(np.isneginf(out), np.isneginf(ref32))

    # Finite results: relative error for normal results, and an absolute
    # floor of FLT_MIN for the subnormal range (which may flush to 0).
    finite = np.isfinite(ref32)
    diff = np.abs(out[finite].astype(np.float64) - ref[finite])
    bound = REL_TOL * np.abs(ref[finite]) + TINY
    worst = np.argmax(diff / bound)
    assert diff[worst] <= bound[worst], (
        f"{name}: x={x[finite][worst]!r} got {out[finite][worst]!r} "
        f"want {ref[finite][worst]!r}"
    )


@pytest.mark.parametrize("name", ["tanh", "erf", "sigmoid", "expm1", "log1p"])
def test_abs_error_near_zero(name):
    x = np.linspace(-1, 1, 200_001, dtype=np.float32)
    rel, abs_err = errors(name, x, run(name, x))
    assert abs_err <= 2e-6
    assert rel <= REL_TOL


def test_erf_abs_error_everywhere():
    x = np.linspace(-6, 6, 400_001, dtype=np.float32)
    _, abs_err = errors("erf", x, run("erf", x))
    assert abs_err <= 2e-6


# -- special values ---------------------------------------------------------
NAN, INF = np.nan, np.inf
SPECIAL = {
    # name: [(input, expected), ...]
    "exp": [(NAN, NAN), (INF, INF), (-INF, 0.0), (0.0, 1.0), (-0.0, 1.0),
            (88.8, INF), (89.0, INF), (1e30, INF), (-110.0, 0.0), (-1e30, 0.0)],
    "expm1": [(NAN, NAN), (INF, INF), (-INF, -1.0), (0.0, 0.0), (100.0, INF),
              (-100.0, -1.0), (1e-30, 1e-30)],
    "log": [(NAN, NAN), (INF, INF), (-INF, NAN), (0.0, -INF), (-0.0, -INF),
            (-1.0, NAN), (-1e-45, NAN), (1.0, 0.0)],
    "log1p": [(NAN, NAN), (INF, INF), (-INF, NAN), (-1.0, -INF), (-2.0, NAN),
              (0.0, 0.0), (1e-30, 1e-30)],
    "tanh": [(NAN, NAN), (INF, 1.0), (-INF, -1.0), (0.0, 0.0), (50.0, 1.0),
             (-50.0, -1.0), (1e-30, 1e-30)],
    "sigmoid": [(NAN, NAN), (INF, 1.0), (-INF, 0.0), (0.0, 0.5), (200.0, 1.0),
                (-200.0, 0.0), (1e30, 1.0), (-1e30, 0.0)],
    "erf": [(NAN, NAN), (INF, 1.0), (-INF, -1.0), (0.0, 0.0), (10.0, 1.0),
            (-10.0, -1.0)],
}


@pytest.mark.parametrize("flags", sorted(FLAG_SETS))
@pytest.mark.parametrize("name", sorted(SPECIAL))
def test_special_values(name, flags):
    x, want = (np.array(v, dtype=np.float32) for v in zip(*SPECIAL[name]))
    # Repeat so the values go through the vector body, not just the tail.
    x, want = np.tile(x, 64), np.tile(want, 64)
    got = run(name, x, flags)
    np.testing.assert_array_equal(got, want)  # NaN positions compare equal


def test_nan_propagates_in_mixed_vectors():
    """A NaN lane must not disturb, nor be hidden by, its neighbours."""
    x = np.linspace(-5, 5, 1024, dtype=np.float32)
    x[::7] = np.nan
    for name in FAST_F32:
        got = run(name, np.abs(x) if name.startswith("log") else x)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(x), err_msg=name)


# -- code generation properties -----------------------------------------------
def test_table_and_float32_signatures():
    assert {"exp", "log", "tanh", "sigmoid", "erf"} <= set(FAST_F32)
    for name, fn in FAST_F32.items():
        call = numba.njit(lambda v, fn=fn: fn(v))
        call(F32(0.5))
        # A stray float64 constant would make this float64 (and halve the
        # vector width).
        assert call.nopython_signatures[0].return_type == numba.float32, name


_MATH_CALL = re.compile(
    r"call [^@]*@(llvm\.(exp|exp2|log|log2|log10|pow)\.|(exp|log|tanh|erf|expm1|log1p)f?\()"
)


@pytest.mark.parametrize("name", sorted(FAST_F32))
def test_loop_vectorizes_without_math_calls(name):
    run(name, np.ones(16, np.float32))
    k = kernel(name, "fastmath_flags")
    ir = "\n".join(k.inspect_llvm().values())
    assert re.search(r"<\d+ x float>", ir), f"{name}: loop not vectorized"
    assert not _MATH_CALL.search(ir), f"{name}: calls a libm/llvm math function"


# -- speed --------------------------------------------------------------------
@numba.njit(fastmath=set(FASTMATH_FLAGS))
def _loop_fast_exp(x, out):
    for i in range(x.shape[0]):
        out[i] = exp_f32(x[i])


@numba.njit(fastmath=set(FASTMATH_FLAGS))
def _loop_np_exp(x, out):
    for i in range(x.shape[0]):
        out[i] = np.exp(x[i])


def _best_of(fn, *args, repeat=5):
    fn(*args)  # compile + warm the caches
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best


def test_exp_loop_faster_than_np_exp():
    """Sanity check of the reason this module exists (measured ~4.5x)."""
    x = np.random.default_rng(0).uniform(-10, 10, 4_000_000).astype(np.float32)
    out = np.empty_like(x)
    t_fast = _best_of(_loop_fast_exp, x, out)
    t_np = _best_of(_loop_np_exp, x, out)
    assert t_np >= 2.0 * t_fast, f"exp_f32 {t_fast * 1e3:.2f} ms vs np.exp {t_np * 1e3:.2f} ms"
