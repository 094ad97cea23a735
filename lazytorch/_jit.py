"""`lazytorch.jit`: trace a function once, replay it as ONE compiled program on every later call.

    @lazytorch.jit
    def train_step(x, y):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

**Tracing.** The first call with a given signature runs the Python body on the lazy front-end with
realization suspended: nothing is computed, `optimizer.step()`'s realize is a no-op, and the
forward pass, the gradients, the updates, `zero_grad()`, BatchNorm statistics... are all one graph.
While tracing, the slots of `Tensor` that hold a tensor's node and its `.grad` are swapped for
recording descriptors, which is how the tracer learns, without any help from the code it runs:

* which tensors that existed before the call the body *reads*: their nodes become the program's
  inputs, bound again at every call (arguments by position; parameters, optimizer state and
  captured tensors by object; gradients by their owner, `p.grad`);
* which of them it *updates* (their node or their `.grad` changed), and which tensors it created
  are still alive afterwards (optimizer state made on the first step): the program's outputs,
  written back after every call;
* what it returns: fresh tensors at every call, never overwritten by a later one.

**Replay.** A later call whose signature matches (shapes, dtypes, devices, requires_grad of the
tensors in the arguments; the values of Python scalars and strings in them; the identity of
other objects; grad mode) and whose guards hold (train/eval flags of the modules it uses, the
hyperparameters and state layout of its optimizers and schedulers, which gradients are None, the
globals and closure variables it reads) runs the program without running the Python body: bind
the input buffers, make one native call (see compiler/runtime/driver.py), install the outputs.

A signature or guard that does not match traces again (a new *specialization*; up to
`max_specializations`, default 8, after which the function warns once and runs uncompiled for new
signatures). `LAZYTORCH_LOG=recompiles` or `LAZYTORCH_DEBUG>=1` prints why each retrace happened.

**What cannot be traced**, each an error at trace time naming the call: reading a tensor's value
(`.item()`, `.numpy()`, `.tolist()`, printing, `bool(tensor)` in an `if`) and drawing random
numbers. Python side effects happen only when the body runs (the first call of each
specialization); a body that changes Python state on every call (a scheduler stepped inside it)
therefore retraces every call and soon falls back to running uncompiled, with a warning that
names the value that kept changing.
"""
from __future__ import annotations

import functools
import itertools
import os
import sys
import time
import types
import warnings
import weakref
from typing import Any, Callable, Optional

import numpy as np

from compiler import autodiff
from compiler.ir import node as ir
from compiler.ir.ops import Op
from compiler.runtime.counters import counters, debug_level, log
from compiler.runtime.driver import Program
from lazytorch import _creation
from lazytorch import _tensor
from lazytorch._grad_mode import is_grad_enabled
from lazytorch._tensor import Tensor, _pending_leaves, get_default_dtype

__all__ = ["jit", "JitFunction"]

MAX_SPECIALIZATIONS = 8
_NODE_SLOT = Tensor.__dict__["_node"]       # the real slot descriptors, swapped only while tracing
_GRAD_SLOT = Tensor.__dict__["grad"]
_LIB_DIR = os.path.dirname(os.path.abspath(__file__))

_VALUE_READS = {
    "item": "`.item()`", "numpy": "`.numpy()`", "tolist": "`.tolist()`",
    "__bool__": "`bool(tensor)` (Python control flow on a tensor value: `if`, `while`, `and`, `or`)",
    "__float__": "`float(tensor)`", "__int__": "`int(tensor)`", "__index__": "using a tensor as a Python index",
    "__repr__": "printing a tensor", "__str__": "printing a tensor", "__format__": "formatting a tensor",
    "__array__": "converting a tensor to a numpy array", "__reduce_ex__": "pickling a tensor",
    "__deepcopy__": "deep-copying a tensor",
}


def jit(fn=None, *, max_specializations: int = MAX_SPECIALIZATIONS):
    """Compile `fn` (a function, a method, or an `nn.Module`) into one program per signature.

    Usable as `@lazytorch.jit`, `@lazytorch.jit(max_specializations=4)` or `lazytorch.jit(fn)`.
    See the module docstring for what is traced, what is guarded and what cannot be traced.
    """
    if fn is None:
        return lambda f: JitFunction(f, max_specializations)
    if isinstance(fn, JitFunction):
        return fn
    return JitFunction(fn, max_specializations)


class _Retrace(Exception):
    """A specialization cannot bind this call (a captured tensor changed shape...): trace again."""


class _Owner:
    """Where a program input is read from, or an output written to, at every call."""
    __slots__ = ("arg", "obj", "grad", "label")

    def __init__(self, arg: Optional[int], obj, grad: bool, label: str):
        self.arg, self.obj, self.grad, self.label = arg, obj, grad, label

    def tensor(self, args) -> Optional[Tensor]:
        t = args[self.arg] if self.arg is not None else self.obj
        return t.grad if self.grad else t


