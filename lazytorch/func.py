"""`lazytorch.func`: composable function transforms - torch.func's `grad`, `grad_and_value`, `vjp`,
`jacrev` and `hessian`.

A transform calls the function on *stand-ins* for the differentiated arguments: each is the
argument times a one held in a buffer of its own, so the function's uses of it are told apart from
every other use of the same tensor (a closure over it, or the same tensor passed twice). While the function runs,
the stand-ins count as requiring grad (`autograd._engine._transform_inputs`) and gradients are built
with `create_graph=True`: they are IR that an enclosing transform - or `backward()`, when the
arguments require grad - differentiates again, so `grad(grad(f))` is the second derivative.
Results leave a transform requiring grad only when they depend on something outside it that does.
Arguments may be tensors or (nested) tuples, lists and dicts of tensors.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Callable

import numpy as np

from compiler.ir import node as ir
from compiler.ir.ops import Op
from lazytorch._grad_mode import enable_grad
from lazytorch._tensor import Tensor, _backward_name
from lazytorch.autograd import _engine

__all__ = ["grad", "grad_and_value", "vjp", "jacrev", "hessian"]


# ---------------------------------------------------------------------------------------------
# pytrees of tensors

def _tree_map(fn: Callable, tree):
    if isinstance(tree, dict):
        return {k: _tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        items = [_tree_map(fn, t) for t in tree]
        return type(tree)(*items) if hasattr(tree, "_fields") else type(tree)(items)
    return fn(tree)


def _tree_leaves(tree) -> list:
    leaves = []
    _tree_map(leaves.append, tree)
    return leaves


def _tree_unflatten(values: list, like):
    it = iter(values)
    return _tree_map(lambda _: next(it), like)


# ---------------------------------------------------------------------------------------------
# stand-ins and the scope in which they require grad

def _stand_in(x) -> Tensor:
    if not isinstance(x, Tensor):
        raise RuntimeError(f"expected the differentiated arguments to be Tensors, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise RuntimeError("only Tensors of floating point dtype can require gradients")
    # times a one held in a buffer of its own: buffers are never shared, so neither is the product
    node = x._node
    one = ir.reshape(ir.buffer(np.ones((), x.dtype.np_dtype), node.device), (1,) * len(node.shape))
    return Tensor._from_node(ir.binary(Op.MUL, node, ir.expand(one, node.shape)), True, "MulBackward0")


@contextlib.contextmanager
def _differentiating(stand_ins: list[Tensor]):
    for t in stand_ins:
        _engine._transform_inputs[id(t._node)] = t._node
    try:
        with enable_grad():          # torch.func ignores an enclosing no_grad
            yield
    finally:
        for t in stand_ins:
            _engine._transform_inputs.pop(id(t._node), None)


def _release(t):
    """A result as seen outside the transform: requiring grad only through outer dependencies."""
    if not isinstance(t, Tensor):
        return t
    node = t._node
    if _engine.depends_on_grad([node]):
        return Tensor._from_node(node, True, _backward_name(node.op.name.lower()))
    return Tensor._from_node(node)


def _zeros_like(x: Tensor) -> Tensor:
    # a buffer, not a constant: jacrev stacks rows, and the fusion pass cannot yet pad a constant
    return Tensor._from_node(ir.buffer(np.zeros(x.shape, x.dtype.np_dtype), x._node.device))


def _positions(argnums, nargs: int, name: str) -> tuple[int, ...]:
    positions = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not positions:
        raise RuntimeError(f"{name}: argnums must be non-empty")
    for p in positions:
        if not isinstance(p, int) or not -nargs <= p < nargs:
            raise RuntimeError(f"Got argnums={argnums}, but only {nargs} positional inputs")
    return tuple(p % nargs for p in positions)


def _stand_in_args(args: tuple, argnums, name: str) -> tuple[list, list, list[Tensor]]:
    """(args with stand-ins at `argnums`, those argument trees, their stand-in leaves)."""
    positions = _positions(argnums, len(args), name)
    args = list(args)
    for p in positions:
        args[p] = _tree_map(_stand_in, args[p])
    trees = [args[p] for p in positions]
    return args, trees, _tree_leaves(trees)


def _split_aux(result, has_aux: bool, name: str):
    if not has_aux:
        return result, None
    if not (isinstance(result, tuple) and len(result) == 2):
        raise RuntimeError(f"{name}(f)(*args): output of function f should be a tuple: (output, aux) "
                           "if has_aux is True")
    return result


def _vjp_leaves(outputs: list[Tensor], cotangents: list, wrt: list[Tensor]) -> list[Tensor]:
    """sum_k <outputs[k], cotangents[k]> differentiated w.r.t. each of `wrt` (zeros where unused)."""
    pairs = [(o, c) for o, c in zip(outputs, cotangents) if o.requires_grad]
    grads = [None] * len(wrt)
    if pairs:
        grads = _engine.grad([o for o, _ in pairs], wrt, [c for _, c in pairs], create_graph=True,
                             allow_unused=True)
    return [_zeros_like(x) if g is None else g for x, g in zip(wrt, grads)]


# ---------------------------------------------------------------------------------------------
# the transforms

def grad_and_value(func: Callable, argnums=0, has_aux: bool = False) -> Callable:
    """torch.func.grad_and_value: a function returning (gradient, value) - (gradient, (value, aux))
    with `has_aux` - of the scalar-valued `func` w.r.t. the arguments at `argnums`."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        args, trees, stand_ins = _stand_in_args(args, argnums, "grad_and_value")
        with _differentiating(stand_ins):
            output, aux = _split_aux(func(*args, **kwargs), has_aux, "grad_and_value")
            if not isinstance(output, Tensor):
                raise RuntimeError(f"grad_and_value(f)(*args): Expected f(*args) to return a Tensor, got "
                                   f"{type(output)}")
            if output.dim() != 0:
                raise RuntimeError(f"grad_and_value(f)(*args): Expected f(*args) to return a scalar Tensor, got "
                                   f"tensor with {output.dim()} dims. Maybe you wanted to use the vjp or jacrev "
                                   "APIs instead?")
            grads = _vjp_leaves([output], [None], stand_ins)
        grads = _tree_unflatten([_release(g) for g in grads], trees)
        value = _release(output)
        gradient = grads[0] if isinstance(argnums, int) else tuple(grads)
        return (gradient, (value, _tree_map(_release, aux))) if has_aux else (gradient, value)

    return wrapper


