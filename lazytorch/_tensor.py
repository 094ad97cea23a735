"""`lazytorch.Tensor`: PyTorch's tensor API over lazy IR nodes.

A tensor holds one IR node. Every operation checks its arguments (shapes, dtypes, indices) at the
call, raising errors worded like PyTorch's, then builds new nodes; nothing is computed until a
value is needed (`.item()`, `.numpy()`, `print`, `.realize()`, an optimizer step).
"""
from __future__ import annotations

import builtins
import functools
import math
import numbers
import sys
import types
import weakref
from collections import namedtuple
from typing import Optional, Sequence, Union

import numpy as np

import compiler
from compiler import dtypes as dt
from compiler.ir import node as ir
from compiler.ir.ops import Op
from lazytorch import _formatting, _storage
from lazytorch._storage import write_back
from lazytorch._grad_mode import is_grad_enabled

Number = (builtins.bool, builtins.int, builtins.float, np.number, np.bool_)
_default_dtype = [dt.float32]

# Leaf tensors whose value is a pending computation (in-place updates, accumulated gradients).
# They are realized together with whatever is realized next, so the graph behind a parameter
# never grows across training iterations.
class _WeakIdentitySet:
    """A weak set compared by identity: `weakref.WeakSet` compares members with `==`, which is
    elementwise (not a bool) for tensors. Weak references by id, each removing its own entry when
    its tensor dies (cheaper than a WeakValueDictionary: leaves are added at every in-place op)."""

    def __init__(self):
        self._refs: "dict[int, weakref.ref[Tensor]]" = {}

    def add(self, item) -> None:
        if item not in self:
            self._refs[id(item)] = weakref.ref(item, functools.partial(self._drop, id(item)))

    def _drop(self, key: int, ref: "weakref.ref[Tensor]") -> None:
        if self._refs.get(key) is ref:
            del self._refs[key]

    def discard(self, item) -> None:
        if item in self:
            del self._refs[id(item)]

    def __contains__(self, item) -> bool:
        ref = self._refs.get(id(item))
        return ref is not None and ref() is item

    def __iter__(self):
        items = [ref() for ref in list(self._refs.values())]
        return iter([t for t in items if t is not None])


_pending_leaves = _WeakIdentitySet()
MAX_PENDING_UPDATES = 8   # in-place updates a leaf may chain before it is computed
# counts backward() calls: a parameter updated in place again after a backward is computed first
_backward_epoch = [0]
# The tracer of `lazytorch.jit` while it traces a function, else None. Values do not exist during a
# trace: realization is suspended (the whole traced graph becomes one program) and reading a value
# raises an error the tracer words (see lazytorch/jit.py).
_tracing: list = [None]
# Tensors autodiff can differentiate with respect to, by the id of their current node.
_grad_targets: "weakref.WeakValueDictionary[int, Tensor]" = weakref.WeakValueDictionary()
# Nodes a leaf that requires grad held before an in-place update or a realization swapped them:
# graphs built on them still lead to that leaf (torch: one leaf, several versions of its value).
_former_leaf_nodes: "weakref.WeakKeyDictionary[ir.Node, weakref.ref[Tensor]]" = weakref.WeakKeyDictionary()



def _return_type(name: str, fields: Sequence[str] = ("values", "indices")) -> type:
    """A named tuple that prints like torch's `torch.return_types.<name>(...)`."""
    def __repr__(self):
        body = ",\n".join(f"{field}={value!r}" for field, value in zip(self._fields, self))
        return f"torch.return_types.{name}(\n{body})"
    return type(name, (namedtuple(name, fields),), {"__slots__": (), "__repr__": __repr__,
                                                      "__module__": "lazytorch.return_types"})


# `lazytorch.return_types`: the named tuples that ops with several results return
return_types = types.SimpleNamespace(max=_return_type("max"), min=_return_type("min"))


def get_default_dtype() -> dt.DType:
    return _default_dtype[0]


def set_default_dtype(dtype: dt.DType) -> None:
    if dtype not in (dt.float32, dt.float64, dt.float16):
        raise TypeError("only floating-point types are supported as the default type")
    _default_dtype[0] = dtype


