"""Reverse-mode autodiff for tensors: `backward` and `grad` over the IR.

Nothing here records a tape. `backward()` finds the tensors to differentiate (leaves that require
grad, and tensors that `retain_grad()`), asks `compiler.autodiff` for gradient *IR*, and stores it
lazily in `.grad`. The gradient graph is therefore compiled together with whatever realizes it
next - typically the optimizer step - as one fused program.

Because the graph is IR that is never freed, calling `backward()` twice through the same graph is
allowed and gives the same gradients again (PyTorch would ask for `retain_graph=True`);
`retain_graph` is accepted and has no effect.
"""
from __future__ import annotations

from typing import Optional, Sequence

from compiler import autodiff
from compiler.ir import node as ir
from compiler.ir.ops import Op
from lazytorch._tensor import Tensor, _grad_targets, _pending_leaves
from lazytorch._grad_mode import (enable_grad, inference_mode, is_grad_enabled, no_grad,
                                          set_grad_enabled)

__all__ = ["backward", "grad", "no_grad", "enable_grad", "set_grad_enabled", "inference_mode",
           "is_grad_enabled", "Function"]


def _as_list(x) -> list:
    if x is None:
        return []
    return [x] if isinstance(x, Tensor) else list(x)


def _cotangents(outputs: list[Tensor], grad_outputs) -> list[ir.Node]:
    grads = _as_list(grad_outputs) if grad_outputs is not None else [None] * len(outputs)
    if len(grads) != len(outputs):
        raise RuntimeError(f"grad can be implicitly created only for scalar outputs")
    nodes = []
    for i, (out, g) in enumerate(zip(outputs, grads)):
        if not out.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
        if g is None:
            if out.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            nodes.append(ir.const(1, out.dtype, out._node.shape, out._node.device))
        else:
            if tuple(g.shape) != tuple(out.shape):
                raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of {g.shape} and output[{i}] "
                                   f"has a shape of {out.shape}.")
            nodes.append(ir.cast(g._node, out.dtype))
    return nodes


def _wrap_grad(node: ir.Node, create_graph: bool) -> Tensor:
    if create_graph:
        return Tensor._from_node(node, True, "GradBackward0")
    return Tensor._from_node(ir.unary(Op.DETACH, node) if node.op is not Op.DETACH else node)


def _reachable_targets(outputs: list[Tensor]) -> list[Tensor]:
    found = []
    for node in ir.toposort([o._node for o in outputs], stop_at_realized=False):
        t = _grad_targets.get(id(node))
        if t is not None and t.requires_grad:
            found.append(t)
    return found


def backward(tensors, grad_tensors=None, retain_graph: Optional[bool] = None, create_graph: bool = False,
             inputs=None) -> None:
    """Accumulate d(tensors)/d(leaf) into each leaf's `.grad` (lazily: nothing runs yet)."""
    outputs = _as_list(tensors)
    cotangents = _cotangents(outputs, grad_tensors)
    targets = _as_list(inputs) if inputs is not None else _reachable_targets(outputs)
    if not targets:
        return
    grads = autodiff.grad([o._node for o in outputs], cotangents, [t._node for t in targets])
    with set_grad_enabled(create_graph):
        for t, g in zip(targets, grads):
            if g is None:
                continue
            new = _wrap_grad(g, create_graph)
            if t.grad is None:
                t.grad = new
            else:
                t.grad = Tensor._from_node(ir.binary(Op.ADD, t.grad._node, new._node), create_graph,
                                           "AddBackward0" if create_graph else None)
            if not create_graph:
                _pending_leaves.add(t.grad)
    # the forward value is usually wanted too (loss.item()): compute it in the same program
    for o in outputs:
        if o._node.realized is None:
            _pending_leaves.add(o)


def grad(outputs, inputs, grad_outputs=None, retain_graph: Optional[bool] = None, create_graph: bool = False,
         only_inputs: bool = True, allow_unused: Optional[bool] = None, is_grads_batched: bool = False,
         materialize_grads: bool = False):
    """torch.autograd.grad: the gradients of `outputs` w.r.t. `inputs`, returned (not accumulated)."""
    outputs = _as_list(outputs)
    inputs_list = _as_list(inputs)
    for t in inputs_list:
        if not t.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    cotangents = _cotangents(outputs, grad_outputs)
    grads = autodiff.grad([o._node for o in outputs], cotangents, [t._node for t in inputs_list])
    result = []
    for t, g in zip(inputs_list, grads):
        if g is None:
            if materialize_grads:
                result.append(Tensor._from_node(ir.const(0, t.dtype, t._node.shape, t._node.device)))
                continue
            if not allow_unused:
                raise RuntimeError("One of the differentiated Tensors appears to not have been used in the graph. "
                                   "Set allow_unused=True if this is the desired behavior.")
            result.append(None)
        else:
            result.append(_wrap_grad(g, create_graph))
    return tuple(result)


class Function:
    """Placeholder for custom autograd Functions: lazytorch differentiates IR, not Python code."""

    def __init_subclass__(cls, **kwargs):
        raise NotImplementedError("custom autograd.Function is not supported: lazytorch derives gradients from "
                                  "its IR; write the function with tensor operations instead")
