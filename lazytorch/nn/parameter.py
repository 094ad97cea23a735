"""`nn.Parameter` and `nn.Buffer`: tensors that modules register as their state."""
from __future__ import annotations

import numpy as np

from compiler.ir import node as ir
import weakref

from lazytorch._tensor import Tensor, _ensure_storage, _pending_leaves


class Parameter(Tensor):
    """A leaf tensor that `Module.__setattr__` registers as a parameter (requires grad by default).

    It starts from the node of `data`, so creating it copies nothing (a tensor that starts requiring
    grad gets a node of its own, so it never shares a gradient target with `data`). Operations on
    a Parameter give plain tensors, as in PyTorch.
    """

    def __init__(self, data: Tensor = None, requires_grad: bool = True):
        if data is None:
            from lazytorch._creation import empty
            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter(): expected a Tensor as data, got {type(data).__name__}")
        self._init(data._node)
        # the parameter is data's memory (torch: `Parameter(t)` shares t's storage)
        storage = _ensure_storage(data)
        self._storage, self._view = storage, data._view
        storage.aliases.append(weakref.ref(self))
        if requires_grad:
            self.requires_grad_(True)
        if self._node.realized is None:
            _pending_leaves.add(self)     # computed data: realize it with the next program

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        result = Parameter(Tensor._from_node(ir.buffer(self._value().copy())), self.requires_grad)
        if self.grad is not None:
            result.grad = self.grad.__deepcopy__(memo)
        memo[id(self)] = result
        return result

    def __reduce_ex__(self, protocol):
        return (_rebuild_parameter, (self._value(), self.requires_grad))


def _rebuild_parameter(array: np.ndarray, requires_grad: bool) -> Parameter:
    return Parameter(Tensor._from_node(ir.buffer(array)), requires_grad)


class Buffer(Tensor):
    """Marks a tensor to be registered as a buffer when assigned to a module attribute.

    `module.x = nn.Buffer(t, persistent=False)` is `module.register_buffer("x", t, persistent=False)`;
    the module stores the plain tensor `t`.
    """

    def __init__(self, data: Tensor = None, *, persistent: bool = True):
        if data is None:
            from lazytorch._creation import empty
            data = empty(0)
        self._init(data._node)
        self.persistent = persistent
        self.wrapped = data