# ---------------------------------------------------------------------------------------------
# tracing

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
            f"lazytorch.jit: random numbers drawn inside `{self.name}`{_user_frame()} would be drawn once, when "
            "the function is traced, and replayed unchanged on every call. Draw them outside the jitted "
            "function and pass the tensor in as an argument.")

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
            if requires_grad and (grad_fn is None or retains):
                targets[id(before)] = t
        for p, before in self.grad_writes.values():
            p.grad = before


def _user_frame() -> str:
    """' (at file:line)' of the innermost frame outside lazytorch, for error messages."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(_LIB_DIR + os.sep):
            return f" (at {filename}:{frame.f_lineno})"
        frame = frame.f_back
    return ""


# ---------------------------------------------------------------------------------------------
# signatures and guards

def _flatten(obj, tensors: list, parts: list, objects: list) -> None:
    """Append `obj`'s signature to `parts`, its tensors to `tensors`, other objects to `objects`."""
    cls = obj.__class__
    if isinstance(obj, Tensor):
        n = obj._node
        tensors.append(obj)
        parts.append((n.shape, n.dtype, n.device, obj._requires_grad))
    elif obj is None or cls in (bool, int, float, str, complex):
        parts.append((cls, obj))
    elif cls in (list, tuple) or isinstance(obj, (list, tuple)):
        parts.append((cls, len(obj)))
        for x in obj:
            _flatten(x, tensors, parts, objects)
    elif isinstance(obj, dict):
        parts.append((cls, tuple(obj)))
        for x in obj.values():
            _flatten(x, tensors, parts, objects)
    else:       # modules, optimizers, dtypes, functions: by identity (kept alive by the cache)
        parts.append(("object", id(obj)))
        objects.append(obj)


def _describe_signature(args, kwargs) -> list[tuple[str, str]]:
    """(path, description) of every leaf of the arguments, for recompile messages."""
    out = []

    def walk(path, obj):
        if isinstance(obj, Tensor):
            out.append((path, f"tensor {obj.dtype.name}{list(obj.shape)} on {obj._node.device}"
                              f"{' requires_grad' if obj.requires_grad else ''}"))
        elif isinstance(obj, (list, tuple)):
            out.append((path, f"{type(obj).__name__} of length {len(obj)}"))
            for i, x in enumerate(obj):
                walk(f"{path}[{i}]", x)
        elif isinstance(obj, dict):
            out.append((path, f"dict with keys {list(obj)}"))
            for k, x in obj.items():
                walk(f"{path}[{k!r}]", x)
        elif obj is None or isinstance(obj, (bool, int, float, str, complex)):
            out.append((path, repr(obj)))
        else:
            out.append((path, f"{type(obj).__name__} object at {id(obj):#x}"))

    for i, a in enumerate(args):
        walk(f"argument {i}", a)
    for k, a in kwargs.items():
        walk(f"argument {k!r}", a)
    return out


def _is_module(obj) -> bool:
    return hasattr(obj, "training") and callable(getattr(obj, "modules", None)) and \
        callable(getattr(obj, "parameters", None))


def _is_optimizer(obj) -> bool:
    return isinstance(getattr(obj, "param_groups", None), list) and isinstance(getattr(obj, "state", None), dict)


def _is_scheduler(obj) -> bool:
    return hasattr(obj, "last_epoch") and _is_optimizer(getattr(obj, "optimizer", None))


def _plain(value):
    """A comparable stand-in for a Python value in a snapshot (tensors by identity)."""
    if isinstance(value, Tensor):
        return ("tensor", id(value))
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _plain(v)) for k, v in value.items())
    if value is None or isinstance(value, (bool, int, float, str, complex)):
        return value
    return ("object", id(value))


def _groups_snapshot(opt) -> tuple:
    return tuple(tuple((k, _plain(v)) for k, v in g.items() if k not in ("params", "param_names"))
                 for g in opt.param_groups) + tuple(tuple(map(id, g["params"])) for g in opt.param_groups)


def _state_snapshot(opt) -> tuple:
    return tuple((id(p), tuple((k, _plain(v)) for k, v in s.items())) for p, s in opt.state.items())


def _scheduler_snapshot(sched) -> tuple:
    return tuple((k, _plain(v)) for k, v in vars(sched).items()
                 if k != "optimizer" and not callable(v) and not isinstance(v, weakref.ref))


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


