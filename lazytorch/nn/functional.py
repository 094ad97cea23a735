"""`lazytorch.nn.functional`: layers as functions, with PyTorch's names, defaults and errors.

Everything here is a composition of front-end tensor operations, so it builds IR that the
compiler fuses and the IR autodiff differentiates; nothing computes at the call. Piecewise
functions select with `where` (not max/min) so that gradients at the kinks are PyTorch's, and
branches that `where` discards are evaluated on clamped inputs so that their (discarded) gradient
cannot be 0 * inf = NaN. Convolution and pooling read windows through index tables
(`lazytorch.nn._windows`) and a single matmul.
"""
from __future__ import annotations

import math
import warnings
from typing import Optional, Sequence

import numpy as np

from compiler import dtypes as dt
from compiler.ir import node as ir
from lazytorch import _creation, _movement, _ops
from lazytorch._grad_mode import no_grad
from lazytorch._tensor import Tensor, _dtype_label
from lazytorch.nn import _windows

_where, _exp, _log1p, _expm1, _tanh, _sigmoid, _erf = (_ops.where, _ops.exp, _ops.log1p, _ops.expm1, _ops.tanh,
                                                         _ops.sigmoid, _ops.erf)


def _tuple(value, n: int, name: str = "") -> tuple:
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return tuple(value) * n
        if len(value) != n:
            raise RuntimeError(f"expected {name or 'argument'} to be a single integer value or a list of {n} values "
                               f"to match the convolution dimensions, but got {name}={list(value)}")
        return tuple(value)
    return (value,) * n


def _const(array: np.ndarray) -> Tensor:
    return Tensor._from_node(ir.buffer(np.ascontiguousarray(array)))


def _inplace_result(input: Tensor, result: Tensor, inplace: bool, name: str) -> Tensor:
    return input._assign(result, name) if inplace else result


# =============================================================================================
# activations

def relu(input: Tensor, inplace: bool = False) -> Tensor:
    # where, not maximum: the gradient at 0 is 0 (PyTorch's), and NaN passes through
    return _inplace_result(input, _where(input <= 0, 0, input), inplace, "relu_")


def relu_(input: Tensor) -> Tensor:
    return relu(input, inplace=True)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    return hardtanh(input, 0.0, 6.0, inplace)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    result = _where(input <= min_val, min_val, _where(input >= max_val, max_val, input))
    return _inplace_result(input, result, inplace, "hardtanh_")


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    return _inplace_result(input, _where(input <= threshold, value, input), inplace, "threshold_")


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return _inplace_result(input, _where(input > 0, input, input * negative_slope), inplace, "leaky_relu_")


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    negative = _expm1(_where(input > 0, 0.0, input)) * alpha
    return _inplace_result(input, _where(input > 0, input, negative), inplace, "elu_")


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    negative = _expm1(_where(input > 0, 0.0, input) / alpha) * alpha
    return _inplace_result(input, _where(input > 0, input, negative), inplace, "celu_")


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    return _inplace_result(input, elu(input, alpha) * scale, inplace, "selu_")


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    if approximate == "none":
        return input * 0.5 * (_erf(input * (1.0 / math.sqrt(2.0))) + 1.0)
    if approximate == "tanh":
        inner = (input + input * input * input * 0.044715) * math.sqrt(2.0 / math.pi)
        return input * 0.5 * (_tanh(inner) + 1.0)
    raise RuntimeError("approximate argument must be either none or tanh.")


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    return _inplace_result(input, input * _sigmoid(input), inplace, "silu_")


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    return _inplace_result(input, input * _tanh(softplus(input)), inplace, "mish_")


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    scaled = input * beta if beta != 1 else input
    linear = scaled > threshold
    # the log branch sees the input clamped to the threshold: exp never overflows there
    smooth = _log1p(_exp(_where(linear, threshold, scaled)))
    if beta != 1:
        smooth = smooth / beta
    return _where(linear, input, smooth)


def logsigmoid(input: Tensor) -> Tensor:
    # log(sigmoid(x)) = -log1p(exp(-x)) for x >= 0 and x - log1p(exp(x)) below; each branch is
    # evaluated only on its own half (0 elsewhere) so nothing overflows
    positive = input >= 0
    upper = -_log1p(_exp(-_where(positive, input, 0.0)))
    low = _where(positive, 0.0, input)
    lower = low - _log1p(_exp(low))
    return _where(positive, upper, lower)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    return _inplace_result(input, relu6(input + 3.0) / 6.0, inplace, "hardsigmoid_")


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    return _inplace_result(input, input * relu6(input + 3.0) / 6.0, inplace, "hardswish_")


def softsign(input: Tensor) -> Tensor:
    return input / (_ops.abs(input) + 1.0)


def tanhshrink(input: Tensor) -> Tensor:
    return input - _tanh(input)


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    return _where((input >= -lambd) & (input <= lambd), 0.0, input)


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    return _where(input > lambd, input - lambd, _where(input < -lambd, input + lambd, 0.0))


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    if weight.numel() != 1 and (input.dim() < 2 or input.shape[1] != weight.numel()):
        channels = input.shape[1] if input.dim() >= 2 else 1
        raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found parameter numbers = "
                           f"{weight.numel()} and channel size = {channels}.")
    w = weight.reshape(()) if weight.numel() == 1 else weight.reshape((1, -1) + (1,) * (input.dim() - 2))
    return _where(input > 0, input, input * w)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    if input.dim() == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    d = dim % input.dim()
    if input.shape[d] % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {d} is size {input.shape[d]}")
    a, b = _movement.chunk(input, 2, d)
    return a * _sigmoid(b)


def sigmoid(input: Tensor) -> Tensor:
    return _sigmoid(input)


def tanh(input: Tensor) -> Tensor:
    return _tanh(input)


def _softmax_dim(name: str, ndim: int, stacklevel: int) -> int:
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X "
                  "as an argument.", stacklevel=stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: Optional[int] = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    if dim is None:
        dim = _softmax_dim("softmax", input.dim(), _stacklevel)
    return _ops.softmax(input, dim, dtype)


