"""Vectorizable float32 transcendental functions for generated Numba kernels.

Why this exists
---------------
Numba lowers ``np.exp``/``np.log``/``np.tanh``... on a float32 scalar to a
call into libm.  LLVM can only vectorize such a call through a vector math
library, and the llvmlite wheels on PyPI are built without Intel SVML, so a
loop calling ``np.exp`` stays scalar.  Measured on a 2-core AVX2 machine
(numba 0.68, numpy 2.4), 4M float32 elements:

* ``out[i] = np.exp(x[i])``  8-13 ms;  ``out[i] = exp_f32(x[i])``  1.6-2 ms.
* ``x*sigmoid(1.702x)*w + 0.5``: 10-14 ms with ``np.exp``, 2.1 ms here.

The helpers below are plain float32 arithmetic (Cephes-style range reduction
plus a short polynomial, exponent bits built with integer shifts) and
``inline='always'``, so a loop that calls them contains no calls at all and
LLVM turns it into AVX2 code.  They are written branch-free: both sides of a
case split are computed and the answer chosen with ``a if c else b`` on
scalars, which LLVM emits as a ``select`` (vectorizable), not a branch.

Accuracy: max error against numpy float64 evaluated on the same float32
inputs, kernels compiled with FASTMATH_FLAGS (tests/test_fastmath.py; 1
float32 ulp is ~6e-8 relative).  Relative error is over normal results;
subnormal results are correctly rounded (or may flush to 0 under FTZ).

=========  =============================================================
exp_f32    rel 3.0e-7 (|x| > 80; 1.2e-7 on [-1, 1], 7.7e-8 without
           'reassoc', which folds the two-part ln2 of the range reduction)
expm1_f32  rel 3.1e-7; 1.1e-7 on [-1, 1], relative accuracy kept near 0
log_f32    rel 1.2e-7, subnormal inputs and x near 1 included
log1p_f32  rel 1.8e-7, relative accuracy kept near 0
tanh_f32   rel 1.4e-7 (odd polynomial near 0), abs 7.6e-8
sigmoid    rel 2.9e-7, abs 7.9e-8 (exp is only taken of -|x|: stable)
erf_f32    rel 1.7e-7, abs 1.2e-7
=========  =============================================================

Special values follow numpy/torch: exp(-inf)=0, exp(inf)=inf, overflow ->
inf, underflow -> 0 (with correctly rounded subnormals in between);
log(0)=-inf, log(x<0)=nan, log(inf)=inf; tanh/erf(+-inf)=+-1;
sigmoid(-inf)=0, sigmoid(inf)=1; NaN in -> NaN out everywhere.

Rules for anyone editing or calling this file:

* Every literal is a module-level ``np.float32``/``np.int32`` global.  Numba
  freezes globals as typed constants; a bare Python ``0.5`` is float64 and
  would promote the whole expression to double (and halve the vector width).
* ``inline='always'`` inlines at the Numba IR level, so the *caller's*
  fastmath flags are the ones that reach LLVM.  Compile kernels that use
  these helpers with :data:`FASTMATH_FLAGS` (or no fastmath) -- never with
  ``fastmath=True``: its ``nnan``/``ninf`` let LLVM delete the ``x != x``
  and infinity checks that implement the special values above.
* The algorithms tolerate ``reassoc``/``contract``: nothing relies on the
  exact evaluation order of a float expression (no ``(x + C) - C``
  rounding tricks), and the 2**n scaling never multiplies two scale
  factors together (reassociation could overflow that product).
* Divide with ``np.divide``, not ``/``: under Numba's default
  ``error_model='python'`` a ``/`` carries a ZeroDivisionError check whose
  branch stops vectorization (sigmoid: 16 ms instead of 2.3 ms).
"""

import numba
import numpy as np

__all__ = [
    "FASTMATH_FLAGS",
    "FAST_F32",
    "exp_f32",
    "expm1_f32",
    "log_f32",
    "log1p_f32",
    "tanh_f32",
    "sigmoid_f32",
    "erf_f32",
]

#: fastmath flags for kernels that call these helpers: everything that helps
#: vectorization, but not 'nnan'/'ninf' (NaN/Inf must propagate).
FASTMATH_FLAGS = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