class _Guards:
    """Values a specialization assumed when it was traced, each with a label for messages.

    `check(args)` is generated Python (one expression per guard) so that a replayed call pays a
    few attribute reads and comparisons; `failure(args)` says which guard failed and how."""

    def __init__(self):
        self.labels: list[str] = []
        self.getters: list[Callable] = []
        self.codes: list[Optional[Callable]] = []
        self.expected: tuple = ()
        self.check: Callable = lambda args: True

    def add(self, label: str, getter: Callable, code: Optional[Callable] = None) -> None:
        """`getter(args)` reads the guarded value. `code(expected, env, i)`, if given, returns a
        Python expression over `args` and names it puts in `env` that is true when the value is
        `expected` (faster than calling the getter and comparing)."""
        self.labels.append(label)
        self.getters.append(getter)
        self.codes.append(code)

    def snapshot(self, args) -> tuple:
        return tuple(g(args) for g in self.getters)

    def finish(self, expected: tuple) -> None:
        self.expected = expected
        env: dict[str, Any] = {}
        parts = []
        for i, (getter, code, value) in enumerate(zip(self.getters, self.codes, expected)):
            if code is not None:
                parts.append(f"({code(value, env, i)})")
            else:
                env[f"_g{i}"], env[f"_e{i}"] = getter, value
                parts.append(f"_g{i}(args) == _e{i}")
        source = "def check(args):\n    return " + (" and ".join(parts) or "True") + "\n"
        exec(compile(source, "<lazytorch.jit guards>", "exec"), env)
        self.check = env["check"]

    def failure(self, args) -> Optional[str]:
        for label, getter, expected in zip(self.labels, self.getters, self.expected):
            try:
                now = getter(args)
            except Exception as e:          # an object the guard reads is gone
                return f"{label}: {type(e).__name__}"
            if now != expected:
                return f"{label} changed: {_short(expected)} -> {_short(now)}"
        return None


