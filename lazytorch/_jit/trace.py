"""Tracing: run a function's body on the lazy front-end and record what it reads and writes.

While a `_Tracer` is active, realization is suspended (`lazytorch._tensor._tracing`) and the slot
descriptors `Tensor._node` and `Tensor.grad` are replaced by recording ones, so the tracer learns,
without help from the code it runs, which pre-existing tensors the body read (program inputs) and
which it changed (outputs). `_substitute` then rebuilds the traced graph over placeholders.
Host work the front-end reports (`host_input`: random draws, optimizer hyperparameters;
`host_effect`: scheduler steps) is kept in order, to be repeated at every replay.
"""
from __future__ import annotations

import os
import sys
import weakref
from typing import Optional

import numpy as np

from compiler import autodiff
from compiler.ir import node as ir
from compiler.ir.ops import Op
from lazytorch import _creation
from lazytorch import _tensor
from lazytorch._tensor import Tensor, _pending_leaves


_NODE_SLOT = Tensor.__dict__["_node"]       # the real slot descriptors, swapped only while tracing
_GRAD_SLOT = Tensor.__dict__["grad"]
_LIB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # lazytorch/

_VALUE_READS = {
    "item": "`.item()`", "numpy": "`.numpy()`", "tolist": "`.tolist()`",
    "__bool__": "`bool(tensor)` (Python control flow on a tensor value: `if`, `while`, `and`, `or`)",
    "__float__": "`float(tensor)`", "__int__": "`int(tensor)`", "__index__": "using a tensor as a Python index",
    "__repr__": "printing a tensor", "__str__": "printing a tensor", "__format__": "formatting a tensor",
    "__array__": "converting a tensor to a numpy array", "__reduce_ex__": "pickling a tensor",
    "__deepcopy__": "deep-copying a tensor",
}


class _Owner:
    """Where a program input is read from, or an output written to, at every call."""
    __slots__ = ("arg", "obj", "grad", "label")

    def __init__(self, arg: Optional[int], obj, grad: bool, label: str):
        self.arg, self.obj, self.grad, self.label = arg, obj, grad, label

    def tensor(self, args) -> Optional[Tensor]:
        t = args[self.arg] if self.arg is not None else self.obj
        return t.grad if self.grad else t


class _NodeSlot:
    """Stands in for `Tensor._node` during a trace: records reads and writes of tensors' nodes."""

    def __init__(self, tracer: "_Tracer"):
        self.tracer = tracer

    def __get__(self, t, owner=None):
        if t is None:
            return self
        node = _NODE_SLOT.__get__(t, owner)
        tr = self.tracer
        key = id(t)
        if key not in tr.created and key not in tr.writes and id(node) not in tr.reads:
            tr.reads[id(node)] = (node, t)
            tr.touched[key] = t
        return node

    def __set__(self, t, node):
        tr = self.tracer
        key = id(t)
        try:
            before = _NODE_SLOT.__get__(t, type(t))
        except AttributeError:              # a tensor being made now
            tr.created.add(key)
            tr.created_refs[key] = t
            tr.initial[key] = node
        else:
            if key not in tr.created and key not in tr.writes:
                tr.writes[key] = (t, before, t._requires_grad, t._grad_fn, t._retains_grad)
                tr.touched[key] = t
        _NODE_SLOT.__set__(t, node)


class _GradSlot:
    """Stands in for `Tensor.grad` during a trace: records reads and writes of gradients."""

    def __init__(self, tracer: "_Tracer"):
        self.tracer = tracer

    def __get__(self, t, owner=None):
        if t is None:
            return self
        g = _GRAD_SLOT.__get__(t, owner)
        tr = self.tracer
        key = id(t)
        if key not in tr.created and key not in tr.grad_writes and key not in tr.grad_reads:
            tr.grad_reads[key] = (t, g)
            tr.touched[key] = t
            if g is not None:
                tr.grad_owner[id(g)] = t
        return g

    def __set__(self, t, g):
        tr = self.tracer
        key = id(t)
        if key not in tr.created and key not in tr.grad_writes:
            try:
                before = _GRAD_SLOT.__get__(t, type(t))
            except AttributeError:
                before = None
            tr.grad_writes[key] = (t, before)
            tr.touched[key] = t
        _GRAD_SLOT.__set__(t, g)


