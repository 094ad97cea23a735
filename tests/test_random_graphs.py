"""Random graphs: lazytorch against a plain numpy evaluation of the same program.

Hypothesis draws a small program - inputs of random small shapes, then a few random operations
(elementwise unary and binary ops with broadcasting, views: permute, strided and offset slices,
expand, reshape of any view, flip, cat/zero-padding, roll; reductions over random axes with or
without keepdim; row patterns: x - max, softmax, log-softmax, layer norm, logsumexp) - and
builds it twice in lockstep: as lazytorch tensors and as numpy arrays. Several values of the
program are then realized together (`lazytorch.realize(a, b, ...)`) and compared.

The numpy side computes floats in float64 from the same (float32 or float64) inputs and tracks the
dtype torch would give; integers are computed exactly. Every op keeps values bounded and away from
discontinuities (a comparison or argmax is only drawn when its operands are not near-equal), so a
failure is a compiler bug, not rounding; some inputs hold a NaN, which must propagate as in torch.
A failing example prints its program (`v3 = softmax(v1, -1)    # float32[2, 5]`, ...).

Compile time dominates (every new kernel is a Numba compile), so programs are short (2-8 ops) and
shapes small (1-4 axes of 1-5); CI runs the same 200 examples (`derandomize=True`), in under a
minute with a cold kernel cache. To hunt for bugs with fresh examples:
`LAZYTORCH_RANDOM_GRAPHS=3000 python -m pytest tests/test_random_graphs.py -x`.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from scipy import special

import lazytorch as lt

EXAMPLES = int(os.environ.get("LAZYTORCH_RANDOM_GRAPHS", 200))
DERANDOMIZE = "LAZYTORCH_RANDOM_GRAPHS" not in os.environ
MAX_OPS = 8
LIMIT = 1e3             # any value beyond this makes the op fall back to tanh (floats)
INT_LIMIT = 1 << 20     # integers stay far from int32 overflow
TOL = {"float32": 2e-4, "float64": 1e-9}

DTYPES = ["float32", "float64", "int64", "float32", "float64", "int32", "float32", "float64"]


class Value:
    """One value of the program on both sides: lazytorch tensor, numpy reference, torch dtype."""

    def __init__(self, name: str, lazy, ref: np.ndarray, dtype: str):
        self.name, self.lazy, self.ref, self.dtype = name, lazy, ref, dtype
        self.scale = 1.0    # largest magnitude this value was computed from: the absolute tolerance

    @property
    def shape(self):
        return self.ref.shape

    @property
    def ndim(self):
        return self.ref.ndim

    @property
    def is_float(self):
        return self.dtype.startswith("float")


def _np_dtype(dtype: str):
    """The numpy dtype the reference is computed in: float64 for floats, exact integers."""
    return np.float64 if dtype.startswith("float") else np.int64


class Program:
    """A random program built step by step from hypothesis draws (so failures shrink)."""

    def __init__(self, data, dtype: str):
        self.data = data
        self.dtype = dtype
        self.float = dtype.startswith("float")
        self.rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
        self.values: list[Value] = []
        self.lines: list[str] = []

    # -- helpers -------------------------------------------------------------------------------
    def draw(self, strategy, label=None):
        return self.data.draw(strategy, label=label)

    def choice(self, items, label=None):
        return self.draw(st.sampled_from(items), label=label)

    def add(self, text: str, lazy, ref, dtype: str | None = None, inputs=()) -> Value:
        dtype = dtype or self.dtype
        ref = np.asarray(ref, dtype=_np_dtype(dtype))
        assert tuple(lazy.shape) == ref.shape, f"{text}: lazy shape {tuple(lazy.shape)} != numpy {ref.shape}"
        value = Value(f"v{len(self.values)}", lazy, ref, dtype)
        finite = ref[np.isfinite(ref)] if value.is_float else ref
        value.scale = max([1.0, float(np.abs(finite).max(initial=0))] + [v.scale for v in inputs])
        self.values.append(value)
        self.lines.append(f"{value.name} = {text}    # {dtype}{list(ref.shape)}")
        return value

    def view(self, x: Value, text: str, lazy, ref) -> Value:
        return self.add(text, lazy, ref, x.dtype, (x,))

    def shape(self, ndim=None) -> tuple[int, ...]:
        ndim = ndim or self.draw(st.integers(1, 4), label="ndim")
        return tuple(self.draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim), label="shape"))

    def leaf(self, shape) -> Value:
        if self.float:
            array = self.rng.standard_normal(shape) * 2
            if self.draw(st.integers(0, 9), label="nan?") == 0:      # sometimes a NaN to propagate
                array.flat[self.rng.integers(array.size)] = np.nan
        else:
            array = self.rng.integers(-6, 7, shape)
        array = np.asarray(array).astype(self.dtype)
        return self.add(f"input{list(shape)}", lt.from_numpy(array.copy()), array)

    def pick(self) -> Value:
        """An operand of the program's dtype with at least one axis (an int64 sum or argmax result,
        or a 0-d one, is only an output or a broadcast partner)."""
        candidates = [v for v in self.values if v.dtype == self.dtype and v.ndim]
        if self.draw(st.booleans(), label="latest?"):       # deep chains as often as wide graphs
            return candidates[-1]
        return self.choice(candidates, label="operand")

    def in_range(self, ref) -> bool:
        finite = ref[np.isfinite(ref)] if self.float else ref
        return float(np.abs(finite).max(initial=0)) <= (LIMIT if self.float else INT_LIMIT)

    def broadcast_partner(self, x: Value) -> Value:
        """An operand broadcastable with x: an existing value, or a new input of a derived shape."""
        def fits(v):
            try:
                out = np.broadcast_shapes(v.shape, x.shape)
            except ValueError:
                return False
            return len(out) <= 4 and v.dtype == x.dtype
        if self.draw(st.booleans(), label="reuse operand?"):
            candidates = [v for v in self.values if fits(v)]
            if candidates:
                return self.choice(candidates, label="partner")
        shape = [n if self.draw(st.booleans(), label="keep axis?") else 1 for n in x.shape]
        if len(shape) > 1 and self.draw(st.booleans(), label="drop leading axes?"):
            shape = shape[self.draw(st.integers(1, len(shape) - 1), label="dropped"):]
        elif len(shape) < 4 and self.draw(st.integers(0, 3), label="new leading axis?") == 0:
            shape = [self.draw(st.integers(2, 4), label="size")] + shape
        return self.leaf(tuple(shape))

    def axes(self, x: Value) -> tuple[int, ...]:
        axes = self.draw(st.lists(st.integers(0, x.ndim - 1), min_size=1, max_size=x.ndim, unique=True),
                         label="axes")
        return tuple(sorted(axes))

    # -- the step: one random operation ------------------------------------------------------
    def step(self) -> None:
        # hypothesis favours the first entries of a list: views and reductions come first
        kinds = ["view", "reduce", "binary", "row", "unary", "view", "cat", "scalar"]
        kind = self.choice(kinds if self.float else [k for k in kinds if k != "row"], label="kind")
        getattr(self, f"op_{kind}")()

    def fallback(self, x: Value, text: str):
        """When an op would leave the safe range: tanh (floats) or negation (ints) instead."""
        if self.float:
            return self.add(f"tanh({x.name})  # instead of {text}", x.lazy.tanh(), np.tanh(x.ref), inputs=(x,))
        return self.add(f"-{x.name}  # instead of {text}", -x.lazy, -x.ref, inputs=(x,))

    def checked(self, x: Value, text: str, lazy_fn, ref_fn, dtype=None, inputs=None):
        with np.errstate(all="ignore"):
            ref = ref_fn()
        if not self.in_range(ref):
            return self.fallback(x, text)
        return self.add(text, lazy_fn(), ref, dtype, inputs or (x,))

    def op_unary(self):
        x = self.pick()
        if self.float:
            ops = {
                "sigmoid": (lambda t: t.sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
                "exp": (lambda t: t.exp(), np.exp),
                "neg": (lambda t: -t, np.negative),
                "abs": (lambda t: t.abs(), np.abs),
                "log(|{x}| + 0.5)": (lambda t: (t.abs() + 0.5).log(), lambda a: np.log(np.abs(a) + 0.5)),
                "sin": (lambda t: t.sin(), np.sin),
                "cos": (lambda t: t.cos(), np.cos),
                "tanh": (lambda t: t.tanh(), np.tanh),
                "erf": (lambda t: t.erf(), special.erf),
                "sqrt(|{x}| + 0.25)": (lambda t: (t.abs() + 0.25).sqrt(), lambda a: np.sqrt(np.abs(a) + 0.25)),
                "relu": (lambda t: t.relu(), lambda a: np.maximum(a, 0)),
                "{x}.clamp(-1, 1)": (lambda t: t.clamp(-1, 1), lambda a: np.clip(a, -1, 1)),
                "{x} * {x}": (lambda t: t * t, np.square),
                "log1p(|{x}|)": (lambda t: t.abs().log1p(), lambda a: np.log1p(np.abs(a))),
                "(|{x}| + 0.5) ** 1.5": (lambda t: (t.abs() + 0.5) ** 1.5, lambda a: (np.abs(a) + 0.5) ** 1.5),
            }
        else:
            ops = {
                "neg": (lambda t: -t, np.negative),
                "abs": (lambda t: t.abs(), np.abs),
                "{x} * {x}": (lambda t: t * t, np.square),
                "{x}.clamp(-3, 3)": (lambda t: t.clamp(-3, 3), lambda a: np.clip(a, -3, 3)),
                "relu": (lambda t: t.relu(), lambda a: np.maximum(a, 0)),
            }
        name = self.choice(list(ops), label="unary")
        lazy_fn, ref_fn = ops[name]
        text = name.format(x=x.name) if "{x}" in name else f"{name}({x.name})"
        if name == "exp" and np.max(np.abs(np.nan_to_num(x.ref))) > 8:
            return self.fallback(x, text)
        self.checked(x, text, lambda: lazy_fn(x.lazy), lambda: ref_fn(x.ref))

    def op_scalar(self):
        x = self.pick()
        c = self.choice([2, -3] if not self.float else [0.5, -1.5, 2.0, 3])
        ops = {
            "{x} + {c}": (lambda t: t + c, lambda a: a + c),
            "{c} - {x}": (lambda t: c - t, lambda a: c - a),
            "{x} * {c}": (lambda t: t * c, lambda a: a * c),
        }
        if self.float:
            ops["{x} / {c}"] = (lambda t: t / c, lambda a: a / c)
        name = self.choice(list(ops), label="scalar op")
        lazy_fn, ref_fn = ops[name]
        self.checked(x, name.format(x=x.name, c=c), lambda: lazy_fn(x.lazy), lambda: ref_fn(x.ref))

    def op_binary(self):
        x = self.pick()
        y = self.broadcast_partner(x)
        ops = {
            "mul": (lambda a, b: a * b, np.multiply),
            "add": (lambda a, b: a + b, np.add),
            "sub": (lambda a, b: a - b, np.subtract),
            "maximum": (lambda a, b: lt.maximum(a, b), np.maximum),
            "minimum": (lambda a, b: lt.minimum(a, b), np.minimum),
            "where({x} > {y}, {x}, {y} * 2)": (lambda a, b: lt.where(a > b, a, b * 2), lambda a, b: np.where(a > b, a, b * 2)),
        }
        if self.float:
            ops["{x} / (|{y}| + 0.5)"] = (lambda a, b: a / (b.abs() + 0.5), lambda a, b: a / (np.abs(b) + 0.5))
        else:
            ops["{x} // (|{y}| + 1)"] = (lambda a, b: a // (b.abs() + 1), lambda a, b: a // (np.abs(b) + 1))
            ops["{x} % (|{y}| + 1)"] = (lambda a, b: a % (b.abs() + 1), lambda a, b: a % (np.abs(b) + 1))
            ops["{x} & {y}"] = (lambda a, b: a & b, np.bitwise_and)
            ops["{x} ^ {y}"] = (lambda a, b: a ^ b, np.bitwise_xor)
        name = self.choice(list(ops), label="binary")
        lazy_fn, ref_fn = ops[name]
        if name.startswith("where") and self.float:
            gap = np.abs(x.ref - y.ref)
            gap = gap[~np.isnan(gap)]
            if gap.size and gap.min() < 1e-3 * max(x.scale, y.scale):   # a near tie could flip either way
                name, (lazy_fn, ref_fn) = "add", ops["add"]
        text = name.format(x=x.name, y=y.name) if "{x}" in name else f"{name}({x.name}, {y.name})"
        self.checked(x, text, lambda: lazy_fn(x.lazy, y.lazy), lambda: ref_fn(x.ref, y.ref),
                     inputs=(x, y))

    # -- views ---------------------------------------------------------------------------------
    def op_view(self):
        x = self.pick()
        ops = ["slice", "reshape", "permute", "expand", "flip", "index", "roll", "transpose", "unsqueeze",
               "squeeze"]
        name = self.choice(ops, label="view")
        getattr(self, f"view_{name}")(x)

    def view_permute(self, x):
        order = self.draw(st.permutations(range(x.ndim)), label="order")
        self.view(x, f"{x.name}.permute{tuple(order)}", x.lazy.permute(*order), np.transpose(x.ref, order))

    def view_transpose(self, x):
        a, b = self.draw(st.integers(0, x.ndim - 1)), self.draw(st.integers(-x.ndim, x.ndim - 1))
        self.view(x, f"{x.name}.transpose({a}, {b})", x.lazy.transpose(a, b), np.swapaxes(x.ref, a, b))

    def view_slice(self, x):
        index = []
        for n in x.shape:
            start = self.draw(st.integers(-n, n - 1), label="start")
            stop = self.draw(st.one_of(st.none(), st.integers(-n, n)), label="stop")
            step = self.draw(st.integers(1, 3), label="step")
            index.append(slice(start, stop, step))
        index = tuple(index)
        ref = x.ref[index]
        if ref.size == 0:                   # keep every value non-empty
            index = tuple(slice(s.start % n, None, s.step) for s, n in zip(index, x.shape))
            ref = x.ref[index]
        self.view(x, f"{x.name}[{_slices_text(index)}]", x.lazy[index], ref)

    def view_index(self, x):
        """Integer indexing (drops an axis) and None (adds one), mixed with slices."""
        if x.ndim == 1:
            return self.view_unsqueeze(x)
        axis = self.draw(st.integers(0, x.ndim - 1), label="axis")
        i = self.draw(st.integers(-x.shape[axis], x.shape[axis] - 1), label="index")
        index = (slice(None),) * axis + (i, None)
        self.view(x, f"{x.name}[{_slices_text(index)}]", x.lazy[index], x.ref[index])

    def view_expand(self, x):
        if x.ndim < 4 and self.draw(st.booleans(), label="new axis?"):
            axis = self.draw(st.integers(0, x.ndim), label="axis")
            lazy, ref = x.lazy.unsqueeze(axis), np.expand_dims(x.ref, axis)
        else:
            lazy, ref = x.lazy, x.ref
        shape = tuple(self.draw(st.integers(2, 4), label="size") if n == 1 and self.draw(st.booleans()) else n
                      for n in ref.shape)
        self.view(x, f"{x.name}.expand{shape}", lazy.expand(*shape), np.broadcast_to(ref, shape))

    def view_reshape(self, x):
        shape = self.draw(_factorizations(x.ref.size), label="new shape")
        if self.draw(st.booleans(), label="use -1?"):
            shape = tuple(-1 if i == 0 else n for i, n in enumerate(shape))
        self.view(x, f"{x.name}.reshape{shape}", x.lazy.reshape(*shape), x.ref.reshape(shape))

    def view_flip(self, x):
        axes = self.axes(x)
        self.view(x, f"{x.name}.flip{axes}", x.lazy.flip(axes), np.flip(x.ref, axes))

    def view_unsqueeze(self, x):
        if x.ndim == 4:
            return self.view_squeeze(x)
        axis = self.draw(st.integers(-x.ndim - 1, x.ndim), label="axis")
        self.view(x, f"{x.name}.unsqueeze({axis})", x.lazy.unsqueeze(axis), np.expand_dims(x.ref, axis))

    def view_squeeze(self, x):
        ones = [i for i, n in enumerate(x.shape) if n == 1]
        if not ones or len(ones) == x.ndim:
            return self.view_permute(x)
        axis = self.choice(ones, label="axis")
        self.view(x, f"{x.name}.squeeze({axis})", x.lazy.squeeze(axis), np.squeeze(x.ref, axis))

    def view_roll(self, x):
        axis = self.draw(st.integers(0, x.ndim - 1), label="axis")
        shift = self.draw(st.integers(-4, 4), label="shift")
        self.view(x, f"{x.name}.roll({shift}, {axis})", x.lazy.roll(shift, axis), np.roll(x.ref, shift, axis))

    def op_cat(self):
        """Concatenation with another value, or zero padding spelled as cat with zeros."""
        x = self.pick()
        axis = self.draw(st.integers(0, x.ndim - 1), label="axis")
        if self.draw(st.booleans(), label="pad?"):
            before, after = self.draw(st.integers(0, 2), label="before"), self.draw(st.integers(1, 2), label="after")
            dtype = getattr(lt, x.dtype)

            def zeros(k):
                shape = x.shape[:axis] + (k,) + x.shape[axis + 1:]
                return lt.zeros(shape, dtype=dtype), np.zeros(shape)
            (zb, rb), (za, ra) = zeros(before), zeros(after)
            self.add(f"pad({x.name}, axis={axis}, ({before}, {after}))", lt.cat([zb, x.lazy, za], axis),
                     np.concatenate([rb, x.ref, ra], axis), x.dtype, (x,))
            return
        others = [v for v in self.values if v.ndim == x.ndim and v.dtype == x.dtype and
                  all(a == b for i, (a, b) in enumerate(zip(v.shape, x.shape)) if i != axis)]
        y = self.choice(others, label="other")
        first, second = (x, y) if self.draw(st.booleans(), label="order") else (y, x)
        self.add(f"cat([{first.name}, {second.name}], {axis})", lt.cat([first.lazy, second.lazy], axis),
                 np.concatenate([first.ref, second.ref], axis), x.dtype, (x, y))

    # -- reductions ----------------------------------------------------------------------------
    def op_reduce(self):
        x = self.pick()
        keepdim = self.draw(st.booleans(), label="keepdim")
        whole = self.draw(st.integers(0, 5), label="all axes?") == 0
        axes = tuple(range(x.ndim)) if whole else self.axes(x)
        ops = ["sum", "amax", "max(dim)", "mean", "argmax", "amin", "min(dim)", "var"]
        ops = ops if self.float else [op for op in ops if op not in ("mean", "var")]
        name = self.choice(ops, label="reduction")
        text = f"{x.name}.{name}"
        if name in ("max(dim)", "min(dim)", "argmax"):
            axis = axes[0]
            if name == "argmax":
                if self.float and _near_tie(np.moveaxis(x.ref, axis, -1), x.scale):
                    name, text = "max(dim)", f"{x.name}.max(dim)"
                else:
                    ref = np.argmax(x.ref, axis)
                    ref = np.expand_dims(ref, axis) if keepdim else ref
                    self.add(f"{x.name}.argmax({axis}, keepdim={keepdim})", x.lazy.argmax(axis, keepdim=keepdim),
                             ref, "int64", (x,))
                    return
            fn, ref_fn = (x.lazy.max, np.max) if name == "max(dim)" else (x.lazy.min, np.min)
            self.view(x, f"{text.replace('(dim)', '')}({axis}, keepdim={keepdim}).values",
                      fn(axis, keepdim=keepdim).values, ref_fn(x.ref, axis, keepdims=keepdim))
            return
        dim = None if whole and not keepdim else axes      # x.sum(): no dim argument at all
        ref_axes = axes
        if name == "sum":
            lazy = x.lazy.sum() if dim is None else x.lazy.sum(dim, keepdim=keepdim)
            ref = np.sum(x.ref, ref_axes, keepdims=keepdim)
            dtype = x.dtype if x.is_float else "int64"        # torch sums integers in int64
        elif name == "mean":
            lazy = x.lazy.mean() if dim is None else x.lazy.mean(dim, keepdim=keepdim)
            ref, dtype = np.mean(x.ref, ref_axes, keepdims=keepdim), x.dtype
        elif name == "var":
            count = x.ref.size if ref_axes is None else math.prod(x.shape[a] for a in ref_axes)
            if count < 2:
                return self.fallback(x, f"{x.name}.var")
            lazy = x.lazy.var() if dim is None else x.lazy.var(dim, keepdim=keepdim)
            ref, dtype = np.var(x.ref, ref_axes, keepdims=keepdim, ddof=1), x.dtype
        else:
            lazy = getattr(x.lazy, name)() if dim is None else getattr(x.lazy, name)(dim, keepdim=keepdim)
            ref, dtype = getattr(np, name)(x.ref, ref_axes, keepdims=keepdim), x.dtype
        args = "" if dim is None else f"{dim}, keepdim={keepdim}"
        self.checked(x, f"{text}({args})", lambda: lazy, lambda: ref, dtype)

    def op_row(self):
        """Reductions broadcast back over their rows: the patterns row kernels fuse."""
        x = self.pick()
        d = self.draw(st.integers(-x.ndim, x.ndim - 1), label="dim")
        a = x.ref
        with np.errstate(all="ignore"):
            shifted = a - np.max(a, d, keepdims=True)
            exp = np.exp(shifted)
            ops = {
                "{x} - {x}.amax({d}, keepdim=True)": (lambda t: t - t.amax(d, keepdim=True), lambda: shifted),
                "{x} - {x}.max({d}, keepdim=True).values": (lambda t: t - t.max(d, keepdim=True).values, lambda: shifted),
                "softmax({x}, {d})": (lambda t: lt.softmax(t, d), lambda: exp / exp.sum(d, keepdims=True)),
                "log_softmax({x}, {d})": (lambda t: lt.log_softmax(t, d),
                                      lambda: shifted - np.log(exp.sum(d, keepdims=True))),
                "exp({x} - max) / sum, dim {d}": (lambda t: _manual_softmax(t, d), lambda: exp / exp.sum(d, keepdims=True)),
                "layer_norm({x}, {d})": (lambda t: (t - t.mean(d, keepdim=True)) / (t.var(d, keepdim=True, unbiased=False)
                                                                                 + 1e-3).sqrt(),
                                     lambda: (a - a.mean(d, keepdims=True)) / np.sqrt(a.var(d, keepdims=True) + 1e-3)),
                "{x} / (|{x}|.sum({d}, keepdim=True) + 1)": (lambda t: t / (t.abs().sum(d, keepdim=True) + 1),
                                                       lambda: a / (np.abs(a).sum(d, keepdims=True) + 1)),
                "logsumexp({x}, {d})": (lambda t: t.logsumexp(d), lambda: special.logsumexp(a, d)),
            }
        name = self.choice(list(ops), label="row pattern")
        lazy_fn, ref_fn = ops[name]
        self.checked(x, name.format(x=x.name, d=d), lambda: lazy_fn(x.lazy), ref_fn)

    # -- running -------------------------------------------------------------------------------
    def outputs(self) -> list[Value]:
        """The last value and up to two others (inputs too): realized together."""
        last = self.values[-1]
        others = [v for v in self.values[:-1]]
        extra = self.draw(st.lists(st.sampled_from(others), max_size=2, unique_by=lambda v: v.name),
                          label="extra outputs") if others else []
        return [last] + extra

    def check(self, outputs: list[Value]) -> None:
        note("\n".join(self.lines))
        note(f"outputs: {[v.name for v in outputs]}")
        lt.realize(*(v.lazy for v in outputs))
        for v in outputs:
            got = v.lazy.numpy()
            assert str(v.lazy.dtype).removeprefix("torch.") == v.dtype, f"{v.name}: dtype {v.lazy.dtype} != {v.dtype}"
            assert got.shape == v.ref.shape, f"{v.name}: shape {got.shape} != {v.ref.shape}"
            if v.is_float:
                tol = TOL[v.dtype]
                np.testing.assert_allclose(got.astype(np.float64), v.ref, rtol=tol, atol=tol * v.scale,
                                           equal_nan=True, err_msg=f"value {v.name}")
            else:
                np.testing.assert_array_equal(got, v.ref, err_msg=f"value {v.name}")


def _manual_softmax(t, d):
    e = (t - t.max(d, keepdim=True).values).exp()
    return e / e.sum(d, keepdim=True)


def _near_tie(rows: np.ndarray, scale: float) -> bool:
    """True when some row's two largest values are too close for argmax to be well defined."""
    if rows.shape[-1] < 2 or np.isnan(rows).any():
        return np.isnan(rows).any()
    top = np.sort(rows, axis=-1)[..., -2:]
    exact_tie = top[..., 0] == top[..., 1]     # exact copies (expand, cat) tie the same way everywhere
    return bool(np.any((top[..., 1] - top[..., 0] < 1e-3 * scale) & ~exact_tie))


