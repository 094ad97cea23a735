"""torch.autograd.functional: `vjp`, `jvp`, `hvp`, `vhp`, `jacobian` and `hessian` of a function.

Built on `lazytorch.func`; as in torch, `inputs` is a tensor or a tuple of tensors, results have
the same structure, and they are detached unless `create_graph=True`. `jvp` uses the double-VJP
trick: J v is the gradient w.r.t. u of <J^T u, v>, which is linear in u.
"""
from __future__ import annotations

from lazytorch import func as _func
from lazytorch._tensor import Tensor
from lazytorch.autograd._engine import _as_tuple

__all__ = ["vjp", "jvp", "hvp", "vhp", "jacobian", "hessian"]


def _finish(result, create_graph: bool, single: bool):
    """Detach unless create_graph; unwrap the one-element tuple of a single-tensor argument."""
    def fix(t):
        return t if create_graph or not isinstance(t, Tensor) else t.detach()
    if isinstance(result, tuple):
        result = tuple(fix(r) if isinstance(r, Tensor) else _finish(r, create_graph, False) for r in result)
        return result[0] if single else result
    return fix(result)


def _ones_if_none(v, outputs):
    return tuple(Tensor._from_node(o._node) * 0 + 1 for o in _as_tuple(outputs)) if v is None else v


def vjp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), v^T J): the vector-Jacobian product, one gradient per input."""
    single = isinstance(inputs, Tensor)
    output, vjp_fn = _func.vjp(func, *_as_tuple(inputs))
    if v is None:
        if output.numel() != 1:
            raise RuntimeError("The vector v can only be None if the user-provided function returns a single "
                               "Tensor with a single element.")
        v = _ones_if_none(None, output)[0]
    return _finish(output, create_graph, False), _finish(vjp_fn(v), create_graph, single)


def jvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), J v): the Jacobian-vector product, via the gradient of a VJP."""
    single = isinstance(inputs, Tensor)
    primals = _as_tuple(inputs)
    if v is None:
        if sum(x.numel() for x in primals) != 1:
            raise RuntimeError("The vector v can only be None if the input to the user-provided function is a "
                               "single Tensor with a single element.")
    tangents = _as_tuple(_ones_if_none(v, primals))
    output, vjp_fn = _func.vjp(func, *primals)
    outputs = _as_tuple(output)

    def pairing(*us):
        grads = vjp_fn(us[0] if isinstance(output, Tensor) else us)
        return sum((g * t).sum() for g, t in zip(grads, tangents))

    zeros = tuple(o * 0 for o in outputs)
    jv = _func.grad(pairing, argnums=tuple(range(len(zeros))))(*zeros)
    return _finish(output, create_graph, False), _finish(tuple(jv), create_graph, isinstance(output, Tensor))


def jacobian(func, inputs, create_graph: bool = False, strict: bool = False, vectorize: bool = False,
             strategy: str = "reverse-mode"):
    """The Jacobian: output.shape + input.shape per (output, input); nested tuples like torch's."""
    single_in = isinstance(inputs, Tensor)
    primals = _as_tuple(inputs)
    result = _func.jacrev(func, argnums=tuple(range(len(primals))))(*primals)
    if isinstance(result, tuple) and result and isinstance(result[0], tuple):   # several outputs
        return tuple(_finish(r, create_graph, single_in) for r in result)
    return _finish(result, create_graph, single_in)


def hessian(func, inputs, create_graph: bool = False, strict: bool = False, vectorize: bool = False,
            outer_jacobian_strategy: str = "reverse-mode"):
    """The Hessian of a scalar function: input_i.shape + input_j.shape per pair (i, j)."""
    single = isinstance(inputs, Tensor)
    primals = _as_tuple(inputs)
    argnums = tuple(range(len(primals)))
    result = _func.jacrev(_func.jacrev(func, argnums), argnums)(*primals)
    result = tuple(_finish(row, create_graph, False) for row in result)
    return result[0][0] if single else result


def vhp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), v^T H): the gradient of <grad func, v>."""
    single = isinstance(inputs, Tensor)
    primals = _as_tuple(inputs)
    vs = _as_tuple(v)
    argnums = tuple(range(len(primals)))

    def directional(*xs):
        grads = _func.grad(func, argnums)(*xs)
        return sum((g * t).sum() for g, t in zip(grads, vs))

    product = _func.grad(directional, argnums)(*primals)
    return _finish(func(*primals), create_graph, False), _finish(tuple(product), create_graph, single)


def hvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), H v): equal to vhp, the Hessian being symmetric."""
    return vhp(func, inputs, v, create_graph, strict)
