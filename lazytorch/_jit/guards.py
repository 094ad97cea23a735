"""Signatures and guards: what a specialization assumed when it was traced.

`_flatten` computes the key of a call from its arguments; `_build_guards` finds the modules,
optimizers, schedulers, globals and closure variables a function reaches and makes a `_Guards`
whose `check(args)` is one generated expression.
"""
from __future__ import annotations

import types
import weakref
from typing import Any, Callable, Optional

from lazytorch._creation import Generator
from lazytorch._jit.trace import _Owner
from lazytorch._tensor import Tensor


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
    runtime = getattr(opt, "runtime_hyperparameters", {})
    return tuple(tuple((k, _Runtime(runtime[k], v).expected if k in runtime else _plain(v))
                       for k, v in g.items() if k not in ("params", "param_names"))
                 for g in opt.param_groups) + tuple(tuple(map(id, g["params"])) for g in opt.param_groups) + \
        (("group objects", tuple(map(id, opt.param_groups))),)   # the program reads these dicts at every call


class _Runtime:
    """A hyperparameter the optimizer reads at every call (a program input, see
    `Optimizer.runtime_hyperparameters`) as the guards see it: any value with the same structure
    (e.g. momentum nonzero) is equal to it."""
    __slots__ = ("structure", "expected")
    __hash__ = None

    def __init__(self, structure, value):
        self.structure = structure
        self.expected = ("read at every call", None if structure is None else structure(value))

    def __eq__(self, other):
        return self.structure is None or self.structure(other) == self.expected[1]


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
        self.about: list[int] = []          # id of the object each guard reads (0: none in particular)
        self.expected: tuple = ()
        self.check: Callable = lambda args: True

    def add(self, label: str, getter: Callable, code: Optional[Callable] = None, about=None) -> None:
        """`getter(args)` reads the guarded value. `code(expected, env, i)`, if given, returns a
        Python expression over `args` and names it puts in `env` that is true when the value is
        `expected` (faster than calling the getter and comparing). `about`: the object it reads."""
        self.labels.append(label)
        self.getters.append(getter)
        self.codes.append(code)
        self.about.append(0 if about is None else id(about))

    def discard(self, objects: set[int], snapshot: tuple) -> tuple:
        """Drop the guards about these objects (by id); returns `snapshot` without their values."""
        keep = [i for i, about in enumerate(self.about) if about not in objects]
        for name in ("labels", "getters", "codes", "about"):
            values = getattr(self, name)
            setattr(self, name, [values[i] for i in keep])
        return tuple(snapshot[i] for i in keep)

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
                where, old, new = _first_difference(expected, now)
                return f"{label}{where} changed: {_short(old)} -> {_short(new)}"
        return None


def _first_difference(old, new, where: str = ""):
    """(path, old part, new part) of the first place two snapshots differ: `.lr`, `[1]`..."""
    if isinstance(old, tuple) and isinstance(new, tuple) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            if a != b:
                if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) == 2 \
                        and isinstance(a[0], str) and a[0] == b[0]:
                    return _first_difference(a[1], b[1], f"{where}.{a[0]}")
                return _first_difference(a, b, f"{where}[{i}]")
    return where, old, new


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
        if isinstance(value, (Tensor, list, tuple, dict, Generator)) or _is_module(value) or _is_optimizer(value) or \
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
            guards.add(f"{label} state", lambda args, s=obj: _scheduler_snapshot(s), about=obj)
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
        runtime = getattr(opt, "runtime_hyperparameters", {})
        env[f"_copies{i}"] = [{k: _Runtime(runtime[k], v) if k in runtime else list(v) if isinstance(v, list) else v
                               for k, v in g.items()} for g in opt.param_groups]
        env[f"_ids{i}"] = list(map(id, opt.param_groups))
        return f"_o{i}.param_groups == _copies{i} and list(map(id, _o{i}.param_groups)) == _ids{i}"
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

