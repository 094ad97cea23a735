"""Check lazytorch's tensor printing against real PyTorch, which is the oracle."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from lazytorch import _formatting  # noqa: E402
from lazytorch._formatting import format_tensor, set_printoptions  # noqa: E402


def dtype_name(t):
    """'torch.float32' -> 'float32'."""
    return str(t.dtype).removeprefix("torch.")


def ours(t, **kwargs):
    """Our rendering of a real torch tensor's values."""
    return format_tensor(t.detach().numpy(), dtype_name(t), **kwargs)


def check(t, **kwargs):
    expected = repr(t)
    actual = ours(t, **kwargs)
    assert actual == expected, f"\nexpected:\n{expected}\nactual:\n{actual}"


@pytest.fixture(autouse=True)
def restore_print_options():
    """Every test starts and ends with default options in both libraries."""
    torch.set_printoptions(profile="default")
    set_printoptions(profile="default")
    default_dtype = torch.get_default_dtype()
    yield
    torch.set_default_dtype(default_dtype)
    torch.set_printoptions(profile="default")
    set_printoptions(profile="default")


ALL_DTYPES = [
    torch.float32,
    torch.float64,
    torch.float16,
    torch.int32,
    torch.int64,
    torch.uint8,
    torch.bool,
]


def _cases():
    """Named tensors covering the layouts and number styles torch prints."""
    g = torch.Generator().manual_seed(0)
    cases = {
        # 0-d
        "scalar_float": torch.tensor(3.0),
        "scalar_float_frac": torch.tensor(3.14159),
        "scalar_int": torch.tensor(5),
        "scalar_bool": torch.tensor(True),
        "scalar_nan": torch.tensor(float("nan")),
        "scalar_neg_inf": torch.tensor(float("-inf")),
        "scalar_zero": torch.tensor(0.0),
        "scalar_neg_zero": torch.tensor(-0.0),
        "scalar_tiny": torch.tensor(1e-8),
        # 1-d
        "int_valued": torch.tensor([1.0, 2.0, 3.0]),
        "int_valued_neg": torch.tensor([-1.0, 20.0, 300.0]),
        "fractions": torch.tensor([0.1, 0.25, 1.5]),
        "negatives": torch.tensor([-1.5, 2.25, -300.125]),
        "neg_zero": torch.tensor([-0.0, 0.0, 1.0]),
        "neg_zero_frac": torch.tensor([-0.0, 0.5, 10.25]),
        "nan_inf": torch.tensor([float("nan"), float("inf"), -float("inf"), 1.0]),
        "nan_inf_frac": torch.tensor([float("nan"), float("inf"), -float("inf"), 1.5]),
        "only_nonfinite": torch.tensor([float("nan"), float("inf"), 0.0]),
        "sci_ratio": torch.tensor([1.0, 1e4]),
        "sci_ratio_frac": torch.tensor([0.5, 1234.5]),
        "sci_big": torch.tensor([1e10, 2e10]),
        "sci_small": torch.tensor([1e-5, 2e-5]),
        "sci_nan": torch.tensor([1e-5, float("nan"), float("inf"), -3e9]),
        "sci_negative": torch.tensor([-1e-7, 5.0]),
        "not_sci_boundary": torch.tensor([1.0, 1000.0]),
        "huge_f64": torch.tensor([1e200, 1e-200], dtype=torch.float64),
        "huge_int_valued_f64": torch.tensor([1e20, 3.0], dtype=torch.float64),
        "rounding_up": torch.tensor([9.99999, 0.5]),
        "ints": torch.tensor([1, -20, 300, 4000]),
        "bools": torch.tensor([True, False, True]),
        "bools_all_true": torch.tensor([True, True]),
        "uint8": torch.tensor([0, 7, 255], dtype=torch.uint8),
        "int32": torch.tensor([-5, 12], dtype=torch.int32),
        "f16": torch.tensor([0.1, 1000.0, -2.5], dtype=torch.float16),
        "f16_sci": torch.tensor([1e-3, 60000.0], dtype=torch.float16),
        "f64": torch.tensor([0.1, 0.2], dtype=torch.float64),
        # multi-dim
        "matrix_int": torch.tensor([[2, 3], [4, 5]]),
        "matrix_float": torch.randn(3, 4, generator=g),
        "cube": torch.randn(2, 3, 4, generator=g),
        "cube_int": torch.arange(24).reshape(2, 3, 4),
        "hyper": torch.randn(2, 2, 2, 3, generator=g),
        "hyper5": torch.arange(32.0).reshape(2, 2, 2, 2, 2),
        "single_element_nd": torch.tensor([[[7.5]]]),
        "column": torch.randn(5, 1, generator=g),
        # wrapping
        "wide_row": torch.randn(30, generator=g),
        "wide_matrix": torch.randn(3, 25, generator=g),
        "wide_ints": torch.arange(100) * 1000,
        "wide_bools": torch.rand(40, generator=g) > 0.5,
        "wide_sci": torch.randn(20, generator=g) * 1e6,
        "wide_cube": torch.randn(2, 2, 20, generator=g),
        # summarized
        "big_1d": torch.arange(2000.0),
        "big_1d_int": torch.arange(2000),
        "big_1d_randn": torch.randn(2000, generator=g),
        "big_2d": torch.randn(50, 50, generator=g),
        "big_2d_int": torch.arange(2500).reshape(50, 50),
        "big_3d": torch.randn(20, 20, 20, generator=g),
        "big_tall": torch.randn(1001, 1, generator=g),
        "big_narrow_rows": torch.randn(4, 300, generator=g),
        "big_bool": torch.rand(40, 40, generator=g) > 0.5,
        # the middle elements (hidden by summarization) must not affect width
        "big_hidden_outlier": torch.cat([torch.ones(3), torch.full((1000,), 1e9), torch.ones(3)]),
        # empty
        "empty_1d": torch.tensor([]),
        "empty_2d": torch.zeros(0, 3),
        "empty_3d": torch.zeros(2, 0, 4),
        "empty_int": torch.zeros(0, dtype=torch.int64),
        "empty_int32": torch.zeros(0, dtype=torch.int32),
        "empty_bool": torch.zeros(0, 2, dtype=torch.bool),
        "empty_f64": torch.zeros(0, dtype=torch.float64),
    }
    for dtype in ALL_DTYPES:
        name = dtype_name(torch.zeros(0, dtype=dtype))
        cases[f"vec_{name}"] = torch.tensor([0, 1, 2, 3]).to(dtype)
        cases[f"mat_{name}"] = (torch.randn(3, 3, generator=g) * 10).to(dtype)
        cases[f"scalar_{name}"] = torch.tensor(2).to(dtype)
        cases[f"empty_{name}_2d"] = torch.zeros(0, 5, dtype=dtype)
        cases[f"big_{name}"] = (torch.randn(2000, generator=g) * 50).to(dtype)
    return cases


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch(name):
    check(CASES[name])


