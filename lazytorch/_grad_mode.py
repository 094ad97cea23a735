"""Gradient-recording mode: `no_grad`, `enable_grad`, `set_grad_enabled`, `inference_mode`."""
from __future__ import annotations

import functools

_enabled = [True]


def is_grad_enabled() -> bool:
    return _enabled[0]


class _GradMode:
    """Context manager and decorator switching gradient recording (torch's semantics)."""
    mode: bool = True

    def __enter__(self):
        self.previous = _enabled[0]
        _enabled[0] = self.mode

    def __exit__(self, *exc):
        _enabled[0] = self.previous
        return False

    def __call__(self, fn):
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            previous = _enabled[0]
            _enabled[0] = mode
            try:
                return fn(*args, **kwargs)
            finally:
                _enabled[0] = previous
        return wrapper


class no_grad(_GradMode):
    """Within this context (or decorated function) results do not require grad."""
    mode = False


class enable_grad(_GradMode):
    """Re-enables gradient recording inside a `no_grad` block."""
    mode = True


class inference_mode(_GradMode):
    """Like `no_grad` (lazytorch has no version counters to skip, so it is the same)."""

    def __init__(self, mode: bool = True):
        self.mode = not mode


class set_grad_enabled(_GradMode):
    """Sets gradient recording on or off; works as a function call, a context or a decorator."""

    def __init__(self, mode: bool):
        self.previous = _enabled[0]
        self.mode = bool(mode)
        _enabled[0] = self.mode

    def __enter__(self):
        pass

    def __exit__(self, *exc):
        _enabled[0] = self.previous
        return False