def softmin(input: Tensor, dim: Optional[int] = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    if dim is None:
        dim = _softmax_dim("softmin", input.dim(), _stacklevel)
    return _ops.softmax(-input if dtype is None else -_ops._to(input, dtype), dim)


def log_softmax(input: Tensor, dim: Optional[int] = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    if dim is None:
        dim = _softmax_dim("log_softmax", input.dim(), _stacklevel)
    return _ops.log_softmax(input, dim, dtype)


# =============================================================================================
# linear layers, dropout, embedding

def linear(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """input @ weight.T + bias, over any leading dims (one 2-D matmul)."""
    if input.dim() == 0:
        raise RuntimeError("both arguments to linear need to be at least 1D, but they are 0D and "
                           f"{weight.dim()}D")
    # leading dims flattened into rows: one 2-D matmul, and torch's message for a size mismatch
    rows = input.reshape(-1, input.shape[-1]) if input.dim() != 2 else input
    out = _ops.matmul(rows, weight.t())
    if bias is not None:
        out = out + bias
    if input.dim() != 2:
        out = out.reshape(tuple(input.shape[:-1]) + (weight.shape[0],))
    return out


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """out[..., o] = sum_ij input1[..., i] weight[o, i, j] input2[..., j] + bias[o]."""
    O, I, J = weight.shape
    if input1.shape[:-1] != input2.shape[:-1]:
        raise RuntimeError(f"bilinear(): input batch dimensions do not match: got {list(input1.shape[:-1])} and "
                           f"{list(input2.shape[:-1])}")
    if input1.shape[-1] != I:
        raise RuntimeError(f"bilinear(): input1 size does not match weight size: got {input1.shape[-1]} but "
                           f"expected {I}")
    if input2.shape[-1] != J:
        raise RuntimeError(f"bilinear(): input2 size does not match weight size: got {input2.shape[-1]} but "
                           f"expected {J}")
    lead = input1.shape[:-1]
    x1, x2 = input1.reshape(-1, I), input2.reshape(-1, J)
    mixed = _ops.matmul(x1, weight.permute(1, 0, 2).reshape(I, O * J)).reshape(-1, O, J)
    out = (mixed * x2.unsqueeze(1)).sum(-1)
    if bias is not None:
        out = out + bias
    return out.reshape(tuple(lead) + (O,))


def _check_p(p: float) -> None:
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _dropout_mask(shape, p: float, dtype: dt.DType) -> Tensor:
    """Keep-mask scaled by 1/(1-p), drawn from lazytorch's RNG (as torch: bernoulli(1-p) / (1-p))."""
    keep = _creation.rand(*shape) < (1.0 - p)
    return _where(keep, 1.0 / (1.0 - p), 0.0).to(dtype) if p < 1 else _creation.zeros(*shape, dtype=dtype)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    _check_p(p)
    if not training or p == 0.0:
        return input
    return _inplace_result(input, input * _dropout_mask(input.shape, p, input.dtype), inplace, "dropout_")


def _feature_dropout(input: Tensor, p: float, training: bool, inplace: bool, batched_dim: int, name: str) -> Tensor:
    _check_p(p)
    if input.dim() not in (batched_dim - 1, batched_dim):
        warnings.warn(f"{name}: Received a {input.dim()}-D input to {name.lower()}, which is deprecated. Expected "
                      f"{batched_dim - 1}-D or {batched_dim}-D input.")
    if not training or p == 0.0:
        return input
    # one draw per (sample, channel): the mask broadcasts over the spatial axes
    lead = 2 if input.dim() == batched_dim else 1
    shape = tuple(input.shape[:lead]) + (1,) * (input.dim() - lead)
    return _inplace_result(input, input * _dropout_mask(shape, p, input.dtype), inplace, "dropout_")


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    return _feature_dropout(input, p, training, inplace, 3, "dropout1d")


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    return _feature_dropout(input, p, training, inplace, 4, "dropout2d")


def embedding(input: Tensor, weight: Tensor, padding_idx: Optional[int] = None, max_norm: Optional[float] = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """weight[input]; the padding_idx row gets no gradient (as PyTorch)."""
    if input.dtype not in (dt.int64, dt.int32):
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the following scalar types: "
                           f"Long, Int; but got torch.{_dtype_label(input.dtype)}Tensor instead (while checking "
                           "arguments for embedding)")
    n = weight.shape[0]
    if padding_idx is not None:
        if padding_idx > 0 and padding_idx >= n:
            raise AssertionError("Padding_idx must be within num_embeddings")
        if padding_idx < 0:
            if padding_idx < -n:
                raise AssertionError("Padding_idx must be within num_embeddings")
            padding_idx += n
    values = input._node.realized
    if values is not None and values.size and (values.min() < 0 or values.max() >= n):
        raise IndexError("index out of range in self")
    if scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: scale_grad_by_freq and sparse gradients are not supported")
    if max_norm is not None:
        _embedding_renorm_(weight, input, max_norm, norm_type)
    rows = _movement.index_select(weight, 0, input.reshape(-1)).reshape(tuple(input.shape) + (weight.shape[1],))
    if padding_idx is not None:
        rows = _where((input == padding_idx).unsqueeze(-1), rows.detach(), rows)
    return rows


def _embedding_renorm_(weight: Tensor, input: Tensor, max_norm: float, norm_type: float) -> None:
    """Rescale (in place, without gradient) the rows that `input` selects to norm <= max_norm."""
    with no_grad():
        ids = np.unique(np.asarray(input._value()).reshape(-1))
        selected = np.zeros(weight.shape[0], np.bool_)
        selected[ids] = True
        norms = _ops.norm(weight, norm_type, 1, keepdim=True)
        scale = _where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)
        weight._assign(_where(_const(selected.reshape(-1, 1)), weight * scale, weight), "embedding_renorm_")


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    if tensor.dtype is not dt.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if num_classes == -1 or tensor._node.realized is not None:
        values = tensor._value()
        if values.size and values.min() < 0:
            raise RuntimeError("Class values must be non-negative.")
        if num_classes == -1:
            num_classes = int(values.max()) + 1 if values.size else 0
        elif values.size and values.max() >= num_classes:
            raise RuntimeError("Class values must be smaller than num_classes.")
    classes = _creation.arange(num_classes)
    # values known now were checked above; computed ones (or a jitted call's) by the kernel
    tensor = _movement.checked_index(tensor, num_classes, False, RuntimeError,
                                     "Class values must be smaller than num_classes.",
                                     low_message="Class values must be non-negative.", now=False)
    return (tensor.unsqueeze(-1) == classes).long()


# =============================================================================================
# normalization

def _check_channel_stat(name: str, stat: Optional[Tensor], channels: int) -> None:
    if stat is not None and stat.numel() != channels:
        raise RuntimeError(f"{name} should contain {channels} elements not {stat.numel()}")


def batch_norm(input: Tensor, running_mean: Optional[Tensor], running_var: Optional[Tensor],
               weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize over every axis but the channels (axis 1). In training, the batch statistics are
    used and the running ones updated in place (lazily: they compute with the next realization)."""
    if input.dim() < 2:
        raise ValueError(f"expected 2D or more input (got {input.dim()}D input)")
    C = input.shape[1]
    _check_channel_stat("running_mean", running_mean, C)
    _check_channel_stat("running_var", running_var, C)
    _check_channel_stat("weight", weight, C)
    _check_channel_stat("bias", bias, C)
    axes = (0,) + tuple(range(2, input.dim()))
    stat_shape = (1, C) + (1,) * (input.dim() - 2)
    if training:
        count = input.numel() // C
        if count == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {input.size()}")
        mean = input.mean(axes, keepdim=True)
        centered = input - mean
        var = (centered * centered).mean(axes, keepdim=True)
        # one in-place update per buffer: it computes with the next realization (the step)
        with no_grad():
            if running_mean is not None:
                running_mean.copy_(mean.detach().reshape(C) * momentum + running_mean * (1.0 - momentum))
            if running_var is not None:
                unbiased = var.detach().reshape(C) * (count / (count - 1))
                running_var.copy_(unbiased * momentum + running_var * (1.0 - momentum))
    else:
        if running_mean is None or running_var is None:
            raise RuntimeError("running_mean and running_var must be defined in evaluation mode")
        mean = running_mean.reshape(stat_shape)
        centered = input - mean
        var = running_var.reshape(stat_shape)
    out = centered * _ops.rsqrt(var + eps)
    if weight is not None:
        out = out * weight.reshape(stat_shape)
    if bias is not None:
        out = out + bias.reshape(stat_shape)
    return out


def layer_norm(input: Tensor, normalized_shape: Sequence[int], weight: Optional[Tensor] = None,
               bias: Optional[Tensor] = None, eps: float = 1e-5) -> Tensor:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or tuple(input.shape[input.dim() - k:]) != shape or input.dim() < k:
        raise RuntimeError(f"Given normalized_shape={list(shape)}, expected input with shape [*, "
                           f"{', '.join(map(str, shape))}], but got input of size{list(input.shape)}")
    axes = tuple(range(input.dim() - k, input.dim()))
    mean = input.mean(axes, keepdim=True)
    centered = input - mean
    var = (centered * centered).mean(axes, keepdim=True)
    out = centered * _ops.rsqrt(var + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def rms_norm(input: Tensor, normalized_shape: Sequence[int], weight: Optional[Tensor] = None,
             eps: Optional[float] = None) -> Tensor:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if tuple(input.shape[input.dim() - k:]) != shape:
        raise RuntimeError(f"Given normalized_shape={list(shape)}, expected input with shape [*, "
                           f"{', '.join(map(str, shape))}], but got input of size{list(input.shape)}")
    if eps is None:
        eps = float(np.finfo(input.dtype.np_dtype).eps)
    axes = tuple(range(input.dim() - k, input.dim()))
    out = input * _ops.rsqrt((input * input).mean(axes, keepdim=True) + eps)
    return out * weight if weight is not None else out


def group_norm(input: Tensor, num_groups: int, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None,
               eps: float = 1e-5) -> Tensor:
    if input.dim() < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {input.dim()}")
    N, C = input.shape[0], input.shape[1]
    if C % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input of "
                           f"shape {list(input.shape)} and num_groups={num_groups}")
    grouped = input.reshape(N, num_groups, -1)
    mean = grouped.mean(2, keepdim=True)
    centered = grouped - mean
    var = (centered * centered).mean(2, keepdim=True)
    out = (centered * _ops.rsqrt(var + eps)).reshape(input.shape)
    affine_shape = (1, C) + (1,) * (input.dim() - 2)
    if weight is not None:
        out = out * weight.reshape(affine_shape)
    if bias is not None:
        out = out + bias.reshape(affine_shape)
    return out


def instance_norm(input: Tensor, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats: bool = True, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    if not use_input_stats or running_mean is not None:
        raise NotImplementedError("instance_norm with running statistics is not supported")
    return group_norm(input, input.shape[1], weight, bias, eps)


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out=None) -> Tensor:
    norm = _ops.norm(input, p, dim, keepdim=True)
    return input / _where(norm > eps, norm, eps).expand_as(input)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    x1, x2 = _movement.broadcast_tensors(x1, x2)
    n1 = _ops.norm(x1, 2, dim, keepdim=True)
    n2 = _ops.norm(x2, 2, dim, keepdim=True)
    return ((x1 / _where(n1 > eps, n1, eps)) * (x2 / _where(n2 > eps, n2, eps))).sum(dim)


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    return _ops.norm(x1 - x2 + eps, p, -1, keepdim=keepdim)


# =============================================================================================
# convolution, pooling, windows

def _conv_padding(padding, kernel, dilation, stride, nd: int):
    """(before, after) per spatial axis from an int, a tuple, 'valid' or 'same'."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * nd, (0,) * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            total = [d * (k - 1) for k, d in zip(kernel, dilation)]
            before = tuple(t // 2 for t in total)
            return before, tuple(t - b for t, b in zip(total, before))
        raise ValueError(f"Invalid padding string '{padding}', should be one of {{'valid', 'same'}}")
    p = _tuple(padding, nd, "padding")
    return p, p


def _batched(input: Tensor, nd: int, name: str):
    if input.dim() not in (nd + 1, nd + 2):
        raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to {name}, but got input "
                           f"of size: {list(input.shape)}")
    return (input, True) if input.dim() == nd + 2 else (input.unsqueeze(0), False)


def _convnd(input: Tensor, weight: Tensor, bias: Optional[Tensor], stride, padding, dilation, groups: int,
            nd: int, name: str) -> Tensor:
    if weight.dim() != nd + 2:
        raise RuntimeError(f"weight of a {name} must be {nd + 2}-dimensional, but got weight of size "
                           f"{list(weight.shape)}")
    x, batched = _batched(input, nd, name)
    N, C = x.shape[0], x.shape[1]
    O, Cg = weight.shape[0], weight.shape[1]
    kernel = tuple(weight.shape[2:])
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != O):
        raise RuntimeError(f"Given weight of size {list(weight.shape)}, expected bias to be 1-dimensional with {O} "
                           f"elements, but got bias of size {list(bias.shape)} instead")
    if C != Cg * groups:
        raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.shape)}, expected input"
                           f"{list(x.shape)} to have {Cg * groups} channels, but got {C} channels instead")
    if O % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
                           f"but got weight of size {list(weight.shape)} instead")
    stride, dilation = _tuple(stride, nd, "stride"), _tuple(dilation, nd, "dilation")
    before, after = _conv_padding(padding, kernel, dilation, stride, nd)
    spatial = tuple(x.shape[2:])
    out_size = _windows.output_size(spatial, kernel, stride, before, after, dilation)
    if any(o <= 0 for o in out_size):
        padded = " x ".join(str(n + b + a) for n, b, a in zip(spatial, before, after))
        span = " x ".join(str(d * (k - 1) + 1) for k, d in zip(kernel, dilation))
        raise RuntimeError(f"Calculated padded input size per channel: ({padded}). Kernel size: ({span}). "
                           "Kernel size can't be greater than actual input size")
    index, valid = _windows.window_positions(out_size, spatial, kernel, stride, before, dilation)
    L, K = index.shape
    cols = _windows.gather_windows(x, index, valid, 0.0, channels_last=True)          # (N, L*K, C)
    if groups == 1:
        w = weight.reshape(O, C, K).permute(0, 2, 1).reshape(O, K * C)
        out = _ops.matmul(cols.reshape(N * L, K * C), w.t()).reshape(N, L, O)
    else:
        Og = O // groups
        cols = cols.reshape(N, L * K, groups, Cg).permute(2, 0, 1, 3).reshape(groups, N * L, K * Cg)
        w = weight.reshape(groups, Og, Cg, K).permute(0, 3, 2, 1).reshape(groups, K * Cg, Og)
        out = _ops.matmul(cols, w).permute(1, 0, 2).reshape(N, L, O)
    out = out.permute(0, 2, 1).reshape((N, O) + out_size)
    if bias is not None:
        out = out + bias.reshape((1, O) + (1,) * nd)
    return out if batched else out.squeeze(0)