_inline = numba.njit(inline="always", fastmath=set(FASTMATH_FLAGS))

_f = np.float32
_i = np.int32

# -- shared constants (all float32 / int32, see module docstring) ----------
_ZERO = _f(0.0)
_HALF = _f(0.5)
_ONE = _f(1.0)
_TWO = _f(2.0)
_INF = _f(np.inf)
_NINF = _f(-np.inf)
_NAN = _f(np.nan)

_LOG2E = _f(1.44269504088896341)
# ln2 split in two (Cody-Waite): _LN2_HI has 9 significant bits, so n*_LN2_HI
# is exact for |n| < 2**15 and the reduction x - n*ln2 keeps full precision.
_LN2_HI = _f(0.693359375)
_LN2_LO = _f(-2.12194440e-4)
_SQRTHF = _f(0.707106781186547524)  # sqrt(1/2)

_MANT_BITS = _i(23)
_EXP_BIAS = _i(127)
_MANT_MASK = _i(0x007FFFFF)
_EXP_MASK = _i(0xFF)
_HALF_BITS = _i(0x3F000000)  # bit pattern of 0.5
_ONE_I = _i(1)
_ZERO_I = _i(0)
_FRAC_MAX_N = _i(24)  # 2**n - 1 is exact in float32 for |n| <= 24
_FRAC_MIN_N = _i(-24)

# exp: inputs are clamped to [_EXP_LO, _EXP_HI]; both ends still go through
# the normal path and round to 0 / overflow to inf by themselves.
_EXP_HI = _f(89.0)  # exp(89) > FLT_MAX  -> inf
_EXP_LO = _f(-105.0)  # exp(-105) < FLT_TRUE_MIN / 2  -> 0

# Cephes expf: expm1(r) ~= r + r^2 * P(r) on |r| <= ln2/2, ~1 ulp.
_EXP_P0 = _f(1.9875691500e-4)
_EXP_P1 = _f(1.3981999507e-3)
_EXP_P2 = _f(8.3334519073e-3)
_EXP_P3 = _f(4.1665795894e-2)
_EXP_P4 = _f(1.6666665459e-1)
_EXP_P5 = _f(5.0000001201e-1)

# Cephes logf: log(1+f) ~= f - f^2/2 + f^3 * P(f) on sqrt(1/2)-1 <= f < sqrt(2)-1.
_LOG_P0 = _f(7.0376836292e-2)
_LOG_P1 = _f(-1.1514610310e-1)
_LOG_P2 = _f(1.1676998740e-1)
_LOG_P3 = _f(-1.2420140846e-1)
_LOG_P4 = _f(1.4249322787e-1)
_LOG_P5 = _f(-1.6668057665e-1)
_LOG_P6 = _f(2.0000714765e-1)
_LOG_P7 = _f(-2.4999993993e-1)
_LOG_P8 = _f(3.3333331174e-1)
_LOG1P_LO = _f(-0.292893218813452476)  # sqrt(1/2) - 1
_LOG1P_HI = _f(0.414213562373095049)  # sqrt(2) - 1
_FLT_MIN = _f(1.17549435e-38)  # smallest normal float32
_SUBNORM_SCALE = _f(33554432.0)  # 2**25: lifts subnormals into normal range
_SUBNORM_EXP = _i(25)

# Cephes tanhf: tanh(x) ~= x + x^3 * P(x^2) for |x| <= 0.625.
_TANH_SMALL = _f(0.625)
_TANH_P0 = _f(-5.70498872745e-3)
_TANH_P1 = _f(2.06390887954e-2)
_TANH_P2 = _f(-5.37397155531e-2)
_TANH_P3 = _f(1.33314422036e-1)
_TANH_P4 = _f(-3.33332819422e-1)