@pytest.mark.parametrize("name", sorted(CASES))
def test_str_equals_repr(name):
    t = CASES[name]
    assert str(t) == ours(t)


@pytest.mark.parametrize("name", ["f64", "big_1d_randn", "matrix_float", "f16", "empty_1d", "empty_f64", "scalar_float"])
def test_default_dtype_float64(name):
    t = CASES[name].to(torch.float64) if CASES[name].dtype == torch.float32 else CASES[name]
    t32 = t.to(torch.float32)
    torch.set_default_dtype(torch.float64)
    check(t, default_dtype_name="float64")
    check(t32, default_dtype_name="float64")


def test_requires_grad():
    t = torch.tensor([1.0, 2.0], requires_grad=True)
    check(t, suffixes=["requires_grad=True"])


def test_grad_fn_scalar():
    t = torch.tensor([1.0, 2.0], requires_grad=True).sum()
    assert t.grad_fn is not None
    check(t, suffixes=[f"grad_fn=<{type(t.grad_fn).__name__}>"])


@pytest.mark.parametrize(
    "t",
    [
        torch.randn(3, 4, dtype=torch.float64),
        torch.randn(6, 12),
        torch.randn(2, 3, 8, dtype=torch.float16),
        torch.randn(70),
        torch.randn(50, 50),
        torch.randn(13),  # last line long enough that the suffix must wrap
    ],
)
def test_grad_fn_multiline(t):
    t = t.requires_grad_() * 2
    name = type(t.grad_fn).__name__
    check(t, suffixes=[f"grad_fn=<{name}>"])


def test_suffix_wrapping_against_torch():
    """Scan lengths so the suffix falls on both sides of the 80-column limit."""
    for n in range(1, 14):
        t = (torch.arange(float(n)) + 0.5).requires_grad_()
        check(t, suffixes=["requires_grad=True"])
        t = torch.arange(float(n)).to(torch.float64).requires_grad_()
        check(t, suffixes=["requires_grad=True"])
        t = (t * 2).to(torch.float16)
        check(t, suffixes=[f"grad_fn=<{type(t.grad_fn).__name__}>"])