def conv1d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    return _convnd(input, weight, bias, stride, padding, dilation, groups, 1, "conv1d")


def conv2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """2-D convolution as im2col (one gather of the windows) and one matmul."""
    return _convnd(input, weight, bias, stride, padding, dilation, groups, 2, "conv2d")


def conv3d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    return _convnd(input, weight, bias, stride, padding, dilation, groups, 3, "conv3d")


def _conv_transposend(input: Tensor, weight: Tensor, bias: Optional[Tensor], stride, padding, output_padding,
                      groups: int, dilation, nd: int, name: str) -> Tensor:
    x, batched = _batched(input, nd, name)
    N, C = x.shape[0], x.shape[1]
    if C != weight.shape[0]:
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected input{list(x.shape)} "
                           f"to have {weight.shape[0]} channels, but got {C} channels instead")
    Cin_g, Og = C // groups, weight.shape[1]
    O = Og * groups
    kernel = tuple(weight.shape[2:])
    stride, dilation = _tuple(stride, nd, "stride"), _tuple(dilation, nd, "dilation")
    padding, output_padding = _tuple(padding, nd, "padding"), _tuple(output_padding, nd, "output_padding")
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:
            raise RuntimeError("output padding must be smaller than either stride or dilation, but got "
                               f"output_padding={list(output_padding)}, stride={list(stride)}, "
                               f"dilation={list(dilation)}")
    spatial = tuple(x.shape[2:])
    out_size = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1
                     for n, s, p, d, k, op in zip(spatial, stride, padding, dilation, kernel, output_padding))
    if any(o <= 0 for o in out_size):
        raise RuntimeError(f"Given input size per channel: ({' x '.join(map(str, spatial))}). Calculated output "
                           f"size per channel: ({' x '.join(map(str, out_size))}). Output size is too small")
    # input position i, tap k writes output position i*stride - padding + k*dilation: the windows
    # of a forward conv over the output grid, one per input position
    index, valid = _windows.window_positions(spatial, out_size, kernel, stride, padding, dilation)
    L, K = index.shape
    rows = x.reshape(N, C, L).permute(0, 2, 1)                                           # (N, L, C)
    if groups == 1:
        w = weight.reshape(C, O, K).permute(0, 2, 1).reshape(C, K * O)
        cols = _ops.matmul(rows.reshape(N * L, C), w).reshape(N, L * K, O)
    else:
        xg = rows.reshape(N * L, groups, Cin_g).permute(1, 0, 2)
        w = weight.reshape(groups, Cin_g, Og, K).permute(0, 1, 3, 2).reshape(groups, Cin_g, K * Og)
        cols = _ops.matmul(xg, w).reshape(groups, N, L, K, Og).permute(1, 2, 3, 0, 4).reshape(N, L * K, O)
    out = _windows.scatter_windows(cols, index, valid, out_size)
    if bias is not None:
        out = out + bias.reshape((1, O) + (1,) * nd)
    return out if batched else out.squeeze(0)


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    return _conv_transposend(input, weight, bias, stride, padding, output_padding, groups, dilation, 1,
                             "conv_transpose1d")


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """Transposed convolution: one matmul, then the col2im scatter-add of its columns."""
    return _conv_transposend(input, weight, bias, stride, padding, output_padding, groups, dilation, 2,
                             "conv_transpose2d")


