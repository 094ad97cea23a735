"""Tensor creation: constants, ranges, random numbers, conversion from numpy."""
from __future__ import annotations

import builtins
import math
from typing import Optional

import numpy as np

from compiler import dtypes as dt
from compiler.ir import node as ir
from lazytorch._tensor import (Number, Tensor, _device_name, _ensure_storage, _tracing, check_factory_requires_grad, get_default_dtype,
                               tensor)


def _shape(size, negative_message: Optional[str] = None) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for n in size:
        if not isinstance(n, (builtins.int, np.integer)) or isinstance(n, builtins.bool):
            raise TypeError(f"zeros(): argument 'size' must be tuple of ints, but found element of type "
                            f"{type(n).__name__} at pos 0")
        if n < 0:
            raise RuntimeError(negative_message or f"Trying to create tensor with negative dimension {n}: {list(size)}")
    return tuple(builtins.int(n) for n in size)


def _leaf(array: np.ndarray, device=None, requires_grad: bool = False) -> Tensor:
    check_factory_requires_grad(array.dtype, requires_grad)
    result = Tensor._from_node(ir.buffer(array, _device_name(device)))
    if requires_grad:
        result.requires_grad_(True)
    return result


def _np_dtype(dtype: Optional[dt.DType]):
    return (resolve_dtype(dtype) or get_default_dtype()).np_dtype


def resolve_dtype(dtype):
    """torch accepts Python's bool/int/float as dtypes: they mean bool, int64 and the default float."""
    return {builtins.bool: dt.bool_, builtins.int: dt.int64, builtins.float: get_default_dtype()}.get(dtype, dtype)


def zeros(*size, dtype=None, device=None, requires_grad=False, out=None, layout=None) -> Tensor:
    shape = _shape(size, "zeros: Dimension size must be non-negative.")     # torch's words for zeros
    return _leaf(np.zeros(shape, _np_dtype(dtype)), device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False, out=None, layout=None) -> Tensor:
    return _leaf(np.ones(_shape(size), _np_dtype(dtype)), device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False, out=None, layout=None, memory_format=None) -> Tensor:
    return _leaf(np.zeros(_shape(size), _np_dtype(dtype)), device, requires_grad)


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    if dtype is None:
        dtype = tensor(fill_value).dtype
    return _leaf(np.full(_shape((size,)), fill_value, dtype.np_dtype), device, requires_grad)


def _like(input: Tensor, dtype):
    return dtype or input.dtype


def zeros_like(input, *, dtype=None, device=None, requires_grad=False, memory_format=None) -> Tensor:
    return zeros(input.shape, dtype=_like(input, dtype), device=device or input.device, requires_grad=requires_grad)


def ones_like(input, *, dtype=None, device=None, requires_grad=False, memory_format=None) -> Tensor:
    return ones(input.shape, dtype=_like(input, dtype), device=device or input.device, requires_grad=requires_grad)