def _short(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _discover(fn, args, kwargs) -> tuple[list, dict]:
    """Objects `fn` reaches whose state decides its graph: [(label, object)] of modules, optimizers
    and schedulers, and {name: (getter, kind)} of the globals and closure variables it reads."""
    found: list[tuple[str, Any]] = []
    seen: set[int] = set()

    def visit(label, obj, depth):
        if id(obj) in seen or isinstance(obj, (type, types.ModuleType, Tensor)) or callable(obj) and \
                not _is_module(obj) and not hasattr(obj, "__self__"):
            return
        seen.add(id(obj))
        if _is_module(obj) or _is_optimizer(obj) or _is_scheduler(obj):
            found.append((label, obj))
            if not _is_scheduler(obj):
                return
            visit(label + ".optimizer", obj.optimizer, depth + 1)
            return
        if depth >= 2:
            return
        if isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                visit(f"{label}[{i}]", v, depth + 1)
        elif isinstance(obj, dict):
            for k, v in list(obj.items())[:64]:
                visit(f"{label}[{k!r}]", v, depth + 1)
        elif hasattr(obj, "__self__"):               # a bound method: its object
            visit(label + ".__self__", obj.__self__, depth)
        elif hasattr(obj, "__dict__"):
            for k, v in list(vars(obj).items())[:64]:
                visit(f"{label}.{k}", v, depth + 1)

    variables: dict[str, tuple] = {}
    target = fn
    if _is_module(target):
        visit("self", target, 0)
        target = type(target).forward
    self_obj = getattr(target, "__self__", None)
    if self_obj is not None:
        visit("self", self_obj, 0)
        target = target.__func__
    for i, a in enumerate(args):
        visit(f"argument {i}", a, 0)
    for k, a in kwargs.items():
        visit(f"argument {k!r}", a, 0)
    functions = [target]
    done: set[int] = set()
    while functions:
        f = functions.pop()
        code = getattr(f, "__code__", None)
        if code is None or id(code) in done:
            continue
        done.add(id(code))
        for name, cell in zip(code.co_freevars, getattr(f, "__closure__", None) or ()):
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            variables[f"closure variable {name!r}"] = (lambda args, c=cell: c.cell_contents, value,
                                                       _cell_code(cell))
            visit(name, value, 0)
        module_globals = getattr(f, "__globals__", {})
        for name in _code_names(code):
            if name not in module_globals:
                continue
            value = module_globals[name]
            if isinstance(value, types.FunctionType) and value.__globals__ is module_globals:
                functions.append(value)            # helpers of the same module: their names too
                continue
            variables[f"global {name!r}"] = (lambda args, g=module_globals, n=name: g.get(n), value,
                                             _global_code(module_globals, name))
            visit(name, value, 0)
    return found, variables


class _CodeRef(str):
    """A Python expression reading a variable, with the objects it needs (for generated guards)."""


def _cell_code(cell):
    ref = _CodeRef("_cell{i}.cell_contents")
    ref.env = ("_cell", cell)
    return ref


def _global_code(module_globals, name):
    ref = _CodeRef("_glob{i}.get(" + repr(name) + ")")
    ref.env = ("_glob", module_globals)
    return ref


def _identity_code(where: _CodeRef, obj):
    def code(expected, env, i):
        env[f"_o{i}"] = obj
        env[f"{where.env[0]}{i}"] = where.env[1]
        return f"{where.format(i=i)} is _o{i}"
    return code


def _build_guards(fn, args, kwargs) -> tuple[_Guards, list]:
    guards = _Guards()
    found, variables = _discover(fn, args, kwargs)
    for label, (getter, value, where) in variables.items():
        if isinstance(value, (Tensor, list, tuple, dict)) or _is_module(value) or _is_optimizer(value) or \
                _is_scheduler(value):
            guards.add(f"{label} (identity)", lambda args, g=getter: id(g(args)),
                       _identity_code(where, value))
        elif value is None or isinstance(value, (bool, int, float, str, complex)):
            guards.add(label, getter)
    for label, obj in found:
        if _is_module(obj):
            modules = list(obj.modules())
            guards.add(f"{label}.training (train/eval mode of {len(modules)} modules)",
                       lambda args, ms=modules: tuple(m.training for m in ms), _training_code(modules))
        elif _is_optimizer(obj):
            guards.add(f"{label} hyperparameters", lambda args, o=obj: _groups_snapshot(o),
                       _groups_code(obj))
            guards.add(f"{label} state layout", lambda args, o=obj: _state_snapshot(o), _state_code(obj))
        elif _is_scheduler(obj):
            guards.add(f"{label} state", lambda args, s=obj: _scheduler_snapshot(s))
    for label, (_, value, _) in variables.items():
        if isinstance(value, Tensor):
            found.append((label, value))
    return guards, found


def _training_code(modules):
    def code(expected, env, i):
        env.update({f"_m{i}_{j}": m for j, m in enumerate(modules)})
        return " and ".join(f"_m{i}_{j}.training is {flag}" for j, flag in enumerate(expected)) or "True"
    return code


def _groups_code(opt):
    def code(expected, env, i):
        env[f"_o{i}"], env[f"_snap{i}"], env[f"_e{i}"] = opt, _groups_snapshot, expected
        if any(isinstance(v, Tensor) for g in opt.param_groups for v in g.values()):
            return f"_snap{i}(_o{i}) == _e{i}"
        # shallow copies of the groups: dict == compares lists of parameters by identity first
        env[f"_copies{i}"] = [{k: (list(v) if isinstance(v, list) else v) for k, v in g.items()}
                              for g in opt.param_groups]
        return f"_o{i}.param_groups == _copies{i}"
    return code


def _state_code(opt):
    def code(expected, env, i):
        env[f"_o{i}"], env[f"_snap{i}"], env[f"_e{i}"] = opt, _state_snapshot, expected
        if not expected:
            return f"not _o{i}.state"
        return f"_snap{i}(_o{i}) == _e{i}"
    return code


def _grad_code(owners: list[_Owner]):
    def code(expected, env, i):
        parts = []
        for j, (o, none) in enumerate(zip(owners, expected)):
            if o.arg is not None:
                t = f"args[{o.arg}]"
            else:
                env[f"_p{i}_{j}"] = o.obj
                t = f"_p{i}_{j}"
            parts.append(f"{t}.grad is {'' if none else 'not '}None")
        return " and ".join(parts)
    return code


def _tensor_labels(found) -> dict[int, str]:
    """Readable names of the parameters, buffers and optimizer state of the objects found."""
    labels: dict[int, str] = {}
    for label, obj in found:
        if isinstance(obj, Tensor):
            labels.setdefault(id(obj), label)
    for label, obj in found:
        if _is_module(obj):
            named = list(getattr(obj, "named_parameters", lambda: [])())
            named += list(getattr(obj, "named_buffers", lambda: [])())
            for name, t in named:
                labels.setdefault(id(t), f"{label}.{name}")
    for label, obj in found:
        if _is_optimizer(obj):
            for p, s in obj.state.items():
                for k, v in s.items():
                    if isinstance(v, Tensor):
                        labels.setdefault(id(v), f"{label}.state[{labels.get(id(p), 'param')}][{k!r}]")
    return labels


# ---------------------------------------------------------------------------------------------
# specializations

class _Template:
    """The structure of a function's result with its tensors replaced by output numbers."""

    def __init__(self, result, output_of: Callable[[Tensor], int]):
        self.tree = self._strip(result, output_of)

    def _strip(self, obj, output_of):
        if isinstance(obj, Tensor):
            return _Slot(output_of(obj))
        if isinstance(obj, (list, tuple)) and type(obj) in (list, tuple):
            return type(obj)(self._strip(x, output_of) for x in obj)
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):          # namedtuples
            return type(obj)(*(self._strip(x, output_of) for x in obj))
        if isinstance(obj, dict):
            return type(obj)((k, self._strip(v, output_of)) for k, v in obj.items())
        return obj

    def fill(self, tensors: list):
        return self._fill(self.tree, tensors)

    def _fill(self, obj, tensors):
        if isinstance(obj, _Slot):
            return tensors[obj.index]
        if type(obj) in (list, tuple):
            return type(obj)(self._fill(x, tensors) for x in obj)
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):
            return type(obj)(*(self._fill(x, tensors) for x in obj))
        if isinstance(obj, dict):
            return type(obj)((k, self._fill(v, tensors)) for k, v in obj.items())
        return obj