def unfold(input: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """im2col: (N, C, H, W) -> (N, C*kh*kw, L)."""
    x, batched = _batched(input, 2, "unfold") if input.dim() in (3, 4) else (None, None)
    if x is None:
        raise NotImplementedError(f"Input Error: Only 3D or 4D input Tensors are supported (got {input.dim()}D)")
    kernel, dilation = _tuple(kernel_size, 2), _tuple(dilation, 2)
    padding, stride = _tuple(padding, 2), _tuple(stride, 2)
    spatial = tuple(x.shape[2:])
    out_size = _windows.output_size(spatial, kernel, stride, padding, padding, dilation)
    if any(o <= 0 for o in out_size):
        raise RuntimeError(f"Given input with spatial size ({', '.join(map(str, spatial))}), kernel_size="
                           f"({', '.join(map(str, kernel))}), dilation=({', '.join(map(str, dilation))}), padding="
                           f"({', '.join(map(str, padding))}), calculated shape of the array of sliding blocks as "
                           f"({', '.join(map(str, out_size))}), but its components must be at least one.")
    index, valid = _windows.window_positions(out_size, spatial, kernel, stride, padding, dilation)
    L, K = index.shape
    taps = _windows.gather_windows(x, index.T.copy(), None if valid is None else valid.T.copy(), 0.0,
                                   channels_last=False)                                  # (N, C, K*L)
    out = taps.reshape(x.shape[0], x.shape[1] * K, L)
    return out if batched else out.squeeze(0)


def fold(input: Tensor, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """col2im, the adjoint of unfold: (N, C*kh*kw, L) -> (N, C, H, W), overlaps summed."""
    batched = input.dim() == 3
    x = input if batched else input.unsqueeze(0)
    out_spatial, kernel = _tuple(output_size, 2), _tuple(kernel_size, 2)
    dilation, padding, stride = _tuple(dilation, 2), _tuple(padding, 2), _tuple(stride, 2)
    K = kernel[0] * kernel[1]
    N, CK, L = x.shape
    if CK % K:
        raise RuntimeError(f"Expected size of input's dimension 1 to be divisible by the product of kernel_size, "
                           f"but got input.size(1)={CK} and kernel_size=({kernel[0]}, {kernel[1]})")
    n_windows = _windows.output_size(out_spatial, kernel, stride, padding, padding, dilation)
    if n_windows[0] * n_windows[1] != L:
        raise RuntimeError(f"Given output_size=({out_spatial[0]}, {out_spatial[1]}), kernel_size=({kernel[0]}, "
                           f"{kernel[1]}), dilation=({dilation[0]}, {dilation[1]}), padding=({padding[0]}, "
                           f"{padding[1]}), stride=({stride[0]}, {stride[1]}), expected size of input's dimension 2 "
                           f"to match the calculated number of sliding blocks {n_windows[0]} * {n_windows[1]} = "
                           f"{n_windows[0] * n_windows[1]}, but got input.size(2)={L}.")
    index, valid = _windows.window_positions(n_windows, out_spatial, kernel, stride, padding, dilation)
    C = CK // K
    cols = x.reshape(N, C, K, L).permute(0, 3, 2, 1).reshape(N, L * K, C)
    out = _windows.scatter_windows(cols, index, valid, out_spatial)
    return out if batched else out.squeeze(0)


def _pool_args(input: Tensor, nd: int, kernel_size, stride, padding, dilation, name: str):
    if input.dim() not in (nd + 1, nd + 2):
        if name == "max_pool2d":
            raise RuntimeError("non-empty 3D or 4D (batch mode) tensor expected for input")
        raise RuntimeError(f"{name}: Expected {nd + 1}D or {nd + 2}D (batch mode) tensor with optional 0 dim batch "
                           f"size for input, but got:{list(input.shape)}")
    kernel = _tuple(kernel_size, nd)
    stride = kernel if stride is None or (isinstance(stride, (list, tuple)) and not stride) else _tuple(stride, nd)
    padding, dilation = _tuple(padding, nd), _tuple(dilation, nd)
    for p, k, d in zip(padding, kernel, dilation):
        if p > (d * (k - 1) + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={p}, "
                               f"kernel_size={k} and dilation={d}")
    x = input if input.dim() == nd + 2 else input.unsqueeze(0)
    return x, input.dim() == nd + 2, kernel, stride, padding, dilation


def _pool_windows(x: Tensor, kernel, stride, padding, dilation, ceil_mode: bool, fill: float):
    spatial = tuple(x.shape[2:])
    out_size = _windows.output_size(spatial, kernel, stride, padding, padding, dilation, ceil_mode)
    if any(o <= 0 for o in out_size):
        raise RuntimeError(f"Given input size: ({'x'.join(map(str, x.shape[1:]))}). Calculated output size: "
                           f"({'x'.join(map(str, (x.shape[1],) + out_size))}). Output size is too small")
    index, valid = _windows.window_positions(out_size, spatial, kernel, stride, padding, dilation)
    taps = _windows.gather_windows(x, index, valid, fill, channels_last=False)
    N, C = x.shape[0], x.shape[1]
    return taps.reshape(N, C, index.shape[0], index.shape[1]), out_size, index


def _max_poolnd(input, nd, kernel_size, stride, padding, dilation, ceil_mode, return_indices, name):
    x, batched, kernel, stride, padding, dilation = _pool_args(input, nd, kernel_size, stride, padding, dilation, name)
    taps, out_size, index = _pool_windows(x, kernel, stride, padding, dilation, ceil_mode, -math.inf)
    N, C = x.shape[0], x.shape[1]
    out = taps.amax(-1).reshape((N, C) + out_size)
    if not return_indices:
        return out if batched else out.squeeze(0)
    best = _ops.argmax(taps, -1, keepdim=True)                                           # (N, C, L, 1)
    table = _const(index.reshape((1, 1) + index.shape)).expand(taps.shape)
    where_in_input = Tensor._from_node(ir.gather(table._node, best._node, 3)).reshape((N, C) + out_size)
    if not batched:
        return out.squeeze(0), where_in_input.squeeze(0)
    return out, where_in_input


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_poolnd(input, 1, kernel_size, stride, padding, dilation, ceil_mode, return_indices, "max_pool1d")


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over each window: the window taps are gathered, then one amax over the tap axis."""
    return _max_poolnd(input, 2, kernel_size, stride, padding, dilation, ceil_mode, return_indices, "max_pool2d")


def _avg_poolnd(input, nd, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, name):
    x, batched, kernel, stride, padding, _ = _pool_args(input, nd, kernel_size, stride, padding, 1, name)
    taps, out_size, _ = _pool_windows(x, kernel, stride, padding, (1,) * nd, ceil_mode, 0.0)
    N, C = x.shape[0], x.shape[1]
    total = taps.sum(-1)
    if divisor_override:
        out = total / divisor_override
    else:
        divisor = _avg_divisor(tuple(x.shape[2:]), out_size, kernel, stride, padding, count_include_pad)
        out = total / _const(divisor.astype(x.dtype.np_dtype).reshape(1, 1, -1)) if divisor is not None \
            else total / math.prod(kernel)
    out = out.reshape((N, C) + out_size)
    return out if batched else out.squeeze(0)


def _avg_divisor(size, out_size, kernel, stride, padding, count_include_pad):
    """Per-window divisor (PyTorch's rule), or None when it is the kernel size everywhere."""
    divisor = np.ones(out_size, np.int64)
    for d, (n, o, k, s, p) in enumerate(zip(size, out_size, kernel, stride, padding)):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        length = end - start if count_include_pad else np.minimum(end, n) - np.maximum(start, 0)
        divisor = divisor * length.reshape([o if i == d else 1 for i in range(len(size))])
    divisor = divisor.reshape(-1)
    return None if (divisor == math.prod(kernel)).all() else divisor


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return _avg_poolnd(input, 1, kernel_size, stride, padding, ceil_mode, count_include_pad, None, "avg_pool1d")


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over each window: gathered taps, one sum, divided by PyTorch's per-window divisor."""
    return _avg_poolnd(input, 2, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                       "avg_pool2d")


def _adaptive_pool(input: Tensor, output_size, nd: int, mode: str):
    if input.dim() not in (nd + 1, nd + 2):
        raise RuntimeError(f"adaptive_{mode}_pool{nd}d(): Expected {nd + 1}D or {nd + 2}D tensor, but got "
                           f"{list(input.shape)}")
    x = input if input.dim() == nd + 2 else input.unsqueeze(0)
    spatial = tuple(x.shape[2:])
    out = tuple(n if o is None else o for n, o in zip(spatial, _tuple(output_size, nd)))
    N, C = x.shape[0], x.shape[1]
    if all(n % o == 0 for n, o in zip(spatial, out)):
        # equal windows: a plain reshape splits every axis into (window, tap)
        split = (N, C) + tuple(v for o, n in zip(out, spatial) for v in (o, n // o))
        taps_axes = tuple(3 + 2 * i for i in range(nd))
        view = x.reshape(split)
        result = view.mean(taps_axes) if mode == "avg" else view.amax(taps_axes)
    else:
        index, valid, count = _windows.adaptive_positions(spatial, out)
        taps = _windows.gather_windows(x, index, valid, 0.0 if mode == "avg" else -math.inf, channels_last=False)
        taps = taps.reshape(N, C, index.shape[0], index.shape[1])
        if mode == "avg":
            result = taps.sum(-1) / _const(count.astype(x.dtype.np_dtype).reshape(1, 1, -1))
        else:
            result = taps.amax(-1)
        result = result.reshape((N, C) + out)
    return result if input.dim() == nd + 2 else result.squeeze(0)


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    return _adaptive_pool(input, output_size, 1, "avg")


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    return _adaptive_pool(input, output_size, 2, "avg")


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False) -> Tensor:
    if return_indices:
        raise NotImplementedError("adaptive_max_pool2d(return_indices=True) is not supported")
    return _adaptive_pool(input, output_size, 2, "max")


# =============================================================================================
# padding and resampling

def _axis_indices(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source index of every output position along one axis for the non-constant pad modes."""
    pos = np.arange(-before, n + after)
    if mode == "replicate":
        return np.clip(pos, 0, n - 1)
    if mode == "circular":
        return pos % n
    period = 2 * (n - 1)      # reflect: ... 2 1 | 0 1 2 ... n-1 | n-2 ...
    pos = np.abs(pos) % period if period else np.zeros_like(pos)
    return np.where(pos >= n, period - pos, pos)


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: Optional[float] = None) -> Tensor:
    """torch.nn.functional.pad: pad = (last_before, last_after, second_last_before, ...)."""
    pad = [int(p) for p in pad]
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pad) // 2 > input.dim():
        raise RuntimeError(f"Padding length should be less than or equal to two times the input dimension but got "
                           f"padding length {len(pad)} and input of dimension {input.dim()}")
    widths = [(0, 0)] * input.dim()
    for i in range(len(pad) // 2):
        widths[input.dim() - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    if mode == "constant":
        return _constant_pad(input, widths, 0.0 if value is None else value)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if value not in (None, 0):
        raise AssertionError(f'Padding mode "{mode}"" doesn\'t take in value argument')
    out = input
    for axis, (before, after) in enumerate(widths):
        if before == after == 0:
            continue
        n = input.shape[axis]
        if mode == "reflect" and (before >= n or after >= n):
            raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding input dimension, "
                               f"but got: padding ({before}, {after}) at dimension {axis} of input {list(input.shape)}")
        if mode == "circular" and (before > n or after > n):
            raise RuntimeError("Padding value causes wrapping around more than once.")
        out = _movement.index_select(out, axis, _const(_axis_indices(n, before, after, mode)))
    return out


def _constant_pad(input: Tensor, widths, value) -> Tensor:
    # negative widths crop
    if any(b < 0 or a < 0 for b, a in widths):
        ranges = [(max(-b, 0), n - max(-a, 0), 1) for (b, a), n in zip(widths, input.shape)]
        input = input._result(ir.slice_(input._node, tuple(ranges)), [input], "constant_pad_nd")
        widths = [(max(b, 0), max(a, 0)) for b, a in widths]
    if all(w == (0, 0) for w in widths):
        return input
    out = input._result(ir.pad(input._node, tuple(widths)), [input], "constant_pad_nd")
    if value != 0:
        inside = np.zeros(out.shape, np.bool_)
        inside[tuple(slice(b, b + n) for (b, _), n in zip(widths, input.shape))] = True
        out = _where(_const(inside), out, value)
    return out


def _interp_source(out_n: int, in_n: int, align_corners: bool, scale: Optional[float], cubic: bool = False):
    """Fractional source coordinate of every output position (PyTorch's area_pixel_compute_source_index)."""
    dst = np.arange(out_n, dtype=np.float64)
    if align_corners:
        ratio = (in_n - 1) / (out_n - 1) if out_n > 1 else 0.0
        return dst * ratio
    ratio = 1.0 / scale if scale is not None and scale > 0 else in_n / out_n
    return np.maximum((dst + 0.5) * ratio - 0.5, 0.0)


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                recompute_scale_factor=None, antialias: bool = False) -> Tensor:
    """Resize the spatial axes: 'nearest', 'nearest-exact', 'linear', 'bilinear', 'trilinear'."""
    nd = input.dim() - 2
    linear_modes = {"linear": 1, "bilinear": 2, "trilinear": 3}
    if mode in ("nearest", "nearest-exact", "area") and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear | bicubic | trilinear")
    if mode in linear_modes and linear_modes[mode] != nd:
        raise NotImplementedError(f"Got {input.dim()}D input, but {mode} mode needs {linear_modes[mode] + 2}D input")
    if mode not in ("nearest", "nearest-exact") and mode not in linear_modes:
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.dim()}D) for "
                                  f"the modes: nearest | linear | bilinear | bicubic | trilinear | area | nearest-exact "
                                  f"(got {mode})")
    if antialias:
        raise NotImplementedError("interpolate(antialias=True) is not supported")
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    spatial = tuple(input.shape[2:])
    if size is not None:
        out_size = _tuple(size, nd)
        scales = (None,) * nd
    elif scale_factor is not None:
        factors = _tuple(scale_factor, nd)
        out_size = tuple(int(math.floor(n * f)) for n, f in zip(spatial, factors))
        scales = (None,) * nd if recompute_scale_factor else tuple(float(f) for f in factors)
    else:
        raise ValueError("either size or scale_factor should be defined")
    out = input
    for d, (n, m, scale) in enumerate(zip(spatial, out_size, scales)):
        axis = 2 + d
        if mode in ("nearest", "nearest-exact"):
            ratio = np.float32(1.0 / scale if scale else n / m)
            dst = np.arange(m, dtype=np.float32) + (np.float32(0.5) if mode == "nearest-exact" else 0)
            src = np.minimum(np.floor(dst * ratio).astype(np.int64), n - 1)
            out = _movement.index_select(out, axis, _const(src))
            continue
        src = _interp_source(m, n, bool(align_corners), scale)
        i0 = np.minimum(np.floor(src).astype(np.int64), n - 1)
        i1 = np.minimum(i0 + 1, n - 1)
        w1 = (src - i0).astype(input.dtype.np_dtype)
        shape = [1] * input.dim()
        shape[axis] = m
        lo, hi = _movement.index_select(out, axis, _const(i0)), _movement.index_select(out, axis, _const(i1))
        out = lo * _const((1 - w1).reshape(shape)) + hi * _const(w1.reshape(shape))
    return out


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    return interpolate(input, size, scale_factor, mode, align_corners)


# =============================================================================================
# losses

def _reduction(reduction: str, size_average=None, reduce=None, allowed=("none", "mean", "sum")) -> str:
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = ("mean" if size_average else "sum") if reduce else "none"
        warnings.warn("size_average and reduce args will be deprecated, please use reduction='"
                      f"{reduction}' instead.")
    if reduction not in allowed:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _pointwise_pair(input: Tensor, target: Tensor, stacklevel: int = 3):
    """PyTorch's regression losses broadcast input and target (with a warning when they differ)."""
    if not isinstance(target, Tensor):
        raise TypeError(f"expected Tensor as element 1 in argument 1, but got {type(target).__name__}")
    if target.size() != input.size():
        warnings.warn(f"Using a target size ({target.size()}) that is different to the input size ({input.size()}). "
                      "This will likely lead to incorrect results due to broadcasting. Please ensure they have the "
                      "same size.", stacklevel=stacklevel)
        input, target = _movement.broadcast_tensors(input, target)
    return input, target


def mse_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
             weight: Optional[Tensor] = None) -> Tensor:
    reduction = _reduction(reduction, size_average, reduce)
    input, target = _pointwise_pair(input, target)
    diff = input - target
    loss = diff * diff
    return _reduce(loss * weight if weight is not None else loss, reduction)


def l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
            weight: Optional[Tensor] = None) -> Tensor:
    reduction = _reduction(reduction, size_average, reduce)
    input, target = _pointwise_pair(input, target)
    loss = _ops.abs(input - target)
    return _reduce(loss * weight if weight is not None else loss, reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    reduction = _reduction(reduction, size_average, reduce)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    input, target = _pointwise_pair(input, target)
    z = _ops.abs(input - target)
    if beta == 0:
        return _reduce(z, reduction)
    return _reduce(_where(z < beta, z * z * (0.5 / beta), z - 0.5 * beta), reduction)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Optional[Tensor] = None) -> Tensor:
    reduction = _reduction(reduction)
    input, target = _pointwise_pair(input, target)
    z = _ops.abs(input - target)
    loss = _where(z < delta, z * z * 0.5, (z - 0.5 * delta) * delta)
    return _reduce(loss * weight if weight is not None else loss, reduction)