def _dtype_label(dtype: dt.DType) -> str:
    """The name torch uses in error messages: Float, Double, Long, Int, Bool, ..."""
    return {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long", "int32": "Int",
            "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}[dtype.name]


def _normalize_dim(dim: int, ndim: int) -> int:
    size = builtins.max(ndim, 1)
    if not -size <= dim < size:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-size}, {size - 1}], but got {dim})")
    return dim % size


def _normalize_dims(dim, ndim: int) -> tuple[int, ...]:
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, builtins.int) else tuple(dim)
    out = tuple(_normalize_dim(d, ndim) for d in dims)
    if len(set(out)) != len(out):
        raise RuntimeError(f"dim {out[0]} appears multiple times in the list of dims")
    return out if ndim else ()


def broadcast_shapes(*shapes) -> tuple[int, ...]:
    """torch.broadcast_shapes; a mismatch raises torch's binary-op message naming both sizes."""
    if len(shapes) == 2 and shapes[0] == shapes[1] or len(shapes) == 1:
        return tuple(shapes[0])          # the common cases, on the graph-building hot path
    return _broadcast_tuples(tuple(map(tuple, shapes)))


@functools.lru_cache(maxsize=1024)       # (a model broadcasts the same few shapes at every step)
def _broadcast_tuples(shapes: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
    ndim = builtins.max((len(s) for s in shapes), default=0)
    result = [1] * ndim
    for shape in shapes:
        padded = (1,) * (ndim - len(shape)) + shape
        for axis, n in enumerate(padded):
            if result[axis] == 1:
                result[axis] = n
            elif n != 1 and n != result[axis]:
                raise RuntimeError(f"The size of tensor a ({result[axis]}) must match the size of tensor b ({n}) "
                                   f"at non-singleton dimension {axis}")
    return tuple(result)


def _expand_node(node: ir.Node, shape) -> ir.Node:
    shape = tuple(shape)
    if node.shape != shape:
        node = ir.reshape(node, (1,) * (len(shape) - len(node.shape)) + node.shape)
        node = ir.expand(node, shape)
    return node


class _GradFn:
    """What `tensor.grad_fn` shows: the name of the op that made a tensor (its backward is IR)."""
    __slots__ = ("_name", "_tensor")

    def __init__(self, name: str, tensor: "Tensor"):
        self._name = name
        self._tensor = weakref.ref(tensor)

    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<{self._name} object>"


@functools.lru_cache(maxsize=None)     # (a handful of op names, asked for at every op)
def _backward_name(op_name: str) -> str:
    return "".join(p.capitalize() for p in op_name.split("_")) + "Backward0"


class Tensor:
    """A lazily evaluated n-dimensional array with PyTorch's API."""

    __slots__ = ("_node", "_requires_grad", "grad", "_grad_fn", "_retains_grad", "__weakref__", "__dict__")
    __array_priority__ = 1000   # numpy scalars defer to our reflected operators

    def __init__(self, *args, **kwargs):
        # torch.Tensor(data) / torch.Tensor(2, 3): legacy constructors give default-dtype tensors
        if len(args) == 1 and not isinstance(args[0], Number):
            node = tensor(args[0], dtype=get_default_dtype())._node
        else:
            node = ir.buffer(np.zeros(tuple(args), get_default_dtype().np_dtype))
        self._init(node)

    def _init(self, node: ir.Node, requires_grad: bool = False, grad_fn: Optional[str] = None):
        self._node = node
        self._requires_grad = requires_grad
        self.grad = None
        self._grad_fn = grad_fn
        self._retains_grad = False
        if requires_grad and grad_fn is None:
            _grad_targets[id(node)] = self

    @staticmethod
    def _from_node(node: ir.Node, requires_grad: bool = False, grad_fn: Optional[str] = None) -> "Tensor":
        t = Tensor.__new__(Tensor)
        t._init(node, requires_grad, grad_fn)
        return t

    # -- the node and autograd bookkeeping ---------------------------------------------------
    @property
    def node(self) -> ir.Node:
        return self._node

    def _set_node(self, node: ir.Node, pending: bool = True):
        """Make this tensor refer to `node` (the bookkeeping of gradient targets and pending leaves;
        an in-place write, which aliases must see, goes through `_write`). `pending=False`: an alias
        reading its storage's root, which is pending itself (computing the alias on its own would
        be a kernel for nothing)."""
        if self._grad_fn is None and self._node.realized is None and self in _pending_leaves:
            # a leaf updated again before anything realized it. One updated again after a backward
            # (manual SGD in a loop, also through `.data`) is computed now, so each iteration is one
            # program and the graph stays bounded; chained in-place ops (`p.data.mul_(0.9).add_(q)`)
            # chain a few first, which then fuse into one kernel
            self._pending_updates = getattr(self, "_pending_updates", 0) + 1
            if (getattr(self, "_pending_epoch", -1) != _backward_epoch[0]
                    or self._pending_updates >= MAX_PENDING_UPDATES):
                realize_tensors([])
        if _grad_targets.get(id(self._node)) is self:
            del _grad_targets[id(self._node)]
            if self._grad_fn is None:
                _former_leaf_nodes[self._node] = weakref.ref(self)
        if self._requires_grad and (self._grad_fn is None or self._retains_grad):
            other = _grad_targets.get(id(node))
            if other is not None and other is not self:
                node = _own_node(node)         # (`e.copy_(p)`: e's gradient is not p's)
            _grad_targets[id(node)] = self
        self._node = node
        if pending and self._grad_fn is None and node.realized is None and self not in _pending_leaves:
            _pending_leaves.add(self)
            self._pending_epoch = _backward_epoch[0]

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool):
        if not self.is_leaf and not (value and self._requires_grad):
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want to use "
                               "a computed variable in a subgraph that doesn't require differentiation use "
                               "var_no_grad = var.detach().")
        if value and not (self.dtype.is_floating_point):
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        if value and not self._requires_grad:      # (a non-leaf requires grad already)
            # a leaf has no history, and hash-consing shares nodes (x.detach() is x's node when x
            # needs no grad, two clones are one node): a tensor that starts requiring grad gets a
            # node of its own - a new buffer, or times a one held in a buffer (never shared). Not a
            # buffer while a jit traces: its value would be frozen, cut off from the node it copies
            node = self._node
            if node.realized is not None and _tracing[0] is None:
                self._node = ir.buffer(node.realized)
            else:
                one = ir.reshape(ir.buffer(np.ones((), node.dtype.np_dtype)), (1,) * len(node.shape))
                self._node = ir.unary(Op.DETACH, ir.binary(Op.MUL, node, ir.expand(one, node.shape)))
        self._requires_grad = bool(value)
        if value:
            _grad_targets[id(self._node)] = self
        elif _grad_targets.get(id(self._node)) is self:
            del _grad_targets[id(self._node)]

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self._grad_fn is None

    @property
    def grad_fn(self):
        return _GradFn(self._grad_fn, self) if self._grad_fn else None

    def retain_grad(self) -> None:
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.is_leaf:
            return                      # leaves get their .grad anyway (torch: retains_grad stays False)
        self._retains_grad = True
        while _grad_targets.get(id(self._node), self) is not self:
            # the node is another tensor's too (a no-op view such as x[:]): give this one its own
            self._node = ir.binary(Op.MUL, self._node, ir.const(1, self.dtype, self._node.shape, self._node.device))
        _grad_targets[id(self._node)] = self

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def detach(self) -> "Tensor":
        """The same memory, without history: in-place writes to either show in both (torch shares
        the version counter too)."""
        return _alias(self, (), "detach", detached=True, counter=self._version_counter())

    @property
    def data(self) -> "Tensor":
        """The same memory, detached from autograd (torch's `.data`: a version counter of its own,
        so writes through it go unnoticed by autograd)."""
        return _alias(self, (), "data", detached=True, counter=[0])

    @data.setter
    def data(self, value: "Tensor"):
        if tuple(value.shape) != tuple(self.shape) or value.dtype is not self.dtype:
            self._check_data_assignment(value)
        # this tensor now uses value's memory (its own history and grad flags stay)
        self._leave_storage()
        storage = _ensure_storage(value)
        self._storage, self._view = storage, value._view
        storage.aliases.append(weakref.ref(self))
        node = value._node
        if self._requires_grad or value._requires_grad:
            node = _own_node(node)
        self._set_node(node)

    def _leave_storage(self) -> None:
        """Stop sharing memory with any other tensor (before this tensor gets new memory: a module's
        `.to(dtype)`); the other aliases keep the old memory."""
        storage = self._storage
        if storage is not None:
            storage.aliases = [r for r in storage.aliases if r() is not self]
            for name in ("_storage", "_view", "_view_base", "_detached"):
                self.__dict__.pop(name, None)

    def _check_data_assignment(self, value: "Tensor"):
        # torch allows changing shape and dtype through .data; lazytorch keeps the tensor's node
        # type-stable so compiled programs stay valid, and says so
        raise RuntimeError(f"assigning .data of shape {list(value.shape)} ({value.dtype}) to a tensor of shape "
                           f"{list(self.shape)} ({self.dtype}) is not supported; create a new tensor instead")

    def detach_(self) -> "Tensor":
        if self._requires_grad:
            self._set_node(_own_node(self._node))
        self._requires_grad, self._grad_fn = False, None
        return self

    # -- storage: aliasing, in-place writes, PyTorch's memory metadata ------------------------------
    _storage = None      # the Storage this tensor views, once another tensor or numpy shares its memory
    _view = ()           # view steps from the storage's root (see lazytorch/_storage.py)
    _detached = False    # an alias made by .data/.detach(): reads the storage without its history
    _view_base = None    # `_base`: the tensor this is a view of
    _vc = None           # the version counter, shared with views and .detach()

    def _version_counter(self) -> list:
        vc = self._vc
        if vc is None:
            vc = self._vc = [0]
        return vc

    @property
    def _version(self) -> int:
        return self._version_counter()[0]

    @property
    def _base(self) -> Optional["Tensor"]:
        return self._view_base

    def _is_view(self) -> bool:
        return self._view_base is not None

    def _write(self, node: ir.Node, replayed: bool = False) -> None:
        """An in-place write: this tensor's memory now holds `node`, and so does every alias's.
        `replayed`: a jitted program's replay has set this tensor's node already (its other aliases
        and the storage follow)."""
        if not replayed:
            self._version_counter()[0] += 1
        storage = self._storage
        if storage is None:
            self._set_node(node)
            return
        aliases = storage.live()
        if len(aliases) == 1 and not self._view and not self._detached and not storage.exported:
            self._storage = None              # nothing shares this memory any more
            self._set_node(node)
            return
        root = storage.root
        new_root = write_back(root._node, self._view, node) if self._view else node
        root._set_node(new_root)
        history = self._requires_grad and self._grad_fn is not None and not self._detached
        for t in aliases:
            if t is self:
                t._set_node(node, pending=False)
                continue
            if history and not t._detached and not t._requires_grad:
                # a value with history written into memory this tensor views: torch makes it a
                # non-leaf result of the write (CopySlices)
                t._requires_grad, t._grad_fn = True, "CopySlices"
            new = _alias_node(t, new_root)
            if self._detached and t._grad_fn is not None and not t._detached and t._requires_grad:
                # written through .data/.detach(): the new value, but torch keeps t's history
                new = ir.binary(Op.REPLACE, t._node, new)
            t._set_node(new, pending=False)
        if storage.exported:
            _flush_export(storage)

    def untyped_storage(self) -> "UntypedStorage":
        return UntypedStorage(_ensure_storage(self))

    def storage_offset(self) -> int:
        return self._layout()[2]

    def stride(self, dim: Optional[int] = None):
        strides = self._layout()[1]
        return strides if dim is None else strides[_normalize_dim(dim, self.ndim)]

    def is_contiguous(self, memory_format=None) -> bool:
        shape, strides, _ = self._layout()
        return _storage.is_contiguous(shape, strides)

    def data_ptr(self) -> int:
        return _ensure_storage(self).address + self.storage_offset() * self.element_size()

    def _layout(self):
        """(shape, strides, storage offset) as torch reports them."""
        if self._storage is None or not self._view:
            return self._node.shape, _storage.contiguous_strides(self._node.shape), 0
        return _storage.layout(self._storage.root._node.shape, self._view)

    def _result(self, node: ir.Node, parents: Sequence["Tensor"], name: str, view: bool = False) -> "Tensor":
        """Wrap a new node: it requires grad when grad mode is on and a floating parent does. A
        computed result that reads memory numpy shares is computed now (see lazytorch/_storage.py)."""
        for p in parents:
            if p._storage is not None and not view and p._storage.exported:
                result = self._result(node, parents, name, view=True)
                realize_tensors([result])
                return result
        for p in parents:
            if p._requires_grad:
                break
        else:
            return Tensor._from_node(node)
        if is_grad_enabled() and node.dtype.is_floating_point:
            return Tensor._from_node(node, True, _backward_name(name))
        return Tensor._from_node(ir.unary(Op.DETACH, node))

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None) -> None:
        """Compute the gradient of this tensor w.r.t. graph leaves; accumulates into `.grad`."""
        from lazytorch.autograd import backward
        backward([self], None if gradient is None else [gradient], retain_graph=retain_graph,
                 create_graph=create_graph, inputs=inputs)

    # -- metadata: never computes anything -----------------------------------------------------
    @property
    def shape(self) -> "Size":
        return Size(self._node.shape)

    def size(self, dim: Optional[int] = None):
        if dim is None:
            return Size(self._node.shape)
        return self._node.shape[_normalize_dim(dim, self.ndim)]

    def dim(self) -> int:
        return len(self._node.shape)

    ndim = property(dim)

    def numel(self) -> int:
        return self._node.numel

    nelement = numel

    @property
    def dtype(self) -> dt.DType:
        return self._node.dtype

    @property
    def device(self) -> "device":
        return device(self._node.device)

    @property
    def is_cuda(self) -> bool:
        return self._node.device.startswith("cuda")

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def element_size(self) -> int:
        return self.dtype.itemsize

    def __len__(self) -> int:
        if not self._node.shape:
            raise TypeError("len() of a 0-d tensor")
        return self._node.shape[0]

    def __iter__(self):
        if not self._node.shape:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._node.shape[0]))

    def __hash__(self):
        return id(self)

    # -- realization -----------------------------------------------------------------------------
    def realize(self) -> "Tensor":
        """Compute this tensor's value now (and any pending leaf updates with it)."""
        realize_tensors([self])
        return self

    def _value(self) -> np.ndarray:
        """The value (not to be written: it may be shared with other nodes)."""
        if _tracing[0] is not None:
            _tracing[0].value_read(self)     # raises: no values while a jitted function is traced
        storage = self._storage
        if storage is not None and storage.shared is not None and (self._grad_fn is None or self._detached) \
                and storage.exported:
            return _strided_array(storage, self)     # memory numpy writes: read it as it is now
        if self._node.realized is None:
            realize_tensors([self])
        return self._node.realized

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """An array sharing this tensor's memory: writes through either show in the other."""
        if self._requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        if _tracing[0] is not None:
            _tracing[0].value_read(self)
        if self._grad_fn is not None and not self._detached:
            return self._value()             # (force=True on a computed value: a copy is fine)
        storage = _ensure_storage(self)
        _export(storage)
        array = _strided_array(storage, self)
        storage.exports.append(weakref.ref(array))
        return array

    def item(self):
        if self.numel() != 1:
            raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted to Scalar")
        return self._value().reshape(()).item()

    def tolist(self):
        return self._value().tolist()

    def __float__(self):
        return builtins.float(self._scalar())

    def __int__(self):
        return builtins.int(self._scalar())

    def _scalar(self):
        if self.numel() != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return self.item()

    def __index__(self):
        if self.dtype.is_floating_point or self.numel() != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return builtins.int(self.item())

    def __bool__(self):
        if self.numel() != 1:
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous")
        return builtins.bool(self.item())

    def __format__(self, spec: str) -> str:
        if self.dim() == 0 or (spec and self.numel() == 1):
            return self.item().__format__(spec)
        return repr(self).__format__(spec)

    def __repr__(self, *, prefix: str = "tensor(") -> str:
        suffixes = []
        if self._grad_fn:
            suffixes.append(f"grad_fn=<{self._grad_fn}>")
        elif self._requires_grad:
            suffixes.append("requires_grad=True")
        return _formatting.format_tensor(self._value(), self.dtype.name, default_dtype_name=get_default_dtype().name,
                                         suffixes=suffixes, prefix=prefix)

    __str__ = __repr__

    def __array__(self, dtype=None, copy=None):
        # NumPy 2's protocol: np.array(t) asks for a copy, np.asarray(t) shares when it can
        if copy:
            return np.array(self._value(), dtype=dtype, copy=True)
        value = self.numpy(force=True)
        return value if dtype is None or value.dtype == np.dtype(dtype) else value.astype(dtype)

    def __reduce_ex__(self, protocol):
        return (_rebuild, (self._value(), self._requires_grad))

    def __deepcopy__(self, memo):
        t = Tensor._from_node(ir.buffer(self._value().copy()), self._requires_grad and self.is_leaf)
        if self.grad is not None:
            t.grad = self.grad.__deepcopy__(memo)
        memo[id(self)] = t
        return t

    def explain(self):
        """A readable report of this tensor's IR, fusion decisions and kernels (see lazytorch.explain)."""
        from lazytorch.explain import explain
        return explain(self)