def _template_expr(tree, results: list[int], env: dict) -> str:
    """A Python expression rebuilding a result structure from the output nodes r<k>."""
    if isinstance(tree, _Slot):
        return f"_from(r{results[tree.index]})"
    if type(tree) is list:
        return "[" + ", ".join(_template_expr(x, results, env) for x in tree) + "]"
    if type(tree) is tuple:
        return "(" + "".join(_template_expr(x, results, env) + ", " for x in tree) + ")"
    name = f"_c{len(env)}"
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        env[name] = type(tree)
        return f"{name}(" + ", ".join(_template_expr(x, results, env) for x in tree) + ")"
    if isinstance(tree, dict):
        env[name] = type(tree)
        keys = f"_c{len(env)}"
        env[keys] = list(tree)
        values = ", ".join(_template_expr(x, results, env) for x in tree.values())
        return f"{name}(zip({keys}, ({values},)))"
    env[name] = tree        # a static value returned as it was traced
    return name


class _Slot:
    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index


_new_node = ir.Node
_buffer_ids = ir._buffer_ids
_BUFFER = Op.BUFFER


class Specialization:
    """One traced and compiled version of a function: its program, and how to bind and install."""

    def __init__(self, name: str, program: Program, binds: list, installs: list, results: list,
                 template, guards: _Guards, keep: list, found: list, timings: dict, notes: dict):
        self.name = name
        self.program = program
        self.binds = binds              # per program input: (_Owner, shape, dtype)
        self.installs = installs        # per updated tensor: (kind, _Owner, output number, flags)
        self.results = results          # output numbers of the returned tensors
        self.template = template
        self.guards = guards
        self.keep = keep                # objects the signature names by identity: kept alive
        self.found = found
        self.timings = timings
        self.notes = notes
        self.calls = 0
        self.timed = debug_level() >= 2
        self.fast = self.run            # replaced by generated code after the first call
        self.fast_source = None
        outs = program.outputs
        self._out_meta = [(n.shape, n.dtype, n.device) for n in outs]

    def run(self, args: list):
        """Bind, run the program, install: the whole cost of a replayed call."""
        arrays = []
        unrealized = None
        for owner, shape, dtype in self.binds:
            t = args[owner.arg] if owner.arg is not None else owner.obj
            if owner.grad:
                t = t.grad
                if t is None:
                    raise _Retrace(f"{owner.label} is None")
            node = t._node
            if node.shape != shape or node.dtype is not dtype:
                raise _Retrace(f"{owner.label} is now {node.dtype.name}{list(node.shape)}, was "
                               f"{dtype.name}{list(shape)}")
            array = node.realized
            if array is None:
                unrealized = unrealized or []
                unrealized.append(t)
            arrays.append(array)
        if unrealized is not None:          # updated outside the function since the last call
            _tensor.realize_tensors(unrealized)
            arrays = [(owner.tensor(args))._node.realized for owner, _, _ in self.binds]
        if self.timed:
            outs = self.program.run_steps(arrays, timed=True)
        else:
            outs = self.program(arrays)
        meta = self._out_meta
        nodes = []
        for (shape, dtype, device), array in zip(meta, outs):
            n = _new_node(_BUFFER, (), shape, dtype, next(_buffer_ids), device)
            n.realized = array
            nodes.append(n)
        for kind, owner, k, flags in self.installs:
            t = args[owner.arg] if owner.arg is not None else owner.obj
            if kind == "node":
                t._set_node(nodes[k])
                if flags is not None:
                    t._requires_grad, t._grad_fn, t._retains_grad = flags
            elif kind == "grad_new":
                t.grad = Tensor._from_node(nodes[k])
            elif kind == "grad_inplace":
                t.grad._set_node(nodes[k])
            else:       # "grad_none"
                t.grad = None
        if self.template is None:
            result = None
        else:
            result = self.template.fill([Tensor._from_node(nodes[k]) for k in self.results])
        if self.fast_source is None and not self.program.first_call and self._fast_ok():
            self.fast = self._generate_fast()
        return result

    # -- the generated replay ------------------------------------------------------------------------
    def _fast_ok(self) -> bool:
        return not (self.timed or self.program._f16_in or self.program._f16_out or self.program.driver is None
                    or any(flags is not None for _, _, _, flags in self.installs))

    def _generate_fast(self) -> Callable:
        """`run` as straight-line Python for this specialization: every check, call and install
        written out, objects as globals. Anything unusual goes back to `run`."""
        env: dict[str, Any] = {"_slow": self.run, "_Node": _new_node, "_BUF": _BUFFER, "_ids": _buffer_ids,
                               "_gtd": _tensor._grad_targets.data, "_gt_remove": _tensor._grad_targets._remove,
                               "_KeyedRef": weakref.KeyedRef, "_from": Tensor._from_node,
                               "_driver": self.program.driver}
        lines = ["def fast(args):"]

        def obj(owner: _Owner, name: str) -> str:
            if owner.arg is not None:
                return f"args[{owner.arg}]"
            env[name] = owner.obj
            return name

        for k, (owner, shape, dtype) in enumerate(self.binds):
            lines.append(f"    t = {obj(owner, f'_b{k}')}{'.grad' if owner.grad else ''}")
            if owner.grad:
                lines.append("    if t is None: return _slow(args)")
            env[f"_s{k}"], env[f"_d{k}"] = shape, dtype
            lines += [f"    n = t._node", f"    a{k} = n.realized",
                      f"    if a{k} is None or n.shape != _s{k} or n.dtype is not _d{k}: return _slow(args)"]
        consts = []
        for k, array in enumerate(self.program.constants):
            env[f"_k{k}"] = array
            consts.append(f"_k{k}")
        lines.append(f"    o = _driver({', '.join([f'a{k}' for k in range(len(self.binds))] + consts)})")
        for k, (shape, dtype, device) in enumerate(self._out_meta):
            env[f"_os{k}"], env[f"_od{k}"], env[f"_dev{k}"] = shape, dtype, device
            lines += [f"    r{k} = _Node(_BUF, (), _os{k}, _od{k}, next(_ids), _dev{k})",
                      f"    r{k}.realized = o[{k}]"]
        for j, (kind, owner, k, _) in enumerate(self.installs):
            target = obj(owner, f"_i{j}")
            if kind == "grad_new":
                lines.append(f"    {target}.grad = _from(r{k})")
            elif kind == "grad_none":
                lines.append(f"    {target}.grad = None")
            else:
                lines.append(f"    t = {target}{'.grad' if kind == 'grad_inplace' else ''}")
                # what Tensor._set_node does for a realized node, on the weak dictionary's own dict
                lines += ["    ref = _gtd.get(id(t._node))",
                          "    if ref is not None and ref() is t: del _gtd[id(t._node)]",
                          f"    t._node = r{k}",
                          "    if t._requires_grad and (t._grad_fn is None or t._retains_grad): "
                          f"_gtd[id(r{k})] = _KeyedRef(t, _gt_remove, id(r{k}))"]
        if self.template is None:
            lines.append("    return None")
        else:
            lines.append(f"    return {_template_expr(self.template.tree, self.results, env)}")
        source = "\n".join(lines) + "\n"
        exec(compile(source, f"<lazytorch.jit replay of {self.name}>", "exec"), env)
        self.fast_source = source
        return env["fast"]


