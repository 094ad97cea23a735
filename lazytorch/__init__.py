"""lazytorch: PyTorch's API, lazily evaluated and compiled into fused Numba kernels.

    import lazytorch as torch
"""
from compiler import dtypes as _dt
from lazytorch._tensor import (Size, Tensor, broadcast_shapes, device, get_default_dtype, return_types,
                               set_default_dtype, tensor)
from lazytorch import _methods  # noqa: F401  (binds the Tensor methods)
from lazytorch._ops import *  # noqa: F401,F403
from lazytorch._ops import (abs, all, any, max, min, pow, round, sum, result_type)  # noqa: F401
from lazytorch._movement import (as_strided, index_put, diagonal, movedim, moveaxis, broadcast_tensors, broadcast_to, cat, chunk, concat, concatenate, expand_as,
                                 flatten, flip, fliplr, flipud, gather, hstack, index_select, masked_fill, narrow,
                                 permute, repeat, reshape, roll, select, split, squeeze, stack, swapaxes, swapdims,
                                 t, take, tile, transpose, tril, triu, unbind, unflatten, unsqueeze, vstack)
from lazytorch._creation import (Generator, arange, as_tensor, asarray, bernoulli, default_generator, empty,
                                 empty_like, eye, from_numpy, full, full_like, initial_seed, linspace, logspace,
                                 manual_seed, multinomial, normal, ones, ones_like, rand, rand_like, randint,
                                 randint_like, randn, randn_like, randperm, scalar_tensor, seed, zeros, zeros_like)
from lazytorch._grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from lazytorch import autograd, debug, func  # noqa: F401
from lazytorch._formatting import set_printoptions  # noqa: F401

dtype = _dt.DType
float32 = float = _dt.float32
float64 = double = _dt.float64
float16 = half = _dt.float16
int64 = long = _dt.int64
int32 = int = _dt.int32
int16 = short = _dt.int16
int8 = _dt.int8
uint8 = _dt.uint8
bool = _dt.bool_
promote_types = _dt.promote_types


def is_tensor(obj) -> "bool":
    return isinstance(obj, Tensor)


def numel(input: Tensor) -> "int":
    return input.numel()


def is_floating_point(input: Tensor) -> "bool":
    return input.is_floating_point()


def realize(*tensors: Tensor) -> None:
    """Compute several tensors in one compiled program."""
    from lazytorch._tensor import realize_tensors
    realize_tensors(list(tensors))


from lazytorch import nn, optim, utils  # noqa: E402,F401  (after the names they use are defined)
from lazytorch.serialization import load, save  # noqa: E402,F401
from lazytorch._jit import jit  # noqa: E402,F401
from lazytorch.explain import dump_kernels, explain  # noqa: E402,F401
from lazytorch import cache  # noqa: E402,F401

__version__ = "0.1.0"