def _own_node(node: ir.Node) -> ir.Node:
    """A node of its own with `node`'s value and no history: gradient targets are nodes, so a
    tensor that requires grad (or reads one's memory without its history) must not share one."""
    if not node.dtype.is_floating_point:
        return node
    if node.realized is not None and _tracing[0] is None:
        return ir.buffer(node.realized, node.device)    # (shares the array: no kernel)
    return ir.unary(Op.DETACH, node)      # (while tracing: still reads the traced node)


def _ensure_storage(t: Tensor) -> "_storage.Storage":
    """t's storage, made when a second tensor (or numpy) first shares t's memory."""
    storage = t._storage
    if storage is None:
        storage = t._storage = _storage.Storage(Tensor._from_node(t._node))
        storage.aliases.append(weakref.ref(t))
        if _tracing[0] is not None:
            _tracing[0].storage_made(t)
    return storage


def _alias(src: Tensor, steps: tuple, name: str, *, detached: bool = False, counter=None) -> Tensor:
    """A tensor viewing `src`'s memory through `steps` (a view), or all of it without history
    (`detached`: .data/.detach())."""
    storage = _ensure_storage(src)
    node, view = src._node, src._view
    if steps and steps[0][0] == "as_strided":      # (positions in the whole storage)
        node, view = _alias_node(src, storage.root._node, ()) if src._detached else storage.root._node, ()
    for step in steps:
        node = _storage.apply_step(node, step)
    if detached:
        t = Tensor._from_node(_own_node(node) if src._requires_grad else node)
        t._detached = True
    else:
        t = src._result(node, (src,), name, view=True)
        t._view_base = src._view_base if src._view_base is not None else src
        if src._detached:
            t._detached = True
    t._storage, t._view = storage, view + steps
    t._vc = counter if counter is not None else src._version_counter()
    storage.aliases.append(weakref.ref(t))
    return t


