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

**Host work.** Random numbers drawn inside (`rand`, `randn`, `dropout`...) are program inputs
drawn again from the same generators, in the same order, at every call; the optimizers' lr (and
momentum, betas) are program inputs read from the param groups at every call; a scheduler's
`step()` inside the body is called again at every replay. So a jitted step consumes the random
stream and advances schedulers exactly as the plain step does (docs/JIT.md).

**What cannot be traced**, each an error at trace time naming the call: reading a tensor's value
(`.item()`, `.numpy()`, `.tolist()`, printing, `bool(tensor)` in an `if`) and random numbers that
host code transforms itself (`nn.init.orthogonal_`). Other Python side effects happen only when the
body runs (the first call of each specialization); a body that changes other Python state on every
call therefore retraces every call and soon falls back to running uncompiled, with a warning that
names the value that kept changing.
"""
from __future__ import annotations

import functools
import os
import sys
import time
import warnings
import weakref
from typing import Optional

from compiler.ir.ops import Op
from compiler.ir import node as ir
from compiler.runtime import notice
from compiler.runtime.counters import counters, debug_level, log
from compiler.runtime.driver import Program
from lazytorch import _tensor
from lazytorch._grad_mode import is_grad_enabled
from lazytorch._jit.guards import (_build_guards, _describe_signature, _flatten, _grad_code, _is_module,
                                   _tensor_labels)
from lazytorch._jit.replay import Specialization, _Retrace, _Template
from lazytorch._jit.trace import _GRAD_SLOT, _NODE_SLOT, _Owner, _Tracer, _substitute
from lazytorch._grad_mode import _enabled as _grad_enabled
from lazytorch._tensor import Tensor, _default_dtype, _pending_leaves, _tracing, get_default_dtype


__all__ = ["jit", "JitFunction", "jitted_functions"]

MAX_SPECIALIZATIONS = 8
_NONE = ()


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
        if _tracing[0] is not None:       # called from a function being traced: inline
            return self._fn(*args, **kwargs)
        tensors: list = []
        objects: list = []
        if args or kwargs:
            parts = [_grad_enabled[0], _default_dtype[0]]
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
        else:
            key = (_grad_enabled[0], _default_dtype[0])
        reason = None
        for spec in self._cache.get(key, _NONE):
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
                    "argument, a global counter) belongs in a tensor or outside the "
                    "jitted function.", RuntimeWarning, stacklevel=3)
                return self._fn(*args, **kwargs)
        spec, result = self._trace(args, kwargs, key, tensors, objects, run=True)
        self._cache.setdefault(key, []).insert(0, spec)     # the newest is the likeliest next
        self.specializations.append(spec)
        if _reports is not None:
            from lazytorch.explain import Report
            report = Report.of_specialization(spec)
            if len(self.specializations) > 1:
                why = reason if len(reason) <= 160 else reason[:157] + "..."
                report.title += f" (specialization {len(self.specializations)}, traced again: {why})"
            _reports.append(report)
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
            tracer.rewind_generators()
            raise
        traced = time.perf_counter()
        try:
            spec = self._compile(tracer, result, guards, found, objects)
        finally:
            tracer.restore()
        # schedulers the body stepped are stepped again at every replay: their state is no guard
        pre_guards = guards.discard(_stepped_objects(tracer.stepped), pre_guards)
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
            # traced for a report only: what the body made and kept (optimizer state) goes back to
            # its first value, as if the step had not happened
            for key_id, t in list(tracer.created_refs.items()):
                initial = tracer.initial.get(key_id)
                if initial is not None and initial.realized is not None:
                    _NODE_SLOT.__set__(t, initial)
                    _pending_leaves.discard(t)
            tracer.rewind_generators()
            return spec, None
        result = spec.run(tensors, traced=True)
        spec.timings["first_run_s"] = time.perf_counter() - compiled_at
        log(1, f"jit {self.__qualname__}: traced in {spec.timings['trace_s'] * 1e3:.1f} ms, planned in "
               f"{spec.timings['compile_s'] * 1e3:.1f} ms, first run (compile or disk load) "
               f"{spec.timings['first_run_s'] * 1e3:.1f} ms")
        return spec, result

    def _compile(self, tracer: _Tracer, result, guards, found, objects) -> Specialization:
        labels = _tensor_labels(found)
        outputs: list[ir.Node] = []
        installs: list[tuple] = []
        handled: set[int] = set()

        def output(node) -> int:
            # a value without history is the computed value itself (a copy would cost a kernel):
            # outputs are fresh buffers at every call, so sharing one between two tensors is safe
            while node.op is Op.DETACH and node.inputs and node.inputs[0].op is not Op.BUFFER:
                node = node.inputs[0]
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
        host_nodes = {id(node): k for k, (_, node, _) in enumerate(tracer.host) if node is not None}
        # tensors made by the body and still alive (optimizer state made on the first step)
        for key_id, t in list(tracer.created_refs.items()):
            if key_id in handled or key_id in result_ids:
                continue
            node = _NODE_SLOT.__get__(t, type(t))
            if node.realized is not None and id(node) not in tracer.reads and id(node) not in host_nodes:
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
        # ... and every leaf whose value the host computes at each call (random draws, hyperparameters)
        graph_outputs, placeholders, notes = _substitute(outputs, {**tracer.reads, **host_nodes})
        binds = [(read_owner[node_id], ph.shape, ph.dtype) for node_id, ph in placeholders
                 if node_id not in host_nodes]
        inputs = [ph for node_id, ph in placeholders if node_id not in host_nodes]
        input_labels = [owner.label for owner, _, _ in binds]
        used = {node_id: ph for node_id, ph in placeholders if node_id in host_nodes}
        host, first_values = [], []
        for compute, node, label in tracer.host:        # program inputs after the binds, in host order
            ph = used.get(id(node)) if node is not None else None
            host.append((compute, ph is not None))
            if ph is not None:
                inputs.append(ph)
                input_labels.append(label)
                first_values.append(node.realized)
        with notice.subject(f"jitted function {self.__qualname__}"):
            program = Program(inputs, graph_outputs)
        program.input_labels = input_labels
        return Specialization(self.__qualname__, program, binds, installs, result_outputs, template, guards,
                              list(objects), found, {}, notes, host, first_values)

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


def _stepped_objects(stepped: list) -> set[int]:
    """ids of the objects whose steps a trace recorded, and of the schedulers they step in turn."""
    ids: set[int] = set()
    todo = list(stepped)
    while todo:
        obj = todo.pop()
        if id(obj) not in ids:
            ids.add(id(obj))
            todo.extend(getattr(obj, "_schedulers", ()))      # SequentialLR's
    return ids


_registry: "weakref.WeakSet[JitFunction]" = weakref.WeakSet()

_reports: "Optional[list]" = None
"""While set to a list (by `keep_reports`), the report of every specialization compiled, made when
it is compiled: a `step` defined inside `train()` dies when `train()` returns, and what it holds
(the model, the optimizer) with it; its report is plain data and stays."""


def jitted_functions() -> list[JitFunction]:
    """Every jitted function alive in this process."""
    return list(_registry)


def keep_reports() -> list:
    """From now on, keep a `lazytorch.explain.Report` of every specialization compiled (in the
    returned list, in compile order): what `python -m lazytorch explain` prints."""
    global _reports
    if _reports is None:
        _reports = []
    return _reports

