"""Gradient-recording mode: `no_grad`, `enable_grad`, `set_grad_enabled`, `inference_mode`.

One global flag, read by `Tensor._result` when it wraps a new node: with recording off, results do
not require grad (their node is detached). Every class works as a context manager and as a function
decorator - `@no_grad()` and `@no_grad` alike, generator functions included - as torch's do.
lazytorch builds graphs on one thread, so the flag is not thread-local.
"""
from __future__ import annotations

import functools
import inspect

_enabled = [True]
_inference = [False]


def is_grad_enabled() -> bool:
    """Whether new results of operations on tensors that require grad require grad too."""
    return _enabled[0]


def is_inference_mode_enabled() -> bool:
    return _inference[0]


class _GradMode:
    """Context manager and decorator that sets the flags to `(self.grad, self.inference)`."""

    grad: bool = True
    inference: bool = False

    def __new__(cls, *args, **kwargs):
        # `@no_grad` without parentheses: the class is called with the function itself
        if cls._bare_decorator_allowed and len(args) == 1 and callable(args[0]) and not kwargs:
            return cls()(args[0])
        return super().__new__(cls)

    _bare_decorator_allowed = True

    def __enter__(self):
        self.__dict__.setdefault("_saved", []).append((_enabled[0], _inference[0]))
        _enabled[0], _inference[0] = self.grad, self.inference

    def __exit__(self, *exc) -> bool:
        _enabled[0], _inference[0] = self._saved.pop()
        return False

    def clone(self) -> "_GradMode":
        """A fresh context with the same settings (one per decorated call, so calls can nest)."""
        copy = object.__new__(type(self))
        copy.grad, copy.inference = self.grad, self.inference
        return copy

    def __call__(self, fn):
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def generator(*args, **kwargs):
                # the mode holds while the generator's own code runs, not while its caller's does
                gen = fn(*args, **kwargs)
                sent = None
                while True:
                    with self.clone():
                        try:
                            item = gen.send(sent)
                        except StopIteration as stop:
                            return stop.value
                    sent = yield item
            return generator

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.clone():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Within this context (or decorated function) results do not require grad."""
    grad = False


class enable_grad(_GradMode):
    """Re-enables gradient recording inside a `no_grad` block."""

    def __enter__(self):
        self.inference = _inference[0]
        super().__enter__()


class inference_mode(_GradMode):
    """`no_grad` under another name (lazytorch has no version counters or views to skip).

    `inference_mode(False)` leaves the grad mode as it is, as torch's does."""

    def __init__(self, mode: bool = True):
        self.mode = bool(mode)

    def __enter__(self):
        self.grad, self.inference = (False, True) if self.mode else (_enabled[0], False)
        super().__enter__()

    def clone(self) -> "inference_mode":
        return inference_mode(self.mode)


class set_grad_enabled(_GradMode):
    """Sets gradient recording on or off: at the call (a plain function call), for a `with` block,
    or around each call of a decorated function."""

    _bare_decorator_allowed = False

    def __init__(self, mode: bool):
        self.previous = _enabled[0]
        self.grad, self.inference = bool(mode), _inference[0]
        _enabled[0] = self.grad

    def __enter__(self):
        self.__dict__.setdefault("_saved", []).append((self.previous, _inference[0]))

    def __call__(self, fn):
        _enabled[0] = self.previous        # decorating changes nothing by itself
        return super().__call__(fn)

    def clone(self) -> "_GradMode":
        copy = object.__new__(_GradMode)
        copy.grad, copy.inference = self.grad, self.inference
        return copy
