"""Bind the operations as `Tensor` methods, operators and in-place variants."""
from __future__ import annotations

import builtins

from compiler import dtypes as dt
from compiler.ir import node as ir
from lazytorch import _creation, _movement, _ops, _storage
from lazytorch._tensor import Number, Tensor, _device_name, _dtype_label, tensor
from lazytorch._grad_mode import is_grad_enabled

_METHODS = [
    # elementwise
    "add", "sub", "mul", "div", "true_divide", "divide", "floor_divide", "remainder", "fmod", "pow", "maximum",
    "minimum", "atan2", "lt", "le", "gt", "ge", "eq", "ne", "less", "less_equal", "greater", "greater_equal",
    "not_equal", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "logical_not", "logical_and",
    "logical_or", "logical_xor", "exp", "log", "sin", "cos", "tan", "sqrt", "tanh", "sigmoid", "erf", "log1p",
    "expm1", "log2", "log10", "exp2", "rsqrt", "reciprocal", "square", "neg", "negative", "abs", "absolute",
    "sign", "floor", "ceil", "trunc", "fix", "round", "frac", "isnan", "isinf", "isfinite", "isposinf",
    "isneginf", "relu", "clamp", "clip", "clamp_min", "clamp_max", "lerp", "addcmul", "addcdiv", "allclose",
    "isclose", "equal",
    # reductions
    "sum", "prod", "mean", "var", "std", "amax", "amin", "max", "min", "argmax", "argmin", "all", "any",
    "count_nonzero", "logsumexp", "softmax", "log_softmax", "cumsum", "norm", "dist",
    # linear algebra
    "matmul", "mm", "bmm", "dot", "mv", "outer", "ger", "inner", "addmm",
    # misc
    "clone", "nonzero", "argwhere",
]
_VIEW_METHODS = [
    "reshape", "view", "view_as", "reshape_as", "flatten", "unflatten", "permute", "transpose", "swapaxes",
    "swapdims", "t", "squeeze", "unsqueeze", "expand", "expand_as", "broadcast_to", "repeat", "tile",
    "contiguous", "flip", "fliplr", "flipud", "roll", "narrow", "select", "split", "chunk", "unbind", "tril",
    "triu", "masked_fill", "gather", "index_select", "take", "index_put", "index_put_", "as_strided", "diagonal", "movedim", "moveaxis",
]

for _name in _METHODS:
    setattr(Tensor, _name, getattr(_ops, _name))
for _name in _VIEW_METHODS:
    setattr(Tensor, _name, getattr(_movement, _name))
Tensor.__getitem__ = _movement.getitem
Tensor.T = property(lambda self: _movement.permute(self, tuple(reversed(range(self.dim())))))
Tensor.mT = property(lambda self: _movement.transpose(self, -2, -1))
Tensor.H = Tensor.T
Tensor.mH = Tensor.mT


def _binary_operator(fn, reflected: bool = False):
    def op(self, other):
        if not isinstance(other, _ops._TENSOR_OR_NUMBER):
            return NotImplemented
        return fn(other, self) if reflected else fn(self, other)
    return op


Tensor.__add__ = _binary_operator(_ops.add)
Tensor.__radd__ = _binary_operator(_ops.add)
Tensor.__sub__ = _binary_operator(_ops.sub)
Tensor.__mul__ = _binary_operator(_ops.mul)
Tensor.__rmul__ = _binary_operator(_ops.mul)
Tensor.__truediv__ = _binary_operator(_ops.div)
Tensor.__floordiv__ = _binary_operator(_ops.floor_divide)
Tensor.__mod__ = _binary_operator(_ops.remainder)
Tensor.__pow__ = _binary_operator(_ops.pow)
Tensor.__matmul__ = lambda self, other: _ops.matmul(self, other) if isinstance(other, Tensor) else NotImplemented
Tensor.__and__ = _binary_operator(_ops.bitwise_and)
Tensor.__or__ = _binary_operator(_ops.bitwise_or)
Tensor.__xor__ = _binary_operator(_ops.bitwise_xor)
Tensor.__rand__ = _binary_operator(_ops.bitwise_and)
Tensor.__ror__ = _binary_operator(_ops.bitwise_or)
Tensor.__rxor__ = _binary_operator(_ops.bitwise_xor)
Tensor.__lt__ = _binary_operator(_ops.lt)
Tensor.__le__ = _binary_operator(_ops.le)
Tensor.__gt__ = _binary_operator(_ops.gt)
Tensor.__ge__ = _binary_operator(_ops.ge)
Tensor.__eq__ = _binary_operator(_ops.eq)
Tensor.__ne__ = _binary_operator(_ops.ne)
Tensor.__neg__ = _ops.neg
Tensor.__pos__ = lambda self: self
Tensor.__abs__ = _ops.abs