def empty_like(input, *, dtype=None, device=None, requires_grad=False, memory_format=None) -> Tensor:
    return zeros_like(input, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False, memory_format=None) -> Tensor:
    return full(input.shape, fill_value, dtype=_like(input, dtype), device=device or input.device,
                requires_grad=requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    if end is None:
        start, end = 0, start
    values = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    if values[2] == 0:
        raise RuntimeError("step must be nonzero")
    if (values[1] - values[0]) * values[2] < 0:
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    if dtype is None:
        dtype = get_default_dtype() if any(isinstance(v, builtins.float) for v in values) else dt.int64
    start, end, step = values
    count = builtins.max(0, math.ceil((end - start) / step))
    array = (start + np.arange(count, dtype=np.float64) * step) if dtype.is_floating_point else \
        np.arange(start, end, step, dtype=np.int64)
    return _leaf(array.astype(dtype.np_dtype), device, requires_grad)


def linspace(start, end, steps: int, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    array = np.linspace(start, end, steps, dtype=np.float64)
    return _leaf(array.astype(_np_dtype(dtype)), device, requires_grad)


def logspace(start, end, steps: int, base: float = 10.0, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    array = base ** np.linspace(start, end, steps, dtype=np.float64)
    return _leaf(array.astype(_np_dtype(dtype)), device, requires_grad)


def eye(n: int, m: Optional[int] = None, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _leaf(np.eye(n, m, dtype=_np_dtype(dtype)), device, requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with `array` (C-contiguous arrays; others are copied)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    dt.from_numpy(array.dtype)
    t = Tensor._from_node(ir.buffer(array))
    if t._node.realized is array:            # (a C-contiguous array: shared, not copied)
        storage = _ensure_storage(t)
        storage.shared, storage.permanent = array, True
    return t


def _from_owned_array(array: np.ndarray) -> Tensor:
    """A tensor of an array nobody else holds (a collated batch): no sharing to keep track of."""
    return Tensor._from_node(ir.buffer(array))


def as_tensor(data, dtype=None, device=None) -> Tensor:
    if isinstance(data, Tensor):
        return data if dtype is None or data.dtype is dtype else data.to(dtype)
    if isinstance(data, np.ndarray) and (dtype is None or data.dtype == dtype.np_dtype):
        return from_numpy(data)
    return tensor(data, dtype=dtype, device=device)


asarray = as_tensor


def scalar_tensor(value, *, dtype=None, device=None) -> Tensor:
    return tensor(value, dtype=dtype or get_default_dtype(), device=device)


# ---------------------------------------------------------------------------------------------
# random numbers: a numpy Philox stream per seed, so `manual_seed(s)` reproduces every draw

class Generator:
    """torch.Generator: an independent random stream."""

    def __init__(self, device="cpu"):
        self.manual_seed(67280421310721)    # torch's default seed

    def manual_seed(self, seed: int) -> "Generator":
        self._seed = builtins.int(seed)
        self._rng = np.random.Generator(np.random.Philox(self._seed))
        return self

    def seed(self) -> int:
        return self.manual_seed(np.random.SeedSequence().entropy % (2 ** 63)).initial_seed()

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self):
        return self._rng.bit_generator.state

    def set_state(self, state):
        self._rng.bit_generator.state = state


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    return default_generator.manual_seed(seed)


def seed() -> int:
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def _rng(generator: Optional[Generator]):
    """The numpy stream of `generator` (host code that draws by itself: `nn.init`, `multinomial`)."""
    return (generator or default_generator)._rng


# how each kind of draw turns a numpy Generator into values (a, b: the draw's two parameters)
_DRAWS = {
    "rand": lambda rng, shape, a, b: rng.random(shape, dtype=np.float64),
    "randn": lambda rng, shape, a, b: rng.standard_normal(shape),
    "normal": lambda rng, shape, a, b: rng.standard_normal(shape) * b + a,
    "randint": lambda rng, shape, a, b: rng.integers(a, b, shape),
    "randperm": lambda rng, shape, a, b: rng.permutation(a),
    "bernoulli": lambda rng, shape, a, b: rng.random(shape) < a,
    "uniform_": lambda rng, shape, a, b: rng.uniform(a, b, shape),
    "normal_": lambda rng, shape, a, b: rng.normal(a, b, shape),
    "exponential_": lambda rng, shape, a, b: rng.exponential(1.0 / a, shape),
}


class _Draw:
    """One draw of random values: calling it draws them (again) from the generator's stream.

    `lazytorch.jit` keeps the draws a traced function made and calls them again, in the same
    order, at every replay: a jitted step consumes the stream exactly as the Python step does."""
    __slots__ = ("kind", "generator", "shape", "a", "b", "dtype")

    def __init__(self, kind: str, generator: Optional[Generator], shape: tuple, a, b, dtype):
        self.kind, self.generator, self.shape = kind, generator or default_generator, shape
        self.a, self.b, self.dtype = a, b, dtype

    def __call__(self) -> np.ndarray:
        return np.asarray(_DRAWS[self.kind](self.generator._rng, self.shape, self.a, self.b)).astype(self.dtype)

    def __repr__(self) -> str:
        which = "default generator" if self.generator is default_generator else "a generator"
        return f"random {self.kind}{list(self.shape)} from the {which}"


def _random(kind: str, shape: tuple, dtype, generator=None, a=0.0, b=0.0, device=None,
            requires_grad: bool = False) -> Tensor:
    """A new leaf tensor of random values (every random factory draws here)."""
    draw = _Draw(kind, generator, shape, a, b, dtype)
    tracer = _tracing[0]
    if tracer is not None:
        tracer.before_draw(draw.generator)
    result = _leaf(draw(), device, requires_grad)
    if tracer is not None:          # a program input, drawn again at every call of the jitted function
        tracer.host_input(result, draw, repr(draw))
    return result


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _random("rand", _shape(size), _np_dtype(dtype), generator, device=device, requires_grad=requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _random("randn", _shape(size), _np_dtype(dtype), generator, device=device, requires_grad=requires_grad)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    if size is None and isinstance(high, (tuple, list)):     # randint(high, size)
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint() missing required argument 'size'")
    return _random("randint", _shape((size,)), (dtype or dt.int64).np_dtype, generator, low, high, device,
                   requires_grad)


def randperm(n: int, *, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _random("randperm", (n,), (dtype or dt.int64).np_dtype, generator, n, 0, device, requires_grad)


def rand_like(input, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return rand(input.shape, dtype=dtype or input.dtype, requires_grad=requires_grad)


def randn_like(input, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return randn(input.shape, dtype=dtype or input.dtype, requires_grad=requires_grad)


def randint_like(input, low, high=None, *, dtype=None, device=None) -> Tensor:
    return randint(low, high, input.shape, dtype=dtype or input.dtype)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, device=None) -> Tensor:
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        from lazytorch import _ops
        shape = (mean if isinstance(mean, Tensor) else std).shape
        return _ops.add(_ops.mul(randn(shape, generator=generator), std), mean)
    return _random("normal", _shape((size,)), _np_dtype(dtype), generator, mean, std, device)


def bernoulli(input, p=None, *, generator=None) -> Tensor:
    if p is not None:
        return _random("bernoulli", tuple(input.shape), input.dtype.np_dtype, generator, p)
    # uniform draws compared with the probabilities lazily (in float64, as numpy compared them)
    from lazytorch import _ops
    uniform = _random("rand", tuple(input.shape), np.float64, generator)
    return _ops._to(_ops.lt(uniform, input), input.dtype)


def multinomial(input, num_samples: int, replacement: bool = False, *, generator=None) -> Tensor:
    probs = np.asarray(input._value(), np.float64)
    rows = probs.reshape(-1, probs.shape[-1])
    out = np.stack([_rng(generator).choice(rows.shape[1], num_samples, replace=replacement, p=r / r.sum())
                    for r in rows])
    return _leaf(out.reshape(probs.shape[:-1] + (num_samples,)).astype(np.int64))


def fill_random_(t: Tensor, kind: str, a: float, b: float, generator=None) -> Tensor:
    """In-place random fills (`uniform_`, `normal_`, ...): the new values are a fresh leaf buffer."""
    if kind not in ("uniform", "normal", "bernoulli", "exponential"):
        raise ValueError(kind)
    kind = "bernoulli" if kind == "bernoulli" else kind + "_"
    t._assign(_random(kind, tuple(t.shape), t.dtype.np_dtype, generator, a, b, t.device), "fill_random")
    return t