def _factorizations(n: int):
    """Shapes of 1-4 axes with n elements (sizes may be 1)."""
    def split(m, parts):
        if parts == 1:
            return [(m,)]
        return [(f,) + rest for f in range(1, m + 1) if m % f == 0 for rest in split(m // f, parts - 1)]
    shapes = [s for parts in range(1, 5) for s in split(n, parts) if max(s) <= 8 or parts == 1]
    return st.sampled_from(shapes)


def _slices_text(index) -> str:
    def one(s):
        if s is None:
            return "None"
        if isinstance(s, int):
            return str(s)
        parts = ["" if s.start is None else str(s.start), "" if s.stop is None else str(s.stop)]
        return ":".join(parts) + ("" if s.step in (None, 1) else f":{s.step}")
    return ", ".join(one(s) for s in index)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=DERANDOMIZE, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(st.data())
def test_random_graph_matches_numpy(data):
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    program = Program(data, dtype)
    for _ in range(data.draw(st.integers(1, 2), label="inputs")):
        program.leaf(program.shape())
    for _ in range(data.draw(st.integers(2, MAX_OPS), label="ops")):
        program.step()
    program.check(program.outputs())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_shared_intermediate_realized_with_its_consumers(dtype):
    """A value that is both an output and an input of other outputs (materialized once, reused)."""
    a = np.random.default_rng(0).standard_normal((4, 5)).astype(dtype)
    x = lt.from_numpy(a)
    shifted = x - x.amax(1, keepdim=True)
    total = shifted.exp().sum(1)
    flipped = shifted.flip(0)[:, 1::2]
    lt.realize(shifted, total, flipped)
    ref = a.astype(np.float64) - a.max(1, keepdims=True)
    tol = TOL[dtype]
    np.testing.assert_allclose(shifted.numpy(), ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(total.numpy(), np.exp(ref).sum(1), rtol=tol, atol=tol)
    np.testing.assert_allclose(flipped.numpy(), ref[::-1, 1::2], rtol=tol, atol=tol)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_x_minus_its_max_over_one_element_keeps_nan(value):
    """Found by the random graphs: compiled with 'reassoc', LLVM folded max over one element to
    the element and cancelled x - x to 0, where torch gives NaN (inf - inf, NaN - NaN)."""
    x = lt.from_numpy(np.array([[value]], np.float32))
    shifted = x - x.amax(0, keepdim=True)
    again = (shifted - shifted.amax(0, keepdim=True)).reshape(1)
    last = again - again.amax(0, keepdim=True)
    np.testing.assert_array_equal(last.numpy(), [np.nan])


def test_leading_slice_of_a_reduction():
    """Found by the random graphs: a leading slice of a reduction's result is a contiguous view
    of fewer elements; fusion took it for the whole reduction (wrong values, or a crash)."""
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    x = lt.from_numpy(a)
    first_row = x.sum(0)[:1]
    picked = x[:1].sum(0, keepdim=True)[:, 0, None]
    lt.realize(first_row, picked)
    np.testing.assert_array_equal(first_row.numpy(), a.sum(0)[:1])
    np.testing.assert_array_equal(picked.numpy(), a[:1].sum(0, keepdims=True)[:, 0, None])


def test_expand_a_slice_of_padding():
    """Found by the random graphs: slicing one column of a padded (rolled, concatenated) tensor left
    an empty valid range (1, 1) that expand took for "all valid", reading past the padding."""
    a = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    x = lt.from_numpy(a)
    rolled = x.roll(1, 2) - 1.0
    column = rolled[:, :, 0, None].expand(2, 2, 2)
    padded = lt.cat([lt.zeros(2, 2, 1), x], 2)[:, :, :1].expand(2, 2, 3)
    lt.realize(column, padded)
    np.testing.assert_array_equal(column.numpy(), np.broadcast_to((np.roll(a, 1, 2) - 1)[:, :, :1], (2, 2, 2)))
    np.testing.assert_array_equal(padded.numpy(), np.zeros((2, 2, 3)))