# ---------------------------------------------------------------------------------------------
# the jitted function

class JitFunction:
    """A function compiled by `lazytorch.jit`: call it like the function; `explain(*args)` reports
    its program; `specializations` lists the compiled versions."""

    def __init__(self, fn, max_specializations: int = MAX_SPECIALIZATIONS):
        self._fn = fn
        self.max_specializations = max_specializations
        self._cache: dict[tuple, list[Specialization]] = {}
        self.specializations: list[Specialization] = []
        self.recompile_reasons: list[str] = []
        self._gave_up = False
        self.__name__ = getattr(fn, "__name__", None) or type(fn).__name__
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__wrapped__ = fn
        _registry.add(self)

    def __repr__(self) -> str:
        return f"<lazytorch.jit of {self.__qualname__}: {len(self.specializations)} specialization(s)>"

    def __get__(self, obj, objtype=None):
        """Methods: `@lazytorch.jit` in a class body jits the function with `self` as an argument."""
        if obj is None:
            return self
        return functools.partial(self.__call__, obj)

    def __getattr__(self, name):
        # a jitted module still looks like the module: parameters(), train(), state_dict()...
        fn = self.__dict__.get("_fn")
        if fn is None or not _is_module(fn):
            raise AttributeError(name)
        return getattr(fn, name)

    def __call__(self, *args, **kwargs):
        if _tensor._tracing[0] is not None:       # called from a function being traced: inline
            return self._fn(*args, **kwargs)
        tensors: list = []
        objects: list = []
        parts = [is_grad_enabled(), get_default_dtype()]
        for a in args:
            _flatten(a, tensors, parts, objects)
        if kwargs:
            parts.append(tuple(kwargs))
            for a in kwargs.values():
                _flatten(a, tensors, parts, objects)
        if len(tensors) > 1:       # the same tensor passed twice binds one input: part of the key
            ids = [id(t._node) for t in tensors]
            if len(set(ids)) != len(ids):
                parts.append(("aliases", tuple(ids.index(i) for i in ids)))
        key = tuple(parts)
        reason = None
        for spec in self._cache.get(key, ()):
            if spec.guards.check(tensors):
                try:
                    return spec.fast(tensors)
                except _Retrace as e:
                    reason = str(e)
                    break
            reason = reason or spec.guards.failure(tensors)
        return self._miss(args, kwargs, key, tensors, objects, reason)

    # -- tracing a new specialization ------------------------------------------------------------
    def _miss(self, args, kwargs, key, tensors, objects, reason):
        if self._gave_up:
            return self._fn(*args, **kwargs)
        if self.specializations:
            if reason is None:
                reason = self._signature_change(args, kwargs)
            self.recompile_reasons.append(reason)
            counters["jit_recompiles"] += 1
            if debug_level() >= 1 or "recompiles" in os.environ.get("LAZYTORCH_LOG", ""):
                print(f"[lazytorch] recompiling {self.__qualname__} (specialization "
                      f"{len(self.specializations) + 1}): {reason}", file=sys.stderr, flush=True)
            if len(self.specializations) >= self.max_specializations:
                self._gave_up = True
                warnings.warn(
                    f"lazytorch.jit: {self.__qualname__} was traced {len(self.specializations)} times "
                    f"(max_specializations={self.max_specializations}); it now runs uncompiled for new "
                    f"signatures. Last reason: {reason}. A value that changes on every call (a Python number "
                    "argument, a scheduler stepped inside the function) belongs in a tensor or outside the "
                    "jitted function.", RuntimeWarning, stacklevel=3)
                return self._fn(*args, **kwargs)
        spec, result = self._trace(args, kwargs, key, tensors, objects, run=True)
        self._cache.setdefault(key, []).insert(0, spec)     # the newest is the likeliest next
        self.specializations.append(spec)
        return result

    def _signature_change(self, args, kwargs) -> str:
        now = dict(_describe_signature(args, kwargs))
        before = dict(self._last_signature) if getattr(self, "_last_signature", None) else {}
        changes = [f"{p}: {before.get(p, 'absent')} -> {d}" for p, d in now.items() if before.get(p) != d]
        changes += [f"{p}: {d} -> absent" for p, d in before.items() if p not in now]
        if not changes:
            changes = ["grad mode or default dtype changed" if before else "new signature"]
        return "; ".join(changes[:4])

    def _trace(self, args, kwargs, key, tensors, objects, run: bool):
        start = time.perf_counter()
        self._last_signature = _describe_signature(args, kwargs)
        _tensor.realize_tensors(tensors)           # arguments and pending updates: real buffers
        guards, found = _build_guards(self._fn, args, kwargs)
        pre_guards = guards.snapshot(tensors)
        tracer = _Tracer(self.__qualname__, tensors)
        try:
            with tracer:
                result = self._fn(*args, **kwargs)
        except BaseException:
            tracer.restore()
            raise
        traced = time.perf_counter()
        try:
            spec = self._compile(tracer, result, guards, found, key, objects, tensors)
        finally:
            tracer.restore()
        # guards that read gradients: which were None when the body first looked
        owners = [tracer.owner(p, False, {}) for p, _ in tracer.grad_reads.values()]
        if owners:
            guards.add(f"which of {len(owners)} gradients are None",
                       lambda args, os=owners: tuple(o.tensor(args).grad is None for o in os), _grad_code(owners))
            pre_guards += (tuple(g is None for _, g in tracer.grad_reads.values()),)
        guards.finish(pre_guards)
        compiled_at = time.perf_counter()
        spec.timings.update(trace_s=traced - start, compile_s=compiled_at - traced)
        counters["jit_traces"] += 1
        if not run:
            return spec, None
        result = spec.run(tensors)
        spec.timings["first_run_s"] = time.perf_counter() - compiled_at
        log(1, f"jit {self.__qualname__}: traced in {spec.timings['trace_s'] * 1e3:.1f} ms, planned in "
               f"{spec.timings['compile_s'] * 1e3:.1f} ms, first run (compile or disk load) "
               f"{spec.timings['first_run_s'] * 1e3:.1f} ms")
        return spec, result

    def _compile(self, tracer: _Tracer, result, guards, found, key, objects, tensors) -> Specialization:
        labels = _tensor_labels(found)
        outputs: list[ir.Node] = []
        installs: list[tuple] = []
        handled: set[int] = set()

        def output(node) -> int:
            outputs.append(node)
            return len(outputs) - 1

        # tensors that existed before and now hold another node or another .grad, in the order
        # the body first touched them (so equal graphs traced twice give equal programs)
        for key_id, t in tracer.touched.items():
            write = tracer.writes.get(key_id)
            if write is not None:
                _, before, requires_grad, grad_fn, retains = write
                node = _NODE_SLOT.__get__(t, type(t))
                if node is not before:
                    flags = (t._requires_grad, t._grad_fn, t._retains_grad)
                    flags = None if flags == (requires_grad, grad_fn, retains) else flags
                    p = tracer.grad_owner.get(key_id)
                    if p is not None and _GRAD_SLOT.__get__(p, type(p)) is t:
                        installs.append(("grad_inplace", tracer.owner(p, False, labels), output(node), None))
                    else:
                        installs.append(("node", tracer.owner(t, False, labels), output(node), flags))
            grad_write = tracer.grad_writes.get(key_id)
            if grad_write is not None:       # a gradient assigned (a new tensor, or None)
                before = grad_write[1]
                g = _GRAD_SLOT.__get__(t, type(t))
                owner = tracer.owner(t, False, labels)
                if g is None:
                    if before is not None:
                        installs.append(("grad_none", owner, None, None))
                elif g is not before:
                    handled.add(id(g))
                    installs.append(("grad_new", owner, output(_NODE_SLOT.__get__(g, type(g))), None))
        # returned tensors
        result_outputs: list[int] = []
        result_ids: dict[int, int] = {}

        def result_output(t: Tensor) -> int:
            if id(t) not in result_ids:
                result_ids[id(t)] = len(result_outputs)
                result_outputs.append(output(_NODE_SLOT.__get__(t, type(t))))
            return result_ids[id(t)]

        template = None if result is None else _Template(result, result_output)
        # tensors made by the body and still alive (optimizer state made on the first step)
        for key_id, t in list(tracer.created_refs.items()):
            if key_id in handled or key_id in result_ids:
                continue
            node = _NODE_SLOT.__get__(t, type(t))
            if node.realized is not None and id(node) not in tracer.reads:
                continue        # a constant it made: stays as it is
            installs.append(("node", _Owner(None, t, False, labels.get(key_id, "tensor made by the function")),
                             output(node), None))
        # the graph, with every node read from a pre-existing tensor replaced by an input
        read_owner = {}
        for node_id, (node, t) in tracer.reads.items():
            p = tracer.grad_owner.get(id(t))
            if p is not None:
                read_owner[node_id] = tracer.owner(p, True, labels)
            else:
                read_owner[node_id] = tracer.owner(t, False, labels)
        graph_outputs, placeholders, notes = _substitute(outputs, tracer.reads, read_owner)
        binds = [(read_owner[node_id], ph.shape, ph.dtype) for node_id, ph in placeholders]
        program = Program([ph for _, ph in placeholders], graph_outputs)
        program.input_labels = [owner.label for owner, _, _ in binds]
        return Specialization(self.__qualname__, program, binds, installs, result_outputs, template, guards,
                              list(objects), found, {}, notes)

    # -- inspection --------------------------------------------------------------------------------
    def explain(self, *args, **kwargs):
        """A report of the program this function compiles to for these arguments (traced, not run)."""
        from lazytorch.explain import Report
        return Report.of_specialization(self.specialization_for(*args, **kwargs))

    def specialization_for(self, *args, **kwargs) -> Specialization:
        """The specialization that a call with these arguments would replay (traced if needed)."""
        tensors: list = []
        objects: list = []
        parts = [is_grad_enabled(), get_default_dtype()]
        for a in args:
            _flatten(a, tensors, parts, objects)
        if kwargs:
            parts.append(tuple(kwargs))
            for a in kwargs.values():
                _flatten(a, tensors, parts, objects)
        key = tuple(parts)
        for spec in self._cache.get(key, ()):
            if spec.guards.check(tensors):
                return spec
        spec, _ = self._trace(args, kwargs, key, tensors, objects, run=False)
        return spec


_registry: "weakref.WeakSet[JitFunction]" = weakref.WeakSet()


def jitted_functions() -> list[JitFunction]:
    """Every jitted function alive in this process (for `python -m lazytorch explain`)."""
    return list(_registry)


def _substitute(outputs: list[ir.Node], reads: dict, owners: dict):
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