def _invert(self):
    if self.dtype.is_floating_point:
        raise TypeError("~ (operator.invert) is only implemented on integer and Boolean-type tensors")
    return _ops.logical_not(self) if self.dtype is dt.bool_ else _ops.bitwise_not(self)


Tensor.__invert__ = _invert


def _scalar_first(fn):
    """Reflected operators with a Python scalar on the left: `2 - x`, `1 / x`, `2 ** x`."""
    def op(self, other):
        if not isinstance(other, Number):
            return NotImplemented
        return fn(other, self)
    return op


Tensor.__rsub__ = _scalar_first(_ops.sub)
Tensor.__rtruediv__ = _scalar_first(_ops.div)
Tensor.__rfloordiv__ = _scalar_first(_ops.floor_divide)
Tensor.__rmod__ = _scalar_first(_ops.remainder)
Tensor.__rpow__ = _scalar_first(_ops.pow)


# ---------------------------------------------------------------------------------------------
# dtype / device conversion

def to(self, *args, dtype=None, device=None, non_blocking=False, copy=False, memory_format=None):
    """`.to(dtype)`, `.to(device)`, `.to(device, dtype)`, `.to(other_tensor)`."""
    for a in args:
        if isinstance(a, dt.DType) or a in (builtins.bool, builtins.int, builtins.float):
            dtype = _creation.resolve_dtype(a)
        elif isinstance(a, Tensor):
            dtype, device = a.dtype, a.device
        elif a is not None:
            device = a
    result = self
    if dtype is not None and dtype is not self.dtype:
        result = _ops._to(result, dtype)
    if device is not None and _device_name(device) != self._node.device:
        raise RuntimeError(f"moving tensors to device '{device}' is not supported in this build")
    return result.clone() if copy and result is self else result


Tensor.to = to
Tensor.type_as = lambda self, other: _ops._to(self, other.dtype)
Tensor.cpu = lambda self: self
Tensor.cuda = lambda self, device=None: to(self, "cuda")
for _name, _dtype in (("float", dt.float32), ("double", dt.float64), ("half", dt.float16), ("long", dt.int64),
                      ("int", dt.int32), ("short", dt.int16), ("char", dt.int8), ("byte", dt.uint8),
                      ("bool", dt.bool_)):
    setattr(Tensor, _name, (lambda d: lambda self, memory_format=None: _ops._to(self, d))(_dtype))


def type_(self, dtype=None):
    if dtype is None:
        return f"torch.{_dtype_label(self.dtype)}Tensor"
    return _ops._to(self, dtype)


Tensor.type = type_


# ---------------------------------------------------------------------------------------------
# in-place operations: the tensor now refers to a new node

def _assign(self, result: Tensor, name: str) -> Tensor:
    """The in-place op `name`: `self`'s memory now holds `result` (cast to self's dtype), and so
    does every tensor sharing it (lazytorch/_storage.py)."""
    if is_grad_enabled():
        if self.is_leaf and self.requires_grad:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
        base = self._view_base
        if base is not None and self.requires_grad and base.is_leaf and base.requires_grad:
            raise RuntimeError("a view of a leaf Variable that requires grad is being used in an in-place operation.")
    if self._storage is not None and _storage.writes_overlap(self._storage.root._node.shape, self._view):
        raise RuntimeError(_storage._OVERLAP_ERROR)
    if result.shape != self.shape:
        raise RuntimeError(f"output with shape {list(self.shape)} doesn't match the broadcast shape "
                           f"{list(result.shape)}")
    if result.dtype is not self.dtype:
        if (result.dtype.category > self.dtype.category):
            raise RuntimeError(f"result type {_dtype_label(result.dtype)} can't be cast to the desired output type "
                               f"{_dtype_label(self.dtype)}")
        result = _ops._to(result, self.dtype)
    node = result._node
    if result.requires_grad and not self.requires_grad or (result.requires_grad and not self.is_leaf):
        # an in-place op that records grad makes the tensor a non-leaf result of that op
        self._requires_grad, self._grad_fn = True, result._grad_fn
    self._write(node)
    return self


Tensor._assign = _assign