# erf: least-squares fits (numpy.polyfit on Chebyshev nodes, mpmath reference).
# |x| <= 0.921875: erf(x) = x * P(x^2), rel err of fit 2e-8.
# larger |x|:      erf(|x|) = 1 - exp(Q(|x|)), Q ~ log(erfc), fit weighted by
#                  erfc so the abs error in erf is 1.6e-9; erfc(4) < 2**-26 so
#                  |x| is clamped at 4 (where the float32 result is exactly 1).
_ERF_SMALL = _f(0.921875)
_ERF_CLAMP = _f(4.0)
_ERF_P0 = _f(-0.0006047151400707662)
_ERF_P1 = _f(0.005005624610930681)
_ERF_P2 = _f(-0.026776401326060295)
_ERF_P3 = _f(0.11282140016555786)
_ERF_P4 = _f(-0.3761253356933594)
_ERF_P5 = _f(1.1283791065216064)
_ERF_Q0 = _f(0.0001960100926226005)
_ERF_Q1 = _f(-0.0030433442443609238)
_ERF_Q2 = _f(0.02222536876797676)
_ERF_Q3 = _f(-0.10392466187477112)
_ERF_Q4 = _f(-0.6371937990188599)
_ERF_Q5 = _f(-1.12766695022583)
_ERF_Q6 = _f(-0.00019816261192318052)


# -- bit-level helpers ------------------------------------------------------
@_inline
def _as_int(x):
    return _f(x).view(np.int32)


@_inline
def _as_float(i):
    return _i(i).view(np.float32)


# -- exp family -------------------------------------------------------------
@_inline
def _exp_reduce(xc):
    """Split finite ``xc`` as n*ln2 + r, |r| <= ln2/2; return (expm1(r), n)."""
    nf = np.floor(xc * _LOG2E + _HALF)
    r = xc - nf * _LN2_HI - nf * _LN2_LO
    p = ((((_EXP_P0 * r + _EXP_P1) * r + _EXP_P2) * r + _EXP_P3) * r + _EXP_P4) * r + _EXP_P5
    return r + r * r * p, _i(nf)


@_inline
def _ldexp(y, n):
    """y * 2**n for y in [0.5, 2) and -151 <= n <= 128.

    Half of the exponent is added straight into y's exponent field (stays a
    normal number), the other half is one multiply by an exact power of two,
    so overflow to inf and rounding into subnormals are done by the FPU.
    """
    n1 = _i(n >> _ONE_I)
    n2 = _i(n - n1)
    y1 = _as_float(_as_int(y) + (n1 << _MANT_BITS))
    return y1 * _as_float((n2 + _EXP_BIAS) << _MANT_BITS)


@_inline
def exp_f32(x):
    """float32 exp; rel err <= 3e-7, inf/nan/overflow/underflow as numpy."""
    # Clamp with selects.  NaN compares false and so becomes _EXP_HI here
    # (keeping the float->int conversion below well defined); it is put
    # back at the end.
    xc = x if x < _EXP_HI else _EXP_HI
    xc = xc if xc > _EXP_LO else _EXP_LO
    em, n = _exp_reduce(xc)
    res = _ldexp(em + _ONE, n)
    return x if x != x else res


@_inline
def expm1_f32(x):
    """float32 exp(x) - 1, accurate (relative) near 0."""
    xc = x if x < _EXP_HI else _EXP_HI
    xc = xc if xc > _EXP_LO else _EXP_LO
    em, n = _exp_reduce(xc)
    # expm1(x) = 2**n * expm1(r) + (2**n - 1); both terms exact-ish for
    # |n| <= 24 and no cancellation for n = 0 (the small-|x| case).
    nc = n if n < _FRAC_MAX_N else _FRAC_MAX_N
    nc = nc if nc > _FRAC_MIN_N else _FRAC_MIN_N
    s = _as_float((nc + _EXP_BIAS) << _MANT_BITS)
    mid = em * s + (s - _ONE)
    # n == 0 (|x| < ln2/2): expm1(r) itself; the select keeps 'reassoc' from
    # ever turning the sum above into (em + 1) - 1 for tiny x.
    mid = em if n == _ZERO_I else mid
    # Far from 0 the "-1" is below rounding (or exp dominates): exp(x) - 1.
    far = _ldexp(em + _ONE, n) - _ONE
    res = mid if (n <= _FRAC_MAX_N) & (n >= _FRAC_MIN_N) else far
    return x if x != x else res


@_inline
def sigmoid_f32(x):
    """float32 1/(1+exp(-x)); exp is only taken of -|x| so it cannot overflow."""
    e = exp_f32(-abs(x))
    num = _ONE if x >= _ZERO else e  # x >= 0: 1/(1+e);  x < 0: e/(1+e)
    return np.divide(num, _ONE + e)  # NaN: e is NaN -> NaN


