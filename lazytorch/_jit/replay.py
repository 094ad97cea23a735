"""Replay: a traced and compiled specialization, bound and run at every matching call.

`Specialization.run` is the general path (binds input locations, realizes ones updated lazily
outside, runs the program, installs the outputs); after the first call it is replaced by generated
straight-line Python (`fast_source`) for the common case.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable

from compiler.runtime.counters import debug_level
from compiler.runtime.driver import Program
from lazytorch import _tensor
from lazytorch._jit.guards import _Guards
from lazytorch._jit.trace import _BUFFER, _Owner, _buffer_ids, _new_node
from lazytorch._tensor import Tensor


class _Retrace(Exception):
    """A specialization cannot bind this call (a captured tensor changed shape...): trace again."""


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


class Specialization:
    """One traced and compiled version of a function: its program, and how to bind and install."""

    def __init__(self, name: str, program: Program, binds: list, installs: list, results: list,
                 template, guards: _Guards, keep: list, found: list, timings: dict, notes: dict,
                 host: list = (), first_values: list = ()):
        self.name = name
        self.program = program
        self.binds = binds              # per program input, first: (_Owner, shape, dtype)
        # host work in the body's order: (callable, whether its value is the next program input)
        self.host = host
        self.first_values = first_values    # the traced call's host inputs (its effects already ran)
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

    def run(self, args: list, traced: bool = False):
        """Bind, run the program, install: the whole cost of a replayed call. `traced`: the call
        whose trace just ran the body (its host work is done: use the values it computed)."""
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
        # host work after every check that can send the call back to a trace: it runs exactly once
        if traced:
            arrays += self.first_values
            self.first_values = ()
        else:
            for compute, used in self.host:
                value = compute()
                if used:
                    arrays.append(value)
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
        shared = None
        for kind, owner, k, flags in self.installs:
            t = args[owner.arg] if owner.arg is not None else owner.obj
            if kind == "node":
                t._set_node(nodes[k])
                if flags is not None:
                    t._requires_grad, t._grad_fn, t._retains_grad = flags
            elif kind == "grad_new":
                t.grad = Tensor._from_node(nodes[k])
            elif kind == "grad_inplace":
                t = t.grad
                t._set_node(nodes[k])
            else:       # "grad_none"
                t.grad = None
            if kind in ("node", "grad_inplace") and t._storage is not None:
                shared = shared or []
                shared.append(t)
        for t in shared or ():              # after every install: a storage's root is installed too
            t._write(t._node, replayed=True)
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
            lines += ["    n = t._node", f"    a{k} = n.realized",
                      f"    if a{k} is None or n.shape != _s{k} or n.dtype is not _d{k}: return _slow(args)"]
        values = [f"a{k}" for k in range(len(self.binds))]
        for k, (compute, used) in enumerate(self.host):
            env[f"_h{k}"] = compute
            if used:
                values.append(f"h{k}")
                lines.append(f"    h{k} = _h{k}()")
            else:
                lines.append(f"    _h{k}()")
        for k, array in enumerate(self.program.constants):
            env[f"_k{k}"] = array
            values.append(f"_k{k}")
        lines.append(f"    o = _driver({', '.join(values)})")
        for k, (shape, dtype, device) in enumerate(self._out_meta):
            env[f"_os{k}"], env[f"_od{k}"], env[f"_dev{k}"] = shape, dtype, device
            lines += [f"    r{k} = _Node(_BUF, (), _os{k}, _od{k}, next(_ids), _dev{k})",
                      f"    r{k}.realized = o[{k}]"]
        syncs = []
        for j, (kind, owner, k, _) in enumerate(self.installs):
            target = obj(owner, f"_i{j}")
            if kind == "grad_new":
                lines.append(f"    {target}.grad = _from(r{k})")
            elif kind == "grad_none":
                lines.append(f"    {target}.grad = None")
            else:
                lines.append(f"    t = {target}{'.grad' if kind == 'grad_inplace' else ''}")
                # what Tensor._set_node does for a realized node, on the weak dictionary's own dict;
                # the tensor's entry moves to its new node's id (its weak reference re-keyed)
                lines += ["    ref = _gtd.pop(id(t._node), None)",
                          "    if ref is not None and ref() is not t: _gtd[id(t._node)] = ref; ref = None",
                          f"    t._node = r{k}",
                          "    if t._requires_grad and (t._grad_fn is None or t._retains_grad):",
                          "        if ref is None: ref = _KeyedRef(t, _gt_remove, 0)",
                          f"        ref.key = id(r{k})",
                          f"        _gtd[id(r{k})] = ref"]
                syncs.append((target + (".grad" if kind == "grad_inplace" else ""), k))
        for target, k in syncs:         # tensors sharing memory: their storage follows (after every install)
            lines.append(f"    if {target}._storage is not None: {target}._write(r{k}, replayed=True)")
        if self.template is None:
            lines.append("    return None")
        else:
            lines.append(f"    return {_template_expr(self.template.tree, self.results, env)}")
        source = "\n".join(lines) + "\n"
        exec(compile(source, f"<lazytorch.jit replay of {self.name}>", "exec"), env)
        self.fast_source = source
        return env["fast"]

