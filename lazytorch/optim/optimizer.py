"""`Optimizer`: parameter groups, per-parameter state, state dicts, and the compiled update step.

A step never computes anything eagerly. `step()` builds each parameter's new value (and its new
optimizer state) as IR with tensor operations under `no_grad`, assigns them in place - which points
the tensors at the new nodes - and then realizes every parameter and state tensor in one call.
That one call also computes whatever is still pending (the gradients, the loss, and through them
the forward pass), so forward + backward + update compile into one program, and afterwards every
parameter and state tensor is a fresh buffer: the graph never grows across iterations.

Float hyperparameters (lr, momentum, betas, bias corrections, ...) enter the IR as 0-d *buffers*,
not constants. The compiler keys its cache on graph structure, where a buffer counts only by shape
and dtype, so a scheduler changing the lr or Adam's step-dependent bias corrections compile
nothing: from the second iteration on, a training step is one cache hit. Under `lazytorch.jit`
those a scheduler changes (`runtime_hyperparameters`) are program inputs read from the param
group at every call (`StepScalars.of`), not values frozen by the trace.
"""
from __future__ import annotations

import copy
from collections import defaultdict
from itertools import chain
from typing import Any, Callable, Iterable, Optional

import numpy as np

import lazytorch
from compiler.ir import node as ir
from lazytorch._grad_mode import enable_grad, no_grad
from lazytorch._tensor import Tensor, _tracing
from lazytorch.autograd._engine import zero_grads