def grad(func: Callable, argnums=0, has_aux: bool = False) -> Callable:
    """torch.func.grad: the gradient of the scalar-valued `func` w.r.t. the arguments at `argnums`
    (a tensor, or a tuple for a tuple of argnums); (gradient, aux) with `has_aux`."""
    both = grad_and_value(func, argnums, has_aux)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        gradient, value = both(*args, **kwargs)
        return (gradient, value[1]) if has_aux else gradient

    return wrapper


def vjp(func: Callable, *primals, has_aux: bool = False):
    """torch.func.vjp: (func(*primals), vjp_fn[, aux]); `vjp_fn(cotangents)` returns one gradient per
    primal for cotangents shaped like the output (a tensor or a pytree of them)."""
    stand = [_tree_map(_stand_in, p) for p in primals]
    stand_ins = _tree_leaves(stand)
    with _differentiating(stand_ins):
        output, aux = _split_aux(func(*stand), has_aux, "vjp")
    outputs = _tree_leaves(output)

    def vjp_fn(cotangents):
        given = _tree_leaves(cotangents)
        if len(given) != len(outputs):
            raise RuntimeError(f"Expected pytree structure of cotangents to be the same as pytree structure of "
                               f"outputs to the function: {len(given)} cotangents for {len(outputs)} outputs")
        grads = [_release(g) for g in _vjp_leaves(outputs, given, stand_ins)]
        return tuple(_tree_unflatten(grads, stand))

    result = (_tree_map(_release, output), vjp_fn)
    return result + (_tree_map(_release, aux),) if has_aux else result


def jacrev(func: Callable, argnums=0, *, has_aux: bool = False) -> Callable:
    """torch.func.jacrev: the Jacobian of `func` w.r.t. the arguments at `argnums`, one VJP per
    output element; output k w.r.t. argument j has shape output_k.shape + argument_j.shape."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from lazytorch._movement import stack
        args, trees, stand_ins = _stand_in_args(args, argnums, "jacrev")
        with _differentiating(stand_ins):
            output, aux = _split_aux(func(*args, **kwargs), has_aux, "jacrev")
            per_output = []
            for o in _tree_leaves(output):
                rows = []
                for e in range(o.numel()):
                    unit = np.zeros(o.shape, o.dtype.np_dtype)
                    unit.reshape(-1)[e] = 1
                    unit = Tensor._from_node(ir.buffer(unit, o._node.device))
                    rows.append(_vjp_leaves([o], [unit], stand_ins))
                per_output.append([stack([row[j] for row in rows]).reshape(tuple(o.shape) + tuple(x.shape))
                                   if rows else _zeros_like(x).reshape(tuple(o.shape) + tuple(x.shape))
                                   for j, x in enumerate(stand_ins)])
        jacobians = [_tree_unflatten([_release(j) for j in js], trees) for js in per_output]
        jacobians = [js[0] if isinstance(argnums, int) else tuple(js) for js in jacobians]
        result = _tree_unflatten(jacobians, _tree_map(lambda _: None, output))
        return (result, _tree_map(_release, aux)) if has_aux else result

    return wrapper


def hessian(func: Callable, argnums=0) -> Callable:
    """torch.func.hessian: the Jacobian of the gradient (reverse over reverse)."""
    return jacrev(jacrev(func, argnums), argnums)