class _Tracer:
    def __init__(self, name: str, arg_tensors: list):
        self.name = name
        self.arg_index: dict[int, int] = {}
        for i, t in enumerate(arg_tensors):
            self.arg_index.setdefault(id(t), i)
        self.touched: dict[int, Tensor] = {}      # pre-existing tensors seen: kept alive, ids stable
        self.created: set[int] = set()
        self.created_refs: "weakref.WeakValueDictionary[int, Tensor]" = weakref.WeakValueDictionary()
        self.initial: dict[int, ir.Node] = {}     # created tensor -> its first node
        self.reads: dict[int, tuple] = {}         # id(node) -> (node, pre-existing tensor holding it)
        self.writes: dict[int, tuple] = {}        # id(t) -> (t, node before, flags before...)
        self.grad_reads: dict[int, tuple] = {}    # id(p) -> (p, p.grad at first read)
        self.grad_writes: dict[int, tuple] = {}   # id(p) -> (p, p.grad before the first write)
        self.grad_owner: dict[int, Tensor] = {}   # id(g) -> p, for g = p.grad when first read
        self.pending_before = {id(t) for t in _pending_leaves}
        # host work repeated at every call, in the order the body did it: (compute, leaf node, label)
        # for a value computed on the host (a random draw, a hyperparameter read from a param group),
        # (call, None, label) for a Python side effect (a scheduler step)
        self.host: list[tuple] = []
        self.stepped: list = []                   # objects whose host effects are replayed
        self.generators: dict[int, tuple] = {}    # id -> (generator, its stream, state before the trace)
        self.in_effect = False
        self.storages_made: list = []              # tensors given a storage while tracing

    def __enter__(self):
        self.saved = (_tensor._tracing[0], _creation._rng)
        _tensor._tracing[0] = self
        _creation._rng = self.random_drawn
        Tensor._node = _NodeSlot(self)
        Tensor.grad = _GradSlot(self)
        return self

    def __exit__(self, *exc):
        Tensor._node = _NODE_SLOT
        Tensor.grad = _GRAD_SLOT
        _tensor._tracing[0], _creation._rng = self.saved
        return False

    def storage_made(self, t: Tensor) -> None:
        """`t`, which may exist before the trace, now shares a storage made while tracing: the
        storage holds traced nodes, so `restore` takes it away again."""
        self.storages_made.append(t)

    # -- what cannot be traced -------------------------------------------------------------------
    def value_read(self, t: Tensor):
        what, where = "reading a tensor's value", _user_frame()
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename == _tensor.__file__:
            what = _VALUE_READS.get(frame.f_code.co_name, what)
            frame = frame.f_back
        hint = " For a data-dependent choice use `torch.where`." if "bool" in what else ""
        raise RuntimeError(
            f"lazytorch.jit: {what} needs the value of a tensor while `{self.name}` is being traced{where}. "
            "A jitted function is traced once into a compiled program and replayed without running its "
            "Python code, so tensor values do not exist inside it: return the tensor and read its value "
            f"outside the jitted function.{hint}")

    def random_drawn(self, generator=None):
        raise RuntimeError(
            f"lazytorch.jit: random numbers drawn by host code inside `{self.name}`{_user_frame()} (an `nn.init` "
            "function, `multinomial`) would be drawn once, when the function is traced, and replayed unchanged "
            "on every call. Draw them outside the jitted function and pass the tensor in as an argument.")

    # -- host work repeated at every call ---------------------------------------------------------
    def host_input(self, t: Tensor, compute, label: str) -> None:
        """`t`, a leaf the body just made, holds `compute()`: a program input computed on the host
        again at every call (a random draw, an optimizer hyperparameter)."""
        if not self.in_effect:
            self.host.append((compute, _NODE_SLOT.__get__(t, type(t)), label))

    def host_effect(self, owner, call, label: str):
        """Run `call()` (Python state only, e.g. a scheduler step) and repeat it at every call, in the
        same place relative to the body's other host work. Effects nested in it are not recorded."""
        if self.in_effect:
            return call()
        self.host.append((call, None, label))
        self.stepped.append(owner)
        self.in_effect = True
        try:
            return call()
        finally:
            self.in_effect = False

    def before_draw(self, generator) -> None:
        if id(generator) not in self.generators:
            self.generators[id(generator)] = (generator, generator._rng, generator._rng.bit_generator.state)

    def rewind_generators(self) -> None:
        """Put every generator the body drew from back where it was (a trace that does not run)."""
        for generator, rng, state in self.generators.values():
            generator._rng = rng
            rng.bit_generator.state = state

    # -- after the body ran ---------------------------------------------------------------------
    def owner(self, t: Tensor, grad: bool, labels: dict) -> _Owner:
        i = self.arg_index.get(id(t))
        if i is not None:
            return _Owner(i, None, grad, f"argument tensor {i}" + (".grad" if grad else ""))
        label = labels.get(id(t), "captured tensor")
        return _Owner(None, t, grad, label + (".grad" if grad else ""))

    def restore(self):
        """Put every tensor the body changed back as it was before the trace. (Not through
        `Tensor._set_node`: replacing a pending node there would compute the traced graph.)"""
        for t in list(_pending_leaves):     # nothing the trace left pending may ever be computed
            if id(t) not in self.pending_before and (id(t) in self.created or id(t) in self.writes):
                _pending_leaves.discard(t)
        targets = _tensor._grad_targets
        for t, before, requires_grad, grad_fn, retains in self.writes.values():
            now = _NODE_SLOT.__get__(t, type(t))
            if targets.get(id(now)) is t:
                del targets[id(now)]
            _NODE_SLOT.__set__(t, before)
            t._requires_grad, t._grad_fn, t._retains_grad = requires_grad, grad_fn, retains
            if "_pending_updates" in t.__dict__:    # chained in-place updates counted by _set_node
                t._pending_updates = 0
            if requires_grad and (grad_fn is None or retains):
                targets[id(before)] = t
        for p, before in self.grad_writes.values():
            p.grad = before
        for t in self.storages_made:            # (its aliases were made by the trace: gone with it)
            t.__dict__.pop("_storage", None)
            t.__dict__.pop("_view", None)