def _alias_node(t: Tensor, root: ir.Node, view=None) -> ir.Node:
    """What alias `t` reads from the storage's root node."""
    node = _storage.derive(root, t._view if view is None else view)
    if t._detached or (t._requires_grad and t._grad_fn is None):
        node = _own_node(node)
    return node


def _export(storage: "_storage.Storage") -> np.ndarray:
    """The storage's memory, as numpy will share it: computed now, and (the first time) copied,
    since arrays a realization made may be read by lazy nodes built before numpy could write them."""
    if storage.shared is None or storage.root._node.realized is not storage.shared:
        realize_tensors([storage.root])
        array = storage.root._node.realized
        storage.shared = array if _sole_reader(storage) else np.array(array, copy=True)
        _rebind(storage)
    return storage.shared


def _sole_reader(storage: "_storage.Storage") -> bool:
    """True when nothing but this storage's tensors can read the root's array: no other node holds
    the root's node (a lazy consumer would read the array after numpy wrote it) and no other node
    shares the array (a clone realized as the same array). Then numpy may share it without a copy.

    Counts references with `sys.getrefcount`, so it is CPython's answer only; elsewhere the array
    is always copied. The expected count: the storage's root and each alias holding the node, plus
    getrefcount's argument and this frame's name for it (the caller holds the array once more)."""
    node = storage.root._node
    array = node.realized
    if sys.implementation.name != "cpython" or array.base is not None or not array.flags.writeable:
        return False
    holders = 1 + builtins.sum(1 for t in storage.live() if t._node is node)
    return sys.getrefcount(node) == holders + 2 and sys.getrefcount(array) == 4


