"""`backward()` and `grad()`: gradient IR from `compiler.autodiff`, wrapped as tensors.

Which tensor a gradient belongs to is decided by IR node: a leaf that requires grad owns the node it
holds now and the nodes it held before in-place updates (`_former_leaf_nodes`: a graph built before
`w -= lr * w.grad` still leads to `w`); a non-leaf that called `retain_grad()` owns its node. The
function transforms of `lazytorch.func` add their inputs for the time they run
(`_transform_inputs`), so that a gradient computed inside one is differentiable by the next one out.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from compiler import autodiff
from compiler.ir import node as ir
from compiler.ir.ops import Op
from lazytorch._tensor import Tensor, _backward_epoch, _backward_name, _former_leaf_nodes, _grad_targets, _pending_leaves

# id -> node of the inputs of the `lazytorch.func` transforms being evaluated (innermost last).
_transform_inputs: dict[int, ir.Node] = {}


def _as_tuple(x) -> tuple:
    if x is None:
        return ()
    return (x,) if isinstance(x, Tensor) else tuple(x)


# ---------------------------------------------------------------------------------------------
# who owns a node's gradient, and what requires grad

def _owner(node: ir.Node) -> Optional[Tensor]:
    """The tensor whose `.grad` collects the gradient reaching `node`, if any."""
    t = _grad_targets.get(id(node))
    if t is not None and t.requires_grad:
        return t
    ref = _former_leaf_nodes.get(node)
    t = ref() if ref is not None else None
    return t if t is not None and t.requires_grad and t.is_leaf else None


def _nodes_of(t: Tensor) -> list[ir.Node]:
    """The nodes a gradient w.r.t. `t` is taken at: its node, and for a leaf its former nodes."""
    nodes = [t._node]
    if t.is_leaf:
        nodes += [n for n, ref in list(_former_leaf_nodes.items()) if ref() is t and n is not t._node]
    return nodes


def _walk(roots: Sequence[ir.Node]):
    """Floating nodes reachable from `roots` through differentiable edges (not into DETACH)."""
    seen: set[ir.Node] = set()          # (nodes hash by identity)
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node in seen or not node.dtype.is_floating_point:
            continue
        seen.add(node)
        yield node
        if node.op is not Op.DETACH:
            stack.extend(node.inputs)


def depends_on_grad(nodes: Sequence[ir.Node]) -> bool:
    """Whether a value computed by `nodes` requires grad: some leaf that requires grad, retained
    tensor or transform input is reachable through differentiable edges."""
    return any(id(n) in _transform_inputs or _owner(n) is not None for n in _walk(nodes))


def wrap_gradient(node: ir.Node, create_graph: bool, detach: bool = True) -> Tensor:
    """A gradient node as a tensor: part of the graph with `create_graph` (requiring grad when it
    depends on something that does, as torch), otherwise a value that requires no grad.

    `detach` wraps such a value in DETACH, whose realization frees the graph behind it. `.grad`
    does without (a DETACH of a matmul result would be one more kernel, a copy): it is a pending
    leaf, which becomes a fresh buffer once realized, and that cuts the graph as well."""
    if create_graph and depends_on_grad([node]):
        return Tensor._from_node(node, True, _backward_name(node.op.name.lower()))
    return Tensor._from_node(ir.unary(Op.DETACH, node) if detach and node.op is not Op.DETACH else node)


# ---------------------------------------------------------------------------------------------
# cotangents and the transform

def _cotangents(outputs: tuple, grad_outputs) -> list[ir.Node]:
    grads = (None,) * len(outputs) if grad_outputs is None else _as_tuple(grad_outputs)
    if len(grads) != len(outputs):
        raise RuntimeError(f"grad_outputs has {len(grads)} tensors, but there are {len(outputs)} outputs")
    nodes = []
    for i, (out, g) in enumerate(zip(outputs, grads)):
        if not isinstance(out, Tensor):
            raise TypeError(f"outputs must be Tensors, but element {i} is {type(out).__name__}")
        if not out.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
        if g is None:
            if out.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            # a buffer, not a constant: the fusion pass cannot yet read a constant through padding
            # (the gradient of a slice or a cat is a pad of the cotangent)
            nodes.append(ir.buffer(np.ones(out._node.shape, out.dtype.np_dtype), out._node.device))
            continue
        if not isinstance(g, Tensor):
            raise TypeError(f"grad_outputs must be Tensors or None, but element {i} is {type(g).__name__}")
        if tuple(g.shape) != tuple(out.shape):
            raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of {g.shape} and output[{i}] "
                               f"has a shape of {out.shape}.")
        nodes.append(ir.cast(g._node, out.dtype))
    return nodes


def _gradients(outputs: tuple, cotangents: list[ir.Node], targets: list[tuple[Tensor, ir.Node]]):
    """{id(tensor): summed gradient node} over every (tensor, node) pair of `targets`."""
    grads = autodiff.grad([o._node for o in outputs], cotangents, [n for _, n in targets])
    total: dict[int, ir.Node] = {}
    for (t, _), g in zip(targets, grads):
        if g is not None:
            previous = total.get(id(t))
            total[id(t)] = g if previous is None else ir.binary(Op.ADD, previous, g)
    return total


def _reachable_targets(outputs: tuple) -> list[tuple[Tensor, ir.Node]]:
    owners = _owners_by_node_id()
    found = []
    for node in _walk([o._node for o in outputs]):
        t = owners.get(id(node))
        if t is not None:
            found.append((t, node))
    return found


def _owners_by_node_id() -> dict[int, Tensor]:
    """`_owner` of every node that has one, by id: one pass over the (few) owners is cheaper than
    two weak-dictionary lookups per node of the graph. (The ids are those of live nodes.)"""
    owners = {}
    for node, ref in list(_former_leaf_nodes.items()):
        t = ref()
        if t is not None and t.requires_grad and t.is_leaf:
            owners[id(node)] = t
    for key, t in list(_grad_targets.items()):
        if t.requires_grad:
            owners[key] = t             # (first, as in `_owner`)
    return owners


# ---------------------------------------------------------------------------------------------
# the public functions

def backward(tensors, grad_tensors=None, retain_graph: Optional[bool] = None, create_graph: bool = False,
             grad_variables=None, inputs=None) -> None:
    """torch.autograd.backward: accumulate d(tensors)/d(leaf) into the `.grad` of every leaf that
    requires grad (or only of `inputs`), lazily - the gradients are computed with whatever is
    realized next. `retain_graph` has no effect (see the package docstring)."""
    outputs = _as_tuple(tensors)
    if grad_tensors is None:
        grad_tensors = grad_variables
    if inputs is not None:
        inputs = _as_tuple(inputs)
        if not inputs:
            raise RuntimeError("`inputs` argument to `backward()` cannot be empty.")
    cotangents = _cotangents(outputs, grad_tensors)
    if inputs is None:
        targets = _reachable_targets(outputs)
    else:
        for t in inputs:
            if not t.requires_grad:
                raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        targets = [(t, n) for t in dict.fromkeys(inputs) for n in _nodes_of(t)]
    grads = _gradients(outputs, cotangents, targets)
    _backward_epoch[0] += 1
    for t in {id(t): t for t, _ in targets}.values():
        g = grads.get(id(t))
        if g is not None:
            _accumulate(t, wrap_gradient(g, create_graph, detach=False))
    # the forward value is usually wanted too (loss.item()): compute it in the same program
    for o in outputs:
        if o._node.realized is None:
            _pending_leaves.add(o)


def zero_grads(params, set_to_none: bool = True) -> None:
    """Reset the gradients of `params`: to None, or to zeros in place (Module/Optimizer.zero_grad)."""
    for p in params:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
            continue
        if p.grad.grad_fn is not None:
            p.grad.detach_()
        else:
            p.grad.requires_grad_(False)
        p.grad.zero_()


def _accumulate(t: Tensor, new: Tensor) -> None:
    """t.grad += new: in place when nothing is differentiable (a tensor holding t.grad sees the
    sum, as in torch), out of place (a graph) when either side requires grad."""
    old = t.grad
    if old is None:
        t.grad = new
    elif old.requires_grad or new.requires_grad:
        t.grad = old + new
    else:
        old._write(ir.binary(Op.ADD, old._node, ir.cast(new._node, old.dtype)))
    if t.grad.is_leaf and t.grad._node.realized is None:
        _pending_leaves.add(t.grad)


def grad(outputs, inputs, grad_outputs=None, retain_graph: Optional[bool] = None, create_graph: bool = False,
         only_inputs: bool = True, allow_unused: Optional[bool] = None, is_grads_batched: bool = False,
         materialize_grads: bool = False) -> tuple:
    """torch.autograd.grad: the gradients of `outputs` w.r.t. `inputs`, returned (not accumulated).

    With `create_graph=True` the results are part of the graph (differentiable again); with
    `is_grads_batched=True` the first axis of every grad_output is a batch, computed one by one.
    """
    if materialize_grads and allow_unused is False:
        raise ValueError("Expected allow_unused to be True or not passed when materialize_grads=True, but got: "
                         "allow_unused=False.")
    allow_unused = bool(allow_unused) or materialize_grads
    outputs, inputs = _as_tuple(outputs), _as_tuple(inputs)
    if not inputs:
        raise RuntimeError("`inputs` argument to `grad()` cannot be empty.")
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    if is_grads_batched:
        return _batched_grad(outputs, inputs, grad_outputs, create_graph, allow_unused, materialize_grads)
    cotangents = _cotangents(outputs, grad_outputs)
    _backward_epoch[0] += 1
    unique = list({id(t): t for t in inputs}.values())
    grads = _gradients(outputs, cotangents, [(t, n) for t in unique for n in _nodes_of(t)])
    result = []
    for t in inputs:
        g = grads.get(id(t))
        if g is not None:
            result.append(wrap_gradient(g, create_graph))
        elif materialize_grads:
            result.append(Tensor._from_node(ir.buffer(np.zeros(t.shape, t.dtype.np_dtype), t._node.device)))
        elif allow_unused:
            result.append(None)
        else:
            raise RuntimeError("One of the differentiated Tensors appears to not have been used in the graph. "
                               "Set allow_unused=True if this is the desired behavior.")
    return tuple(result)


def _batched_grad(outputs, inputs, grad_outputs, create_graph, allow_unused, materialize_grads) -> tuple:
    from lazytorch._movement import stack
    batches = _as_tuple(grad_outputs)
    if not batches or any(g is None for g in batches):
        raise RuntimeError("is_grads_batched=True needs a batched grad_output for every output")
    rows = [grad(outputs, inputs, [g[b] for g in batches], create_graph=create_graph, allow_unused=allow_unused,
                 materialize_grads=materialize_grads) for b in range(batches[0].shape[0])]
    return tuple(None if column[0] is None else stack(column) for column in zip(*rows))
