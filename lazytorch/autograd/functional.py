"""torch.autograd.functional: `vjp`, `jvp`, `vhp`, `hvp`, `jacobian` and `hessian` of a function.

Built on the transforms of `lazytorch.func`. As in torch, `inputs` is a tensor or a tuple of
tensors and the results follow that structure; they are detached unless `create_graph=True`.
`jvp` uses the double-VJP trick (reverse mode only): J v is the gradient w.r.t. u of <J^T u, v>,
which is linear in u, taken at u = 0. `strict`, `vectorize` and the strategies are accepted and
ignored.
"""
from __future__ import annotations

import numpy as np

from compiler.ir import node as ir
from lazytorch import func as _func
from lazytorch._tensor import Tensor
from lazytorch.autograd._engine import _as_tuple

__all__ = ["vjp", "jvp", "vhp", "hvp", "jacobian", "hessian"]


def _finish(tree, create_graph: bool):
    """Detach every tensor of a (nested tuple) result unless the graph is wanted."""
    if isinstance(tree, tuple):
        return tuple(_finish(t, create_graph) for t in tree)
    return tree if create_graph or not isinstance(tree, Tensor) else tree.detach()


def _ones_for(output, what: str) -> Tensor:
    if not (isinstance(output, Tensor) and output.numel() == 1):
        raise RuntimeError(f"The vector v can only be None if the {what} is a single Tensor with a single "
                           "element.")
    return Tensor._from_node(ir.buffer(np.ones(output.shape, output.dtype.np_dtype)))


def _per_input(result: tuple, inputs):
    """One entry per input, unwrapped when `inputs` was a single tensor."""
    return result[0] if isinstance(inputs, Tensor) else result


def vjp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), v^T J): the vector-Jacobian product, one gradient per input."""
    output, vjp_fn = _func.vjp(func, *_as_tuple(inputs))
    if v is None:
        v = _ones_for(output, "user-provided function returns")
    return _finish(output, create_graph), _finish(_per_input(vjp_fn(v), inputs), create_graph)


def jvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), J v): the Jacobian-vector product, one result per output."""
    primals = _as_tuple(inputs)
    tangents = (_ones_for(inputs, "input to the user-provided function"),) if v is None else _as_tuple(v)
    output, vjp_fn = _func.vjp(func, *primals)
    outputs = _as_tuple(output)

    def pairing(*cotangents):
        grads = vjp_fn(cotangents[0] if isinstance(output, Tensor) else cotangents)
        return sum((g * t).sum() for g, t in zip(grads, tangents))

    zeros = [Tensor._from_node(ir.buffer(np.zeros(o.shape, o.dtype.np_dtype))) for o in outputs]
    products = _func.grad(pairing, argnums=tuple(range(len(zeros))))(*zeros)
    return _finish(output, create_graph), _finish(_per_input(products, output), create_graph)


def jacobian(func, inputs, create_graph: bool = False, strict: bool = False, vectorize: bool = False,
             strategy: str = "reverse-mode"):
    """The Jacobian, output.shape + input.shape per (output, input): a tensor, a tuple over inputs
    or outputs, or a tuple over outputs of tuples over inputs, as torch's."""
    primals = _as_tuple(inputs)
    result = _func.jacrev(func, argnums=tuple(range(len(primals))))(*primals)
    if isinstance(result, tuple) and result and isinstance(result[0], tuple):       # several outputs
        return tuple(_finish(_per_input(r, inputs), create_graph) for r in result)
    return _finish(_per_input(result, inputs), create_graph)


def hessian(func, inputs, create_graph: bool = False, strict: bool = False, vectorize: bool = False,
            outer_jacobian_strategy: str = "reverse-mode"):
    """The Hessian of a scalar function: input_i.shape + input_j.shape per pair (i, j)."""
    primals = _as_tuple(inputs)
    argnums = tuple(range(len(primals)))
    result = _finish(_func.jacrev(_func.jacrev(func, argnums), argnums)(*primals), create_graph)
    return result[0][0] if isinstance(inputs, Tensor) else result


def vhp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), v^T H): the gradient of <grad func, v>."""
    primals = _as_tuple(inputs)
    tangents = (_ones_for(inputs, "input to the user-provided function"),) if v is None else _as_tuple(v)
    argnums = tuple(range(len(primals)))

    def directional(*xs):
        return sum((g * t).sum() for g, t in zip(_func.grad(func, argnums)(*xs), tangents))

    product = _func.grad(directional, argnums)(*primals)
    return _finish(func(*primals), create_graph), _finish(_per_input(product, inputs), create_graph)


def hvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), H v): equal to vhp, a Hessian being symmetric."""
    return vhp(func, inputs, v, create_graph, strict)