def _rebind(storage: "_storage.Storage") -> None:
    """Point the root and the aliases without history at the shared memory (an alias with
    history keeps its graph: it is a computed value, not a read of the memory)."""
    storage.root._set_node(ir.buffer(storage.shared, storage.root._node.device))
    for t in storage.live():
        if t._grad_fn is None or t._detached:
            t._set_node(_alias_node(t, storage.root._node), pending=False)


def _flush_export(storage: "_storage.Storage") -> None:
    """After an in-place write to memory numpy shares: compute it into that memory now."""
    if _tracing[0] is not None:
        return
    realize_tensors([storage.root])
    np.copyto(storage.shared, storage.root._node.realized.reshape(storage.shared.shape))
    _rebind(storage)


def _strided_array(storage: "_storage.Storage", t: Tensor) -> np.ndarray:
    """A numpy array over the storage's shared memory, laid out as `t`."""
    shape, strides, offset = t._layout()
    shared = storage.shared
    item = shared.itemsize
    return np.ndarray(shape, shared.dtype, shared, offset * item, tuple(s * item for s in strides))


class UntypedStorage:
    """What `tensor.untyped_storage()` returns: the memory a group of aliases share."""

    def __init__(self, storage: "_storage.Storage"):
        self._storage = storage

    def data_ptr(self) -> int:
        return self._storage.address

    def nbytes(self) -> int:
        return self._storage.nbytes()

    def size(self) -> int:
        return self.nbytes()

    __len__ = size

    def __eq__(self, other):
        return isinstance(other, UntypedStorage) and other._storage is self._storage

    def __hash__(self):
        return id(self._storage)