def _check_class_target(input: Tensor, target: Tensor) -> None:
    if target.dtype not in (dt.int64, dt.uint8):
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got {_dtype_label(target.dtype)}")
    if input.dim() < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {input.dim()})")
    if input.dim() == 1:
        if target.dim() > 0 and not (target.dim() == 1 and target.shape[0] == 1):
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        return
    if target.dim() >= 1 and input.shape[0] != target.shape[0]:
        raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target batch_size "
                         f"({target.shape[0]}).")
    if input.dim() == 2 and target.dim() != 1:
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    if input.dim() > 2 and tuple(target.shape) != tuple(input.shape[:1] + input.shape[2:]):
        raise RuntimeError(f"Expected target size {list(input.shape[:1] + input.shape[2:])}, got "
                           f"{list(target.shape)}")


def _check_class_range(target: Tensor, classes: int, ignore_index: int) -> None:
    values = target._node.realized
    if values is None or values.size == 0:
        return
    values = values[values != ignore_index]
    if values.size and (values.min() < 0 or values.max() >= classes):
        bad = values.max() if values.max() >= classes else values.min()
        raise IndexError(f"Target {bad} is out of bounds.")


def _checked_target(target: Tensor, keep: Tensor, classes: int) -> Tensor:
    """The class indices an NLL loss reads (0 where `keep` is false: ignored), each checked to be a
    class by the kernels that compute with it: a target computed lazily, or a later batch of a
    jitted step, raises torch's error when it is out of range (known targets: `_check_class_range`)."""
    return _movement.checked_index(_where(keep, target, 0), classes, False, IndexError,
                                   "Target {index} is out of bounds.", now=False)