def test_parameter_prefix():
    p = torch.nn.Parameter(torch.randn(3, 4))
    expected = repr(p)
    actual = format_tensor(
        p.detach().numpy(),
        "float32",
        prefix="Parameter containing:\ntensor(",
        suffixes=["requires_grad=True"],
    )
    assert actual == expected


@pytest.mark.parametrize("name", ["fractions", "matrix_float", "big_2d", "sci_small", "int_valued", "wide_row"])
@pytest.mark.parametrize(
    "options",
    [
        dict(precision=2),
        dict(precision=8),
        dict(threshold=10),
        dict(edgeitems=1, threshold=5),
        dict(edgeitems=0, threshold=5),
        dict(linewidth=40),
        dict(sci_mode=True),
        dict(sci_mode=False),
        dict(profile="short"),
        dict(profile="full"),
    ],
    ids=repr,
)
def test_printoptions(name, options):
    torch.set_printoptions(**options)
    set_printoptions(**options)
    check(CASES[name])


def test_precision_2_then_restore():
    t = torch.tensor([1.12345, 2.5, 3.0])
    torch.set_printoptions(precision=2)
    set_printoptions(precision=2)
    check(t)
    assert ours(t) == "tensor([1.12, 2.50, 3.00])"
    torch.set_printoptions(profile="default")
    set_printoptions(profile="default")
    check(t)
    assert ours(t) == "tensor([1.1235, 2.5000, 3.0000])"


def test_printoptions_context_manager():
    before = _formatting.get_printoptions()
    with _formatting.printoptions(precision=1, linewidth=30):
        assert _formatting.PRINT_OPTS.precision == 1
        assert _formatting.PRINT_OPTS.linewidth == 30
    assert _formatting.get_printoptions() == before


def test_known_strings():
    """A few literal outputs, so the intent is readable without running torch."""
    assert format_tensor(np.array([[2, 3], [4, 5]]), "int64") == "tensor([[2, 3],\n        [4, 5]])"
    assert format_tensor(np.array(3.0, dtype=np.float32), "float32") == "tensor(3.)"
    assert format_tensor(np.array(True), "bool") == "tensor(True)"
    assert format_tensor(np.zeros((0, 3), np.float32), "float32") == "tensor([], size=(0, 3))"
    assert format_tensor(np.zeros(0, np.int32), "int32") == "tensor([], dtype=torch.int32)"
    assert (
        format_tensor(np.array([1.0, 2.0], np.float32), "float32", suffixes=["requires_grad=True"])
        == "tensor([1., 2.], requires_grad=True)"
    )


def test_unsupported_dtype():
    with pytest.raises(ValueError):
        format_tensor(np.zeros(2, np.complex64), "complex64")


_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=12)

_float32_arrays = hnp.arrays(
    np.float32,
    _shapes,
    elements=st.one_of(
        st.floats(width=32, allow_nan=True, allow_infinity=True),
        st.floats(-1e3, 1e3, width=32),
        st.integers(-1000, 1000).map(float),
    ),
)
_int64_arrays = hnp.arrays(np.int64, _shapes, elements=st.integers(-(2**63), 2**63 - 1) | st.integers(-100, 100))


@settings(max_examples=100, deadline=None)
@given(st.one_of(_float32_arrays, _int64_arrays))
def test_hypothesis_matches_torch(array):
    check(torch.from_numpy(array))


_other_arrays = st.one_of(
    hnp.arrays(np.float64, _shapes, elements=st.floats(allow_nan=True, allow_infinity=True)),
    hnp.arrays(np.float16, _shapes, elements=st.floats(width=16, allow_nan=True, allow_infinity=True)),
    hnp.arrays(np.int32, _shapes),
    hnp.arrays(np.uint8, _shapes),
    hnp.arrays(np.bool_, _shapes),
)


@settings(max_examples=60, deadline=None)
@given(_other_arrays)
def test_hypothesis_other_dtypes(array):
    check(torch.from_numpy(array))


@settings(max_examples=30, deadline=None)
@given(
    hnp.arrays(np.float32, st.sampled_from([(1001,), (40, 30), (11, 10, 10)]), elements=st.floats(-1e6, 1e6, width=32))
)
def test_hypothesis_summarized(array):
    check(torch.from_numpy(array))


def test_full_profile_is_not_summarized():
    torch.set_printoptions(profile="full")
    set_printoptions(profile="full")
    t = torch.arange(1500)
    check(t)
    assert "..." not in ours(t)
    assert math.isinf(_formatting.PRINT_OPTS.threshold)