def _rebuild(array, requires_grad):
    return Tensor._from_node(ir.buffer(array), requires_grad)


class Size(tuple):
    """torch.Size: a tuple of ints that prints as `torch.Size([2, 3])`."""

    def __repr__(self) -> str:
        return f"torch.Size({list(self)})"

    def numel(self) -> int:
        return math.prod(self)

    def __getitem__(self, item):
        result = tuple.__getitem__(self, item)
        return Size(result) if isinstance(item, slice) else result


class device:
    """torch.device: 'cpu' or 'cuda[:n]'."""

    def __init__(self, type_or_device="cpu", index=None):
        text = str(type_or_device)
        if ":" in text:
            text, index = text.split(":")
            index = builtins.int(index)
        if text not in ("cpu", "cuda"):
            raise RuntimeError(f"Expected one of cpu, cuda device type at start of device string: {text}")
        self.type, self.index = text, index

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}'" + ("" if self.index is None else f", index={self.index}") + ")"


def realize_tensors(tensors: Sequence[Tensor]) -> None:
    """Realize these tensors together with every pending leaf update, in one compiled program."""
    if _tracing[0] is not None:
        return      # tracing: the jit compiles everything the function builds as one program
    pending = [t for t in list(_pending_leaves) if t._node.realized is None]
    nodes = [t._node for t in tensors] + [t._node for t in pending]
    try:
        compiler.realize(nodes)
    except (IndexError, RuntimeError) as e:
        failed = getattr(e, "failed_node", None)     # a kernel found a bad index computed lazily
        if failed is not None:
            _drop_pending_reading(failed, e.failed_check, pending)
        raise
    # a leaf's value is now known: it becomes a fresh buffer, cutting the graph that computed it
    for t in list(_pending_leaves):
        if t._node.realized is not None:
            _pending_leaves.discard(t)
            t._pending_updates = 0
            if t.is_leaf and t._node.op is not Op.BUFFER:
                node = t._node
                if not t._requires_grad and node.inputs:
                    # a graph may already read this node (an in-place op built on it before the
                    # update that flushed it): cut the history behind it too, or a loop of chained
                    # updates keeps every step's graph alive. Safe: no gradient flows through a
                    # leaf that needs none (a value with history would have made it require grad)
                    ir.forget_inputs(node)
                t._set_node(ir.buffer(node.realized))