def _inplace(fn, name):
    def method(self, *args, **kwargs):
        _movement.check_overlap(self, args)
        return self._assign(fn(self, *args, **kwargs), name)
    method.__name__ = name
    return method


for _name in ["add", "sub", "mul", "div", "floor_divide", "remainder", "fmod", "pow", "clamp", "clip",
              "clamp_min", "clamp_max", "exp", "log", "sin", "cos", "tan", "sqrt", "tanh", "sigmoid", "erf",
              "log1p", "expm1", "rsqrt", "reciprocal", "square", "neg", "negative", "abs", "sign", "floor", "ceil",
              "trunc", "round", "frac", "relu", "lerp", "addcmul", "addcdiv", "log2", "maximum", "minimum",
              "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "atan2", "lt", "le", "gt",
              "ge", "eq", "ne"]:
    setattr(Tensor, _name + "_", _inplace(getattr(_ops, _name), _name + "_"))
for _name in ["masked_fill", "tril", "triu"]:
    setattr(Tensor, _name + "_", _inplace(getattr(_movement, _name), _name + "_"))
Tensor.__iadd__ = lambda self, other: self._assign(_ops.add(self, other), "add_")
Tensor.__isub__ = lambda self, other: self._assign(_ops.sub(self, other), "sub_")
Tensor.__imul__ = lambda self, other: self._assign(_ops.mul(self, other), "mul_")
Tensor.__itruediv__ = lambda self, other: self._assign(_ops.div(self, other), "div_")
Tensor.__ifloordiv__ = lambda self, other: self._assign(_ops.floor_divide(self, other), "floor_divide_")
Tensor.__imod__ = lambda self, other: self._assign(_ops.remainder(self, other), "remainder_")
Tensor.__ipow__ = lambda self, other: self._assign(_ops.pow(self, other), "pow_")
Tensor.__iand__ = lambda self, other: self._assign(_ops.bitwise_and(self, other), "bitwise_and_")
Tensor.__ior__ = lambda self, other: self._assign(_ops.bitwise_or(self, other), "bitwise_or_")
Tensor.__ixor__ = lambda self, other: self._assign(_ops.bitwise_xor(self, other), "bitwise_xor_")


def _constant_like(self, value) -> Tensor:
    return Tensor._from_node(ir.const(value, self.dtype, self._node.shape, self._node.device))


def zero_(self):
    return self._assign(_constant_like(self, 0), "zero_")


def fill_(self, value):
    if isinstance(value, Tensor):
        return self._assign(_movement.expand(_ops._to(value, self.dtype), self.shape), "fill_")
    return self._assign(_constant_like(self, value), "fill_")


def copy_(self, src, non_blocking=False):
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_(): argument 'other' (position 1) must be Tensor, not {type(src).__name__}")
    _movement.check_overlap(self, (src,))
    value = _movement.expand(src, self.shape) if src.shape != self.shape else src
    return self._assign(_ops._to(value, self.dtype) if value.dtype is not self.dtype else value, "copy_")


Tensor.zero_ = zero_
Tensor.fill_ = fill_
Tensor.copy_ = copy_
Tensor.__setitem__ = _movement.setitem
Tensor.uniform_ = lambda self, a=0.0, b=1.0, *, generator=None: _creation.fill_random_(self, "uniform", a, b, generator)
Tensor.normal_ = lambda self, mean=0.0, std=1.0, *, generator=None: _creation.fill_random_(self, "normal", mean, std, generator)
Tensor.bernoulli_ = lambda self, p=0.5, *, generator=None: _creation.fill_random_(self, "bernoulli", p, 0, generator)
Tensor.exponential_ = lambda self, lambd=1.0, *, generator=None: _creation.fill_random_(self, "exponential", lambd, 0, generator)
Tensor.new_zeros = lambda self, *size, dtype=None, device=None, requires_grad=False: _creation.zeros(
    *size, dtype=dtype or self.dtype, requires_grad=requires_grad)
Tensor.new_ones = lambda self, *size, dtype=None, device=None, requires_grad=False: _creation.ones(
    *size, dtype=dtype or self.dtype, requires_grad=requires_grad)
Tensor.new_full = lambda self, size, fill_value, *, dtype=None, device=None, requires_grad=False: _creation.full(
    size, fill_value, dtype=dtype or self.dtype, requires_grad=requires_grad)
Tensor.new_empty = Tensor.new_zeros
Tensor.new_tensor = lambda self, data, dtype=None, device=None, requires_grad=False: tensor(
    data, dtype=dtype or self.dtype, requires_grad=requires_grad)