def nll_loss(input: Tensor, target: Tensor, weight: Optional[Tensor] = None, size_average=None,
             ignore_index: int = -100, reduce=None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of class indices: -input[n, target[n]] * weight[target[n]]."""
    reduction = _reduction(reduction, size_average, reduce)
    _check_class_target(input, target)
    class_dim = 0 if input.dim() == 1 else 1
    classes = input.shape[class_dim]
    if weight is not None and weight.numel() != classes:
        raise RuntimeError(f"weight tensor should be defined either for all {classes} classes or no classes but got "
                           f"weight tensor of shape: {list(weight.shape)}")
    _check_class_range(target, classes, ignore_index)
    target = target.long().reshape(input.shape[:class_dim] + input.shape[class_dim + 1:])
    keep = target != ignore_index
    safe = _checked_target(target, keep, classes)
    picked = _movement.gather(input, class_dim, safe.unsqueeze(class_dim)).squeeze(class_dim)
    if weight is not None:
        w = _movement.index_select(weight, 0, safe.reshape(-1)).reshape(safe.shape)
        w = _where(keep, w, 0.0)
    else:
        w = _where(keep, 1.0, 0.0).to(input.dtype)
    loss = -(picked * w)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / w.sum()


def cross_entropy(input: Tensor, target: Tensor, weight: Optional[Tensor] = None, size_average=None,
                  ignore_index: int = -100, reduce=None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """log_softmax over the class axis (1, or 0 for unbatched input) + NLL; targets are class indices
    or, when shaped like the input, class probabilities."""
    reduction = _reduction(reduction, size_average, reduce)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    class_dim = 0 if input.dim() == 1 else 1
    classes = input.shape[class_dim]
    if tuple(input.shape) == tuple(target.shape):
        if not target.dtype.is_floating_point:
            raise RuntimeError(f"Expected floating point type for target with class probabilities, got "
                               f"{_dtype_label(target.dtype)}")
        if ignore_index >= 0:
            raise RuntimeError("ignore_index is not supported for floating point target")
        logp = log_softmax(input, class_dim)
        if label_smoothing > 0:
            target = target * (1 - label_smoothing) + label_smoothing / classes
        product = logp * target
        if weight is not None:
            product = product * weight.reshape((classes,) + (1,) * (input.dim() - class_dim - 1))
        if reduction == "none":
            return -product.sum(class_dim)
        if reduction == "sum":
            return -product.sum()
        return -product.sum() / (input.numel() / classes)
    _check_class_target(input, target)
    logp = log_softmax(input, class_dim)
    nll = nll_loss(logp, target, weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing == 0:
        return nll
    target = target.long().reshape(input.shape[:class_dim] + input.shape[class_dim + 1:])
    ignored = target == ignore_index
    w_shape = (classes,) + (1,) * (input.dim() - class_dim - 1)
    smooth = -(logp * weight.reshape(w_shape)).sum(class_dim) if weight is not None else -logp.sum(class_dim)
    smooth = _where(ignored, 0.0, smooth)
    if reduction == "mean":
        if weight is not None:
            # (the target nll_loss checked: a bad one raises the loss's error, not index_select's)
            safe = _checked_target(target, target != ignore_index, classes)
            w = _movement.index_select(weight, 0, safe.reshape(-1)).reshape(target.shape)
            smooth = smooth.sum() / _where(ignored, 0.0, w).sum()
        else:
            smooth = smooth.sum() / _ops.logical_not(ignored).sum()
    elif reduction == "sum":
        smooth = smooth.sum()
    return nll * (1 - label_smoothing) + smooth * (label_smoothing / classes)


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Optional[Tensor] = None, size_average=None,
                         reduce=None, reduction: str = "mean") -> Tensor:
    reduction = _reduction(reduction, size_average, reduce)
    if target.size() != input.size():
        raise ValueError(f"Using a target size ({target.size()}) that is different to the input size "
                         f"({input.size()}) is deprecated. Please ensure they have the same size.")
    values = input._node.realized
    if values is not None and values.size and (values.min() < 0 or values.max() > 1):
        raise RuntimeError("all elements of input should be between 0 and 1")
    # PyTorch clamps each log at -100 so that a saturated input gives a finite loss
    log_p = _ops.clamp_min(_ops.log(input), -100.0)
    log_q = _ops.clamp_min(_log1p(-input), -100.0)
    loss = (target - 1) * log_q - target * log_p
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                                     size_average=None, reduce=None, reduction: str = "mean",
                                     pos_weight: Optional[Tensor] = None) -> Tensor:
    reduction = _reduction(reduction, size_average, reduce)
    if target.size() != input.size():
        raise ValueError(f"Target size ({target.size()}) must be the same as input size ({input.size()})")
    log_sig = logsigmoid(input)
    if pos_weight is not None:
        log_weight = (pos_weight - 1) * target + 1
        loss = (1 - target) * input - log_weight * log_sig
    else:
        loss = (1 - target) * input - log_sig
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def kl_div(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    reduction = _reduction(reduction, size_average, reduce, ("none", "mean", "sum", "batchmean"))
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.")
    if log_target:
        loss = _exp(target) * (target - input)
    else:
        # xlogy(t, t) - t * input: 0 where t == 0 (the log sees 1 there, so no 0 * -inf)
        zero = target == 0
        loss = _where(zero, 0.0, target * _ops.log(_where(zero, 1.0, target))) - target * input
    if reduction == "batchmean":
        return loss.sum() / input.shape[0] if input.dim() else loss.sum()
    return _reduce(loss, reduction)


def poisson_nll_loss(input: Tensor, target: Tensor, log_input: bool = True, full: bool = False, size_average=None,
                     eps: float = 1e-8, reduce=None, reduction: str = "mean") -> Tensor:
    reduction = _reduction(reduction, size_average, reduce)
    loss = _exp(input) - target * input if log_input else input - target * _ops.log(input + eps)
    if full:
        stirling = target * _ops.log(target) - target + 0.5 * _ops.log(target * (2 * math.pi))
        loss = loss + _where(target > 1, stirling, 0.0)
    return _reduce(loss, reduction)


def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0, size_average=None,
                          reduce=None, reduction: str = "mean") -> Tensor:
    reduction = _reduction(reduction, size_average, reduce)
    cos = cosine_similarity(input1, input2, dim=-1, eps=1e-12)
    loss = _where(target == 1, 1 - cos, _ops.clamp_min(cos - margin, 0.0))
    return _reduce(loss, reduction)


def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0, size_average=None,
                        reduce=None, reduction: str = "mean") -> Tensor:
    reduction = _reduction(reduction, size_average, reduce)
    return _reduce(relu(-target * (input1 - input2) + margin), reduction)


# =============================================================================================
# attention

def _repeat_heads(x: Tensor, times: int) -> Tensor:
    """(..., H, L, E) -> (..., H*times, L, E), each head repeated `times` in a row."""
    shape = tuple(x.shape)
    lead, (H, L, E) = shape[:-3], shape[-3:]
    return x.unsqueeze(-3).expand(lead + (H, times, L, E)).reshape(lead + (H * times, L, E))


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Optional[Tensor] = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: Optional[float] = None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(q @ k^T * scale + mask) @ v. A bool mask says which positions take part (True);
    a float mask is added to the scores."""
    if is_causal and attn_mask is not None:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
    L, S, E = query.shape[-2], key.shape[-2], query.shape[-1]
    scale = 1.0 / math.sqrt(E) if scale is None else scale
    if enable_gqa and query.dim() >= 3 and key.shape[-3] != query.shape[-3]:
        key = _repeat_heads(key, query.shape[-3] // key.shape[-3])
        value = _repeat_heads(value, query.shape[-3] // value.shape[-3])
    scores = _ops.matmul(query, key.transpose(-2, -1)) * scale
    if is_causal:
        allowed = _const(np.tril(np.ones((L, S), np.bool_)))
        scores = _movement.masked_fill(scores, _ops.logical_not(allowed), -math.inf)
    if attn_mask is not None:
        if attn_mask.dtype is dt.bool_:
            scores = _movement.masked_fill(scores, _ops.logical_not(attn_mask), -math.inf)
        else:
            scores = scores + attn_mask
    if attn_mask is not None:
        # a row with every position masked attends to nothing (zeros, as PyTorch's safe softmax);
        # its scores are replaced before the softmax so that no NaN reaches the gradient
        empty = _ops.amax(scores, -1, keepdim=True).detach() == -math.inf
        weights = _where(empty, 0.0, _ops.softmax(_where(empty, 0.0, scores), -1))
    else:
        weights = _ops.softmax(scores, -1)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, training=True)
    return _ops.matmul(weights, value)


def _canonical_mask(mask: Optional[Tensor], name: str, dtype: dt.DType) -> Optional[Tensor]:
    """A bool mask (True = masked out) becomes an additive float mask (-inf there)."""
    if mask is None:
        return None
    if mask.dtype is dt.bool_:
        return _where(mask, -math.inf, 0.0).to(dtype)
    if not mask.dtype.is_floating_point:
        raise AssertionError(f"only bool and floating types of {name} are supported")
    return mask


def multi_head_attention_forward(query: Tensor, key: Tensor, value: Tensor, embed_dim_to_check: int, num_heads: int,
                                 in_proj_weight: Optional[Tensor], in_proj_bias: Optional[Tensor],
                                 bias_k: Optional[Tensor], bias_v: Optional[Tensor], add_zero_attn: bool,
                                 dropout_p: float, out_proj_weight: Tensor, out_proj_bias: Optional[Tensor],
                                 training: bool = True, key_padding_mask: Optional[Tensor] = None,
                                 need_weights: bool = True, attn_mask: Optional[Tensor] = None,
                                 use_separate_proj_weight: bool = False, q_proj_weight: Optional[Tensor] = None,
                                 k_proj_weight: Optional[Tensor] = None, v_proj_weight: Optional[Tensor] = None,
                                 static_k: Optional[Tensor] = None, static_v: Optional[Tensor] = None,
                                 average_attn_weights: bool = True, is_causal: bool = False):
    """PyTorch's multi-head attention on (L, N, E) inputs (or unbatched (L, E))."""
    if static_k is not None or static_v is not None:
        raise NotImplementedError("multi_head_attention_forward: static_k/static_v are not supported")
    batched = query.dim() == 3
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query.shape
    src_len = key.shape[0]
    if embed_dim != embed_dim_to_check:
        raise AssertionError(f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim}")
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AssertionError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if key_padding_mask is not None and attn_mask is not None and \
            (key_padding_mask.dtype is dt.bool_) != (attn_mask.dtype is dt.bool_):
        warnings.warn("Support for mismatched key_padding_mask and attn_mask is deprecated. Use same type for both "
                      "instead.")
    key_padding_mask = _canonical_mask(key_padding_mask, "key_padding_mask", query.dtype)
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
                           "method `generate_square_subsequent_mask` to create this mask.")
    attn_mask = _canonical_mask(attn_mask, "attn_mask", query.dtype)
    # input projections
    if not use_separate_proj_weight:
        w_q, w_k, w_v = _movement.chunk(in_proj_weight, 3)
    else:
        w_q, w_k, w_v = q_proj_weight, k_proj_weight, v_proj_weight
    b_q, b_k, b_v = _movement.chunk(in_proj_bias, 3) if in_proj_bias is not None else (None, None, None)
    q, k, v = linear(query, w_q, b_q), linear(key, w_k, b_k), linear(value, w_v, b_v)
    if attn_mask is not None:
        if attn_mask.dim() == 2:
            if tuple(attn_mask.shape) != (tgt_len, src_len):
                raise RuntimeError(f"The shape of the 2D attn_mask is {attn_mask.shape}, but should be "
                                   f"{(tgt_len, src_len)}.")
            attn_mask = attn_mask.unsqueeze(0)
        elif attn_mask.dim() == 3:
            if tuple(attn_mask.shape) != (bsz * num_heads, tgt_len, src_len):
                raise RuntimeError(f"The shape of the 3D attn_mask is {attn_mask.shape}, but should be "
                                   f"{(bsz * num_heads, tgt_len, src_len)}.")
        else:
            raise RuntimeError(f"attn_mask's dimension {attn_mask.dim()} is not supported")
    if bias_k is not None and bias_v is not None:
        k = _movement.cat([k, bias_k.repeat(1, bsz, 1)])
        v = _movement.cat([v, bias_v.repeat(1, bsz, 1)])
        if attn_mask is not None:
            attn_mask = pad(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = pad(key_padding_mask, (0, 1))
    # (L, N, E) -> (N*H, L, head_dim)
    q = q.reshape(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
    k = k.reshape(k.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
    v = v.reshape(v.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
    if add_zero_attn:
        zeros = _creation.zeros(bsz * num_heads, 1, head_dim, dtype=q.dtype)
        k, v = _movement.cat([k, zeros], 1), _movement.cat([v, zeros], 1)
        if attn_mask is not None:
            attn_mask = pad(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = pad(key_padding_mask, (0, 1))
    src_len = k.shape[1]
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (bsz, src_len):
            raise AssertionError(f"expecting key_padding_mask shape of {(bsz, src_len)}, but got "
                                 f"{key_padding_mask.shape}")
        kpm = key_padding_mask.reshape(bsz, 1, 1, src_len).expand(bsz, num_heads, 1, src_len)
        kpm = kpm.reshape(bsz * num_heads, 1, src_len)
        attn_mask = kpm if attn_mask is None else attn_mask + kpm
    if not training:
        dropout_p = 0.0
    if need_weights:
        scores = _ops.matmul(q * math.sqrt(1.0 / head_dim), k.transpose(-2, -1))
        if attn_mask is not None:
            scores = scores + attn_mask
        weights = _ops.softmax(scores, -1)
        if dropout_p > 0.0:
            weights = dropout(weights, dropout_p)
        out = _ops.matmul(weights, v)
        out = out.transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
        out = linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, embed_dim)
        weights = weights.reshape(bsz, num_heads, tgt_len, src_len)
        if average_attn_weights:
            weights = weights.mean(1)
        if not batched:
            return out.squeeze(1), weights.squeeze(0)
        return out, weights
    if attn_mask is not None:
        attn_mask = attn_mask.unsqueeze(0) if attn_mask.shape[0] == 1 else \
            attn_mask.reshape(bsz, num_heads, -1, src_len)
    q = q.reshape(bsz, num_heads, tgt_len, head_dim)
    k = k.reshape(bsz, num_heads, src_len, head_dim)
    v = v.reshape(bsz, num_heads, src_len, head_dim)
    out = scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, False)
    out = out.permute(2, 0, 1, 3).reshape(bsz * tgt_len, embed_dim)
    out = linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, embed_dim)
    return (out if batched else out.squeeze(1)), None