@_inline
def tanh_f32(x):
    """float32 tanh; odd polynomial near 0 keeps relative accuracy there."""
    a = abs(x)
    s = x * x
    small = x + x * s * ((((_TANH_P0 * s + _TANH_P1) * s + _TANH_P2) * s + _TANH_P3) * s + _TANH_P4)
    # |x| > 0.625: 1 - 2/(exp(2|x|)+1); exp overflows to inf for |x| > 44,
    # giving exactly 1.
    big = _ONE - np.divide(_TWO, exp_f32(a + a) + _ONE)
    big = big if x >= _ZERO else -big
    return big if a > _TANH_SMALL else small  # NaN takes the small path -> NaN


# -- log family -------------------------------------------------------------
@_inline
def _log1p_core(f):
    """log(1+f) for sqrt(1/2)-1 <= f < sqrt(2)-1 (Cephes logf kernel)."""
    z = f * f
    p = (((_LOG_P0 * f + _LOG_P1) * f + _LOG_P2) * f + _LOG_P3) * f + _LOG_P4
    p = (((p * f + _LOG_P5) * f + _LOG_P6) * f + _LOG_P7) * f + _LOG_P8
    return f + (f * z * p - _HALF * z)


@_inline
def log_f32(x):
    """float32 natural log; rel err <= 1.2e-7, subnormal inputs handled."""
    # Subnormals: scale by 2**25 first so the exponent field is meaningful.
    tiny = x < _FLT_MIN
    xs = x * _SUBNORM_SCALE if tiny else x
    bits = _as_int(xs)
    e = ((bits >> _MANT_BITS) & _EXP_MASK) - (_EXP_BIAS - _ONE_I)
    e = e - _SUBNORM_EXP if tiny else e
    # x = m * 2**e with m in [0.5, 1); move m to [sqrt(1/2), sqrt(2)) so that
    # f = m - 1 is small and computed exactly.
    m = _as_float((bits & _MANT_MASK) | _HALF_BITS)
    lowm = m < _SQRTHF
    e = e - _ONE_I if lowm else e
    m = m + m if lowm else m
    ef = _f(e)
    res = _log1p_core(m - _ONE) + ef * _LN2_LO + ef * _LN2_HI
    # Special values (bits above were garbage for them).
    res = _NINF if x == _ZERO else res
    res = _NAN if x < _ZERO else res
    return x if not (x < _INF) else res  # +inf -> inf, NaN -> NaN


@_inline
def log1p_f32(x):
    """float32 log(1+x), accurate (relative) near 0."""
    near = _log1p_core(x)  # valid for sqrt(1/2)-1 <= x < sqrt(2)-1
    far = log_f32(_ONE + x)  # 1+x rounds harmlessly away from that range
    res = near if (x >= _LOG1P_LO) & (x < _LOG1P_HI) else far
    return res  # NaN takes the far path -> NaN; inf -> inf; -1 -> -inf


# -- erf --------------------------------------------------------------------
@_inline
def erf_f32(x):
    """float32 erf; abs error ~1e-7, relative accuracy kept near 0."""
    s = x * x
    p = (((_ERF_P0 * s + _ERF_P1) * s + _ERF_P2) * s + _ERF_P3) * s + _ERF_P4
    small = x * (p * s + _ERF_P5)
    a = abs(x)
    a = a if a < _ERF_CLAMP else _ERF_CLAMP  # also maps inf -> 4 (erf = 1)
    q = (((_ERF_Q0 * a + _ERF_Q1) * a + _ERF_Q2) * a + _ERF_Q3) * a + _ERF_Q4
    q = (q * a + _ERF_Q5) * a + _ERF_Q6  # ~ log(erfc(|x|))
    big = _ONE - exp_f32(q)
    big = big if x >= _ZERO else -big
    return big if abs(x) > _ERF_SMALL else small  # NaN takes the small path


#: op name -> vectorizable float32 helper, for the code generator.
FAST_F32 = {
    "exp": exp_f32,
    "expm1": expm1_f32,
    "log": log_f32,
    "log1p": log1p_f32,
    "tanh": tanh_f32,
    "sigmoid": sigmoid_f32,
    "erf": erf_f32,
}
