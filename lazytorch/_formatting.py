"""Render tensors as text exactly the way PyTorch does.

This module is a numpy-only port of the printing logic in PyTorch 2.x's
``torch/_tensor_str.py`` (``_Formatter``, ``_tensor_str``, ``_add_suffixes``
and the plain-CPU-tensor branch of ``_str_intern``).  ``format_tensor`` takes
already-computed values and returns what ``repr(t)`` / ``str(t)`` prints for a
CPU tensor ``t`` holding them, so lazytorch tensors print byte-for-byte like
torch tensors.

The print options are module state, changed with :func:`set_printoptions`,
mirroring ``torch.set_printoptions``.

Only the real dtypes lazytorch supports are handled (float32, float64,
float16, int32, int64, uint8, bool); complex, sparse, quantized and other
exotic tensors are out of scope.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Iterator, Sequence

import numpy as np

__all__ = [
    "format_tensor",
    "set_printoptions",
    "get_printoptions",
    "printoptions",
    "PRINT_OPTS",
]


@dataclasses.dataclass
class _PrinterOptions:
    """The knobs torch exposes through ``torch.set_printoptions``."""

    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: bool | None = None


PRINT_OPTS = _PrinterOptions()

_PROFILES = {
    "default": dict(precision=4, threshold=1000, edgeitems=3, linewidth=80),
    "short": dict(precision=2, threshold=1000, edgeitems=2, linewidth=80),
    "full": dict(precision=4, threshold=math.inf, edgeitems=3, linewidth=80),
}

_FLOAT_DTYPES = frozenset({"float16", "float32", "float64"})
_SUPPORTED_DTYPES = _FLOAT_DTYPES | {"int32", "int64", "uint8", "bool"}


def set_printoptions(
    precision: int | None = None,
    threshold: float | None = None,
    edgeitems: int | None = None,
    linewidth: int | None = None,
    profile: str | None = None,
    sci_mode: bool | None = None,
) -> None:
    """Set printing options, with the same semantics as ``torch.set_printoptions``.

    Args:
        precision: digits after the decimal point for floats (default 4).
        threshold: element count above which output is summarized (default 1000).
        edgeitems: items shown at each end of a summarized dimension (default 3).
        linewidth: characters per line used for wrapping (default 80).
        profile: ``"default"``, ``"short"`` or ``"full"``; applied first, so the
            other arguments override it.  Unknown names are ignored, as in torch.
        sci_mode: force scientific notation on (True) or off (False); None lets
            the formatter decide.  Like torch, every call resets it, so omitting
            it means "automatic".
    """
    if profile is not None and profile in _PROFILES:
        for name, value in _PROFILES[profile].items():
            setattr(PRINT_OPTS, name, value)
    if precision is not None:
        PRINT_OPTS.precision = precision
    if threshold is not None:
        PRINT_OPTS.threshold = threshold
    if edgeitems is not None:
        PRINT_OPTS.edgeitems = edgeitems
    if linewidth is not None:
        PRINT_OPTS.linewidth = linewidth
    # torch assigns sci_mode unconditionally; keep that quirk.
    PRINT_OPTS.sci_mode = sci_mode


def get_printoptions() -> dict[str, Any]:
    """Return the current options as a dict usable as ``set_printoptions(**opts)``."""
    return dataclasses.asdict(PRINT_OPTS)


@contextlib.contextmanager
def printoptions(**kwargs: Any) -> Iterator[None]:
    """Temporarily change print options (like ``torch._tensor_str.printoptions``)."""
    old = get_printoptions()
    set_printoptions(**kwargs)
    try:
        yield
    finally:
        set_printoptions(**old)


class _Formatter:
    """Decide how every element of a tensor is rendered and how wide it is.

    Port of torch's ``_Formatter``.  It is built once from the (possibly
    summarized) data, so that all printed elements share one width and one
    style (plain, integer-valued float, or scientific).
    """

    def __init__(self, values: np.ndarray, floating: bool) -> None:
        self.floating_dtype = floating
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        flat = values.reshape(-1)

        if not floating:
            # The widest string of an int is at one of the extremes (it only
            # grows with magnitude on each side of zero), so min and max suffice.
            for value in _extremes(flat):
                self.max_width = max(self.max_width, len(f"{value}"))
            return

        nonzero_finite = flat[np.isfinite(flat) & (flat != 0)]
        if nonzero_finite.size == 0:
            # Nothing to measure: torch keeps int_mode, width 1, no sci_mode,
            # even when sci_mode is forced through the print options.
            return

        # torch does this arithmetic in double (half would overflow at 1e8).
        abs_vals = np.abs(nonzero_finite.astype(np.float64))
        nonzero_finite_min = abs_vals.min()
        nonzero_finite_max = abs_vals.max()

        self.int_mode = bool(np.all(nonzero_finite == np.ceil(nonzero_finite)))

        if PRINT_OPTS.sci_mode is None:
            # The ratio may overflow to inf (e.g. 1e200 / 1e-200); that still
            # means "sci mode", as in torch, so the warning is just noise.
            with np.errstate(over="ignore"):
                ratio = nonzero_finite_max / nonzero_finite_min
            self.sci_mode = bool(
                ratio > 1000.0 or nonzero_finite_max > 1.0e8 or nonzero_finite_min < 1.0e-4
            )
        else:
            self.sci_mode = PRINT_OPTS.sci_mode

        precision = PRINT_OPTS.precision
        # torch formats every nonzero finite value to find the widest one.  The
        # length of a formatted number depends only on its sign and on how far
        # its magnitude is from 1 (digits before the point, or exponent digits
        # in sci mode), and rounding is monotone, so the extremes of |x| on
        # each side of zero are enough and keep this O(n) in numpy, not Python.
        for value in _signed_extremes(nonzero_finite):
            if self.sci_mode:
                width = len(f"{value:.{precision}e}")
            elif self.int_mode:
                # +1 for the trailing "." that marks the values as floats.
                width = len(f"{value:.0f}") + 1
            else:
                width = len(f"{value:.{precision}f}")
            self.max_width = max(self.max_width, width)

    def width(self) -> int:
        """Width every formatted element is padded to."""
        return self.max_width

    def format(self, value: Any) -> str:
        """Format one Python scalar, right-aligned to the common width."""
        if self.floating_dtype:
            precision = PRINT_OPTS.precision
            if self.sci_mode:
                ret = f"{value:{self.max_width}.{precision}e}"
            elif self.int_mode:
                ret = f"{value:.0f}"
                if not (math.isinf(value) or math.isnan(value)):
                    ret += "."
            else:
                ret = f"{value:.{precision}f}"
        else:
            ret = f"{value}"
        # Values that did not take part in measuring (nan, inf, -0.) can be
        # wider than max_width; torch then simply does not pad them.
        return (self.max_width - len(ret)) * " " + ret


def _extremes(flat: np.ndarray) -> list[Any]:
    """Smallest and largest element as Python scalars (empty list if none)."""
    if flat.size == 0:
        return []
    return [flat.min().item(), flat.max().item()]


def _signed_extremes(flat: np.ndarray) -> list[float]:
    """Largest and smallest magnitudes among the positives and the negatives."""
    result: list[float] = []
    for part in (flat[flat > 0], flat[flat < 0]):
        result.extend(_extremes(part))
    return result


def _summarized_data(values: np.ndarray) -> np.ndarray:
    """Keep only the elements a summarized print shows (torch's get_summarized_data)."""
    edge = PRINT_OPTS.edgeitems
    if values.ndim == 0:
        return values
    if values.ndim == 1:
        if values.shape[0] > 2 * edge:
            # As in torch, edge == 0 makes values[-0:] the whole vector.
            return np.concatenate((values[:edge], values[-edge:]))
        return values
    if not edge:
        return np.empty([0] * values.ndim, dtype=values.dtype)
    if values.shape[0] > 2 * edge:
        rows = list(range(edge)) + list(range(len(values) - edge, len(values)))
    else:
        rows = list(range(len(values)))
    return np.stack([_summarized_data(values[i]) for i in rows])


def _vector_str(values: np.ndarray, indent: int, summarize: bool, formatter: _Formatter) -> str:
    """Render a 1-D array, wrapping so lines stay within the line width."""
    # Each element takes its width plus ", ".
    element_length = formatter.width() + 2
    elements_per_line = max(1, math.floor((PRINT_OPTS.linewidth - indent) / element_length))
    edge = PRINT_OPTS.edgeitems

    if summarize and not edge:
        data = ["..."]
    elif summarize and values.shape[0] > 2 * edge:
        data = (
            [formatter.format(v) for v in values[:edge].tolist()]
            + [" ..."]
            + [formatter.format(v) for v in values[-edge:].tolist()]
        )
    else:
        data = [formatter.format(v) for v in values.tolist()]

    lines = [
        ", ".join(data[i : i + elements_per_line])
        for i in range(0, len(data), elements_per_line)
    ]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _tensor_str_with_formatter(
    values: np.ndarray, indent: int, summarize: bool, formatter: _Formatter
) -> str:
    """Render an array of any rank as torch's nested bracket layout."""
    if values.ndim == 0:
        return formatter.format(values.item())
    if values.ndim == 1:
        return _vector_str(values, indent, summarize, formatter)

    edge = PRINT_OPTS.edgeitems
    if summarize and values.shape[0] > 2 * edge:
        slices = (
            [_tensor_str_with_formatter(values[i], indent + 1, summarize, formatter) for i in range(edge)]
            + ["..."]
            + [
                _tensor_str_with_formatter(values[i], indent + 1, summarize, formatter)
                for i in range(len(values) - edge, len(values))
            ]
        )
    else:
        slices = [
            _tensor_str_with_formatter(values[i], indent + 1, summarize, formatter)
            for i in range(values.shape[0])
        ]
    # Sub-blocks of a rank-d array are separated by d-1 newlines, which gives
    # the blank lines between the matrices of a 3-D tensor.
    separator = "," + "\n" * (values.ndim - 1) + " " * (indent + 1)
    return "[" + separator.join(slices) + "]"


def _tensor_str(values: np.ndarray, indent: int, floating: bool) -> str:
    """Render the data part (between ``tensor(`` and the suffixes)."""
    if values.size == 0:
        return "[]"
    summarize = values.size > PRINT_OPTS.threshold
    formatter = _Formatter(_summarized_data(values) if summarize else values, floating)
    return _tensor_str_with_formatter(values, indent, summarize, formatter)


def _add_suffixes(tensor_str: str, suffixes: Sequence[str], indent: int) -> str:
    """Append ``, key=value`` suffixes and the closing parenthesis.

    A suffix moves to a new line, indented under the data, when it would
    push the current last line past the line width.
    """
    parts = [tensor_str]
    # torch's formula counts two more than the length of the last line
    # (room for ", "); keep it so wrapping happens at the same place.
    last_line_len = len(tensor_str) - tensor_str.rfind("\n") + 1
    for suffix in suffixes:
        if last_line_len + len(suffix) + 2 > PRINT_OPTS.linewidth:
            parts.append(",\n" + " " * indent + suffix)
            last_line_len = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last_line_len += len(suffix) + 2
    parts.append(")")
    return "".join(parts)


def format_tensor(
    values: np.ndarray,
    dtype_name: str,
    *,
    default_dtype_name: str = "float32",
    suffixes: Sequence[str] = (),
    prefix: str = "tensor(",
) -> str:
    """Return what PyTorch's ``repr(t)`` prints for a CPU tensor with these values.

    Args:
        values: the tensor's contents, with a numpy dtype matching ``dtype_name``.
        dtype_name: torch dtype name without ``torch.``: one of float32,
            float64, float16, int32, int64, uint8, bool.
        default_dtype_name: the current ``torch.get_default_dtype()`` name;
            tensors of that dtype (and int64 / bool) print without ``dtype=``.
        suffixes: extra ``key=value`` strings, such as ``requires_grad=True``
            or ``grad_fn=<AddBackward0>``, appended after the dtype suffix.
        prefix: text before the data.  Continuation lines are indented to the
            length of its last line, so ``"Parameter containing:\\ntensor("``
            lines up like torch's ``Parameter`` repr.

    Returns:
        The complete repr, e.g. ``"tensor([1., 2.], requires_grad=True)"``.
    """
    if dtype_name not in _SUPPORTED_DTYPES:
        raise ValueError(f"unsupported dtype for printing: {dtype_name!r}")
    values = np.asarray(values)
    floating = dtype_name in _FLOAT_DTYPES
    indent = len(prefix) - (prefix.rfind("\n") + 1)

    all_suffixes: list[str] = []
    if values.size == 0:
        # numpy-style: only a non-(0,) shape is spelled out.
        if values.ndim != 1:
            all_suffixes.append("size=" + str(tuple(values.shape)))
        # No element shows what kind of number this is, so every dtype but
        # the default float one is named (int64 and bool included).
        if dtype_name != default_dtype_name:
            all_suffixes.append("dtype=torch." + dtype_name)
        tensor_str = "[]"
    else:
        if not PRINT_OPTS.edgeitems:
            # With no edge items the data is just "...", so show the shape.
            all_suffixes.append("size=" + str(tuple(values.shape)))
        # int64 and bool are recognisable from their elements; others are not.
        if dtype_name not in (default_dtype_name, "int64", "bool"):
            all_suffixes.append("dtype=torch." + dtype_name)
        tensor_str = _tensor_str(values, indent, floating)

    all_suffixes.extend(suffixes)
    return _add_suffixes(prefix + tensor_str, all_suffixes, indent)