def _drop_pending_reading(failed: ir.Node, check, pending: list) -> None:
    """After a realization raised for a bad index computed lazily (torch raises at the op instead),
    the pending leaf updates that read the failed value, or an index checked the same way, stay
    lazy but are no longer computed with every realization: reading such a tensor raises that error
    again, and other tensors can still be computed. (Leaving a leaf out of the pending set is always
    correct: it only lets its graph grow until it is read.)"""
    for t in pending:
        if any(n is failed or n.op is Op.CHECK and n.arg == check for n in ir.toposort([t._node])):
            _pending_leaves.discard(t)


def _as_tensor_like(value, ref: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value
    return tensor(value, device=ref._node.device) if not isinstance(value, Number) else None


def tensor(data, dtype: Optional[dt.DType] = None, device=None, requires_grad: bool = False,
           pin_memory: bool = False) -> Tensor:
    """A new leaf tensor holding a copy of `data` (nested lists, numpy arrays, scalars, tensors)."""
    if isinstance(data, Tensor):
        array = data._value().copy()
    else:
        array = _infer_array(data, dtype.np_dtype if dtype is not None and dtype.is_floating_point else None)
    if dtype is not None:
        array = array.astype(dtype.np_dtype)
    check_factory_requires_grad(array.dtype, requires_grad)
    result = Tensor._from_node(ir.buffer(np.array(array, copy=True), _device_name(device)))
    if requires_grad:
        result.requires_grad_(True)
    return result


def check_factory_requires_grad(np_dtype, requires_grad: bool) -> None:
    """Factories (`tensor`, `zeros`, ...) word this check as torch's factories do."""
    if requires_grad and not dt.from_numpy(np_dtype).is_floating_point:
        raise RuntimeError("Only Tensors of floating point and complex dtype can require gradients")


def _device_name(dev) -> str:
    return "cpu" if dev is None else str(device(dev) if not isinstance(dev, device) else dev).split(":")[0]


def _infer_array(data, float_dtype=None) -> np.ndarray:
    # floats are read at the requested precision (tensor([0.1], dtype=float64) keeps all digits)
    float_dtype = get_default_dtype().np_dtype if float_dtype is None else float_dtype
    if isinstance(data, (np.ndarray, np.generic)):      # numpy scalars keep their dtype, as in torch
        dt.from_numpy(data.dtype)
        return np.asarray(data)
    if isinstance(data, (builtins.bool, np.bool_)):
        return np.array(data, np.bool_)
    if isinstance(data, (builtins.int, np.integer)):
        return np.array(data, np.int64)
    if isinstance(data, (builtins.float, np.floating)):
        return np.array(data, float_dtype)
    if isinstance(data, (list, tuple)):
        flat = _flatten_scalars(data)
        if any(isinstance(x, Tensor) for x in flat):
            data = _tensors_to_lists(data)
            flat = _flatten_scalars(data)
        if not flat:
            return np.array(data, float_dtype)
        for x in flat:
            if not isinstance(x, Number):
                _infer_array(x)          # raises torch's error for the element's type
        if any(isinstance(x, (builtins.float, np.floating)) for x in flat):
            kind = float_dtype
        elif all(isinstance(x, (builtins.bool, np.bool_)) for x in flat):
            kind = np.bool_
        else:
            kind = np.int64
        try:
            return np.array(data, kind)
        except ValueError:
            raise ValueError(f"expected sequence of length {len(data[0]) if isinstance(data[0], (list, tuple)) else 1} "
                             f"at dim 1 (got {len(data[-1]) if isinstance(data[-1], (list, tuple)) else 1})") from None
    if isinstance(data, (str, bytes)):
        raise TypeError(f"new(): invalid data type '{type(data).__name__}'")
    raise RuntimeError(f"Could not infer dtype of {type(data).__name__}")


def _flatten_scalars(data) -> list:
    out, stack = [], [data]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(x)
        else:
            out.append(x)
    return out


def _tensors_to_lists(data):
    if isinstance(data, Tensor):
        return data.tolist()
    if isinstance(data, (list, tuple)):
        return [_tensors_to_lists(x) for x in data]
    return data
