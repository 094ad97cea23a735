"""Tensor creation: constants, ranges, random numbers, conversion from numpy."""
from __future__ import annotations

import builtins
import math
from typing import Optional

import numpy as np

from compiler import dtypes as dt
from compiler.ir import node as ir
from lazytorch._tensor import Number, Tensor, _device_name, check_factory_requires_grad, get_default_dtype, tensor


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
    return (generator or default_generator)._rng


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    array = _rng(generator).random(_shape(size), dtype=np.float64)
    return _leaf(array.astype(_np_dtype(dtype)), device, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    array = _rng(generator).standard_normal(_shape(size))
    return _leaf(array.astype(_np_dtype(dtype)), device, requires_grad)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    if size is None and isinstance(high, (tuple, list)):     # randint(high, size)
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint() missing required argument 'size'")
    array = _rng(generator).integers(low, high, _shape((size,)))
    return _leaf(array.astype((dtype or dt.int64).np_dtype), device, requires_grad)


def randperm(n: int, *, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _leaf(_rng(generator).permutation(n).astype((dtype or dt.int64).np_dtype), device, requires_grad)


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
    return _leaf((_rng(generator).standard_normal(_shape((size,))) * std + mean).astype(_np_dtype(dtype)), device)


def bernoulli(input, p=None, *, generator=None) -> Tensor:
    probs = input._value() if p is None else np.full(input.shape, p)
    return _leaf((_rng(generator).random(input.shape) < probs).astype(input.dtype.np_dtype))


def multinomial(input, num_samples: int, replacement: bool = False, *, generator=None) -> Tensor:
    probs = np.asarray(input._value(), np.float64)
    rows = probs.reshape(-1, probs.shape[-1])
    out = np.stack([_rng(generator).choice(rows.shape[1], num_samples, replace=replacement, p=r / r.sum())
                    for r in rows])
    return _leaf(out.reshape(probs.shape[:-1] + (num_samples,)).astype(np.int64))


def fill_random_(t: Tensor, kind: str, a: float, b: float, generator=None) -> Tensor:
    """In-place random fills (`uniform_`, `normal_`, ...): the new values are a fresh leaf buffer."""
    rng = _rng(generator)
    if kind == "uniform":
        array = rng.uniform(a, b, t.shape)
    elif kind == "normal":
        array = rng.normal(a, b, t.shape)
    elif kind == "bernoulli":
        array = rng.random(t.shape) < a
    elif kind == "exponential":
        array = rng.exponential(1.0 / a, t.shape)
    else:
        raise ValueError(kind)
    t._assign(Tensor._from_node(ir.buffer(np.asarray(array).astype(t.dtype.np_dtype))), "fill_random")
    return t