class _RequiredParameter:
    """Marks a hyperparameter with no default (torch.optim.optimizer.required)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


class StepScalars:
    """The 0-d tensors holding one step's float hyperparameters.

    One per (role, value, dtype): parameters of a group share them, and since a role never shares a
    tensor with another role, the graph's structure does not depend on which values happen to be
    equal (1 - beta1 equals Adam's first bias correction at step 1 and never again).

    Values computed from a runtime hyperparameter (`Optimizer.runtime_hyperparameters`: the lr...)
    are made by `of(group, ...)` instead, one per (role, group, dtype): under `lazytorch.jit` each
    is a program input computed again from its param group at every call, so that a scheduler, or
    a hand edit of `group['lr']`, changes the compiled step's lr without a new trace.
    """

    def __init__(self):
        self._made: dict[tuple, Tensor] = {}
        self._of_group: dict[tuple, Tensor] = {}

    def __call__(self, role: str, value, dtype) -> Tensor:
        key = (role, float(value), dtype)
        t = self._made.get(key)
        if t is None:
            t = self._made[key] = lazytorch.tensor(float(value), dtype=dtype)
        return t

    def of(self, group: dict[str, Any], role: str, value_of: Callable[[dict], float], dtype) -> Tensor:
        """The 0-d tensor holding `value_of(group)` (read from the group at every jitted call)."""
        key = (role, id(group), dtype)
        t = self._of_group.get(key)
        if t is None:
            np_dtype = dtype.np_dtype

            def compute():
                return np.array(float(value_of(group)), np_dtype)

            t = self._of_group[key] = Tensor._from_node(ir.buffer(compute()))
            tracer = _tracing[0]
            if tracer is not None:
                tracer.host_input(t, compute, f"{role} ({dtype.name}, read from its param group at every call)")
        return t


class Optimizer:
    """Base class of all optimizers (torch.optim.Optimizer).

    Subclasses define `_update_group(group, params, scalar)`, which assigns the new values of the
    parameters in `params` (those of `group` with a gradient) and of their state in place, building
    IR only; `step()` then realizes everything in one compiled program. Each tensor is assigned
    once per step (computed out of place, then `copy_`): assigning a still-pending leaf again would
    make the front-end realize it early, splitting the step into several programs.
    """

    runtime_hyperparameters: dict[str, Optional[Callable]] = {}
    """Hyperparameters the update reads from the param group only through `StepScalars.of`
    (schedulers change them): name -> what the graph's structure depends on (None: nothing; e.g.
    `momentum != 0` for SGD). `lazytorch.jit` guards only that, not their values."""

    def __init__(self, params, defaults: dict[str, Any]):
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            f"but got {_typename(params)}")
        self.state: defaultdict[Tensor, dict] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        text = self.__class__.__name__ + " ("
        for i, group in enumerate(self.param_groups):
            text += f"\nParameter Group {i}\n"
            for key in sorted(group.keys()):
                if key != "params":
                    text += f"    {key}: {group[key]}\n"
        return text + ")"

    # -- parameter groups ---------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (missing ones take the defaults)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of tensors in sets will change between runs. Please use a list instead.")
        params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        params = [p[1] if isinstance(p, tuple) else p for p in params]
        if names:
            if len(names) != len(params):
                raise ValueError("all optimizer params should be with/without names. Some param names are missing")
            param_group["param_names"] = names
        param_group["params"] = params
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {_typename(p)}")
            if not (p.is_leaf or p.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter "
                                 f"{name}")
            param_group.setdefault(name, default)
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)
        # parameters whose initial values are still lazy (a module's init) are computed now, so the
        # first step's program is already the one every later step reuses
        lazytorch.realize(*params)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients: to None (the default), or to zeros in place."""
        zero_grads((p for group in self.param_groups for p in group["params"]), set_to_none)

    # -- the step ---------------------------------------------------------------------------------
    def step(self, closure: Optional[Callable[[], Any]] = None):
        """Update every parameter that has a gradient; returns the closure's loss, if one was given."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        scalar = StepScalars()
        with no_grad():
            for group in self.param_groups:
                params = [p for p in group["params"] if p.grad is not None]
                if params:
                    self._update_group(group, params, scalar)
        self._realize()
        return loss

    def _update_group(self, group: dict[str, Any], params: list[Tensor], scalar: StepScalars) -> None:
        raise NotImplementedError

    def _realize(self) -> None:
        """Compute all parameters and state tensors (and everything pending) in one program."""
        tensors = [p for group in self.param_groups for p in group["params"]]
        for state in self.state.values():
            tensors.extend(_tensors_in(state))
        lazytorch.realize(*tensors)

    # -- state dicts ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}]} as in torch.

        Parameters are numbered in the order of the groups; the state tensors are the optimizer's
        own (not copies), as in torch.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)] if isinstance(p, Tensor) else p: v for p, v in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict from `state_dict()` (of this class, or torch's of the same optimizer).

        State tensors are copied into fresh buffers of the parameter's dtype (step counts keep
        theirs), so the loaded optimizer never aliases the dict it was given.
        """
        groups = self.param_groups
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                             "optimizer's group")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))
        state: defaultdict[Tensor, dict] = defaultdict(dict)
        for key, value in state_dict["state"].items():
            if key in id_map:
                param = id_map[key]
                state[param] = _cast_state(param, value)
            else:
                state[key] = value
        for group, saved in zip(groups, saved_groups):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
        self.state = state
        self.param_groups = saved_groups


def _cast_state(param: Tensor, value, key=None):
    """A copy of `value` with tensors as fresh buffers of the parameter's dtype ('step' keeps its own)."""
    if isinstance(value, Tensor):
        dtype = param.dtype if key != "step" and param.is_floating_point() and value.is_floating_point() \
            else value.dtype
        return lazytorch.tensor(value, dtype=dtype)
    if isinstance(value, dict):
        return {k: _cast_state(param, v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast_state(param, v) for v in value)
    return value


def _tensors_in(value) -> Iterable[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors_in(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors_in(v)


def _typename(obj) -> str:
    return obj.type() if isinstance(obj, Tensor) else type(obj).__name__


def check_unsupported(differentiable: bool = False, capturable: bool = False) -> None:
    """torch's `differentiable`/`capturable` modes have no meaning here; `foreach`/`fused` are accepted
    and ignored, since every update is already one fused program."""
    if differentiable:
        raise NotImplementedError("differentiable=True is not supported: optimizer steps run under no_grad")
    if capturable:
        raise NotImplementedError("capturable=True is not supported: lazytorch has no CUDA graphs")