def _user_frame() -> str:
    """' (at file:line)' of the innermost frame outside lazytorch, for error messages."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(_LIB_DIR + os.sep):
            return f" (at {filename}:{frame.f_lineno})"
        frame = frame.f_back
    return ""


# what a program output becomes at every call: a new realized buffer node (made directly: faster)
_new_node = ir.Node
_buffer_ids = ir._buffer_ids
_BUFFER = Op.BUFFER


def _substitute(outputs: list[ir.Node], reads: dict):
    """Rebuild the graph of `outputs` with each node in `reads` replaced by a fresh placeholder.

    Returns (new outputs, [(id of the replaced node, placeholder)], notes): the program is a pure
    function of its placeholders. Nodes realized earlier that depend on a placeholder are computed
    again; those that do not are constants. `notes` maps id(new node) -> where a gradient node came
    from (`compiler.autodiff.describe` of the traced node), for `explain`.
    """
    memo: dict[int, ir.Node] = {}
    placeholders: list[tuple[int, ir.Node]] = []
    notes: dict[int, str] = {}
    stack = [(n, False) for n in reversed(outputs)]
    while stack:
        node, ready = stack.pop()
        nid = id(node)
        if nid in memo:
            continue
        if nid in reads:
            ph = _new_node(_BUFFER, (), node.shape, node.dtype, next(_buffer_ids), node.device)
            ph.realized = np.broadcast_to(np.zeros((), node.dtype.np_dtype), node.shape)   # never read
            memo[nid] = ph
            placeholders.append((nid, ph))
            continue
        if not node.inputs:
            memo[nid] = node
            continue
        if not ready:
            stack.append((node, True))
            stack.extend((i, False) for i in node.inputs if id(i) not in memo)
            continue
        inputs = tuple(memo[id(i)] for i in node.inputs)
        if all(a is b for a, b in zip(inputs, node.inputs)):
            new = node
        else:
            new = ir._make(node.op, inputs, node.shape, node.dtype, node.arg, node.device)
        memo[nid] = new
        why = autodiff.describe(node)
        if why is not None:
            notes[id(new)] = why
    return [memo[id(n)] for n in outputs], placeholders, notes

